"""Serving ``/metrics`` over HTTP on the daemon's event loop: a minimal, strict HTTP/1.1 responder.

One request per connection (``Connection: close``), ``GET`` and ``HEAD`` only,
request head limited in size and time. The exposition is produced in the loop
by prometheus-client from the registry in ``svcmgr.metrics``; no thread shares
state with the daemon. A port that cannot be bound is logged and the daemon
goes on without the endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from prometheus_client.exposition import choose_encoder

if TYPE_CHECKING:
    from svcmgr.component import Context
    from svcmgr.config import DaemonConfig
    from svcmgr.metrics import Metrics, MetricsConfig

__all__ = ["MetricsServer"]

log = logging.getLogger("svcmgr.metrics")

MAX_HEAD = 16 * 1024
HEAD_TIMEOUT = 10.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 500: "Internal Server Error"}
_INDEX = b"svcmgr: metrics at /metrics\n"


class MetricsServer:
    """The component: the metrics registry plus the HTTP endpoint."""

    name = "metrics"

    def __init__(self, ctx: Context, cfg: MetricsConfig, metrics: Metrics) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.metrics = metrics
        self.address: tuple[str, int] | None = None
        self.scrapes = 0
        self.bad_requests = 0

    def setup(self) -> None:
        self.metrics.setup()
        self.ctx.api.register("metrics", self._op_status)

    async def run(self) -> None:
        try:
            server = await asyncio.start_server(self._serve, self.cfg.host, self.cfg.port, limit=MAX_HEAD,
                                                reuse_address=True)
        except OSError as e:
            log.error("metrics: cannot listen on %s: %s; /metrics is off", self.cfg.listen, e.strerror or e)
            return
        sock = server.sockets[0].getsockname()
        self.address = (sock[0], sock[1])
        log.info("metrics: serving /metrics on %s", self.cfg.listen)
        try:
            async with server:
                await server.serve_forever()
        finally:
            server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, headers, body, head_only = await self._handle(reader)
            reason = _REASONS.get(status, "")
            lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close",
                     *(f"{k}: {v}" for k, v in headers.items())]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            if not head_only:
                writer.write(body)
            await writer.drain()
        except (ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes, bool]:
        text = {"Content-Type": "text/plain; charset=utf-8"}
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            self.bad_requests += 1
            if isinstance(e, asyncio.LimitOverrunError):
                return 431, text, b"request head too large\n", False
            return 400, text, b"incomplete request\n", False
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError(version)
            headers = {}
            for line in lines[1:]:
                if line:
                    k, sep, v = line.partition(":")
                    if not sep or not k or k != k.strip():
                        raise ValueError(line)
                    headers[k.lower()] = v.strip()
        except ValueError:
            self.bad_requests += 1
            return 400, text, b"malformed request\n", False
        if method not in ("GET", "HEAD"):
            return 405, {**text, "Allow": "GET, HEAD"}, b"only GET and HEAD\n", False
        path = target.split("?", 1)[0]
        if path == "/":
            return 200, text, _INDEX, method == "HEAD"
        if path != "/metrics":
            return 404, text, b"not found: try /metrics\n", method == "HEAD"
        try:
            encoder, ctype = choose_encoder(headers.get("accept", ""))
            body = encoder(self.metrics.registry)
        except Exception:
            log.exception("metrics: scrape failed")
            return 500, text, b"scrape failed; see the daemon's log\n", False
        self.scrapes += 1
        return 200, {"Content-Type": ctype}, body, method == "HEAD"

    def reconfigure(self, config: DaemonConfig) -> None:
        from svcmgr.metrics import section

        if section(config) != self.cfg:
            log.warning("metrics: the new listen address applies after a daemon restart")

    def statistics(self) -> dict[str, Any]:
        return {"listen": self.cfg.listen,
                "address": f"{self.address[0]}:{self.address[1]}" if self.address else None,
                "scrapes": self.scrapes, "bad_requests": self.bad_requests,
                "ereport_classes": len(self.metrics.classes), "open_cases": len(self.metrics.cases),
                "vrrp_ignored": self.metrics.vrrp_ignored}

    async def _op_status(self, caller: Any, req: dict[str, Any]) -> dict[str, Any]:
        """``{}`` -> where /metrics is served and how often it was scraped."""
        return self.statistics()
