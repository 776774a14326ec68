"""Serving ``/metrics`` over HTTP on the daemon's event loop (``svcmgr.httpd``: strict HTTP/1.1).

``GET`` and ``HEAD`` only. The exposition is produced in the loop by prometheus-client
(loaded at the first scrape) from the registry in ``svcmgr.metrics``; no thread shares state with
the daemon. A port that cannot be bound is logged and the daemon goes on without the endpoint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from svcmgr import hostport
from svcmgr.httpd import TEXT, HttpServer, Request, Response

if TYPE_CHECKING:
    from svcmgr.component import Context
    from svcmgr.config import DaemonConfig
    from svcmgr.metrics import Metrics, MetricsConfig

__all__ = ["MetricsServer"]

log = logging.getLogger("svcmgr.metrics")

_INDEX = b"svcmgr: metrics at /metrics\n"


class MetricsServer:
    """The component: the metrics registry plus the HTTP endpoint."""

    name = "metrics"

    def __init__(self, ctx: Context, cfg: MetricsConfig, metrics: Metrics,
                 section: Callable[[DaemonConfig], MetricsConfig]) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.metrics = metrics
        self.http = HttpServer("metrics", self._handle, max_connections=32)
        self._section = section  # reads [metrics] (svcmgr.metrics.section), without importing it back
        self.scrapes = 0

    @property
    def address(self) -> tuple[str, int] | None:
        return self.http.address

    def setup(self) -> None:
        self.metrics.setup()
        self.ctx.api.register("metrics", self._op_status)

    async def run(self) -> None:
        try:
            await self.http.serve(self.cfg.host, self.cfg.port, self._bound)
        except OSError as e:
            log.error("metrics: cannot listen on %s: %s; /metrics is off", self.cfg.listen, e.strerror or e)

    @staticmethod
    def _bound(address: tuple[str, int]) -> None:
        """Say where /metrics listens, once bound: the port chosen when the configuration says port 0."""
        log.info("metrics: serving /metrics on %s", hostport.join(*address))

    async def _handle(self, req: Request, writer: asyncio.StreamWriter) -> Response:
        if req.method not in ("GET", "HEAD"):
            return Response.text(405, "only GET and HEAD\n", Allow="GET, HEAD")
        if req.path == "/":
            return Response(200, _INDEX, {"Content-Type": TEXT})
        if req.path != "/metrics":
            return Response.text(404, "not found: try /metrics\n")
        try:
            # imported here, at a scrape: prometheus-client is loaded at the first (svcmgr.metrics' docstring)
            from prometheus_client.exposition import choose_encoder

            encoder, ctype = choose_encoder(req.header("accept"))
            body = encoder(self.metrics.registry)
        except Exception:
            log.exception("metrics: scrape failed")
            return Response.text(500, "scrape failed; see the daemon's log\n")
        self.scrapes += 1
        return Response(200, body, {"Content-Type": ctype})

    def reconfigure(self, config: DaemonConfig) -> None:
        if self._section(config) != self.cfg:
            log.warning("metrics: the new listen address applies after a daemon restart")

    def statistics(self) -> dict[str, Any]:
        return {"listen": self.cfg.listen,
                "address": hostport.join(*self.address) if self.address else None,
                "scrapes": self.scrapes, "bad_requests": self.http.counters["bad_requests"],
                "ereport_classes": len(self.metrics.classes), "open_cases": len(self.metrics.cases),
                "vrrp_ignored": self.metrics.vrrp_ignored}

    async def _op_status(self, caller: Any, req: dict[str, Any]) -> dict[str, Any]:
        """``{}`` -> where /metrics is served and how often it was scraped."""
        return self.statistics()
