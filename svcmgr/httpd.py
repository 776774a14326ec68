"""The daemon's HTTP endpoints (``/metrics``, the dashboard): a small, strict HTTP/1.1 server on asyncio.

One request per connection (``Connection: close``); the request head is limited in size
(``MAX_HEAD``), line count and time, a body in size (``Content-Length`` only: no chunked
uploads); connections are capped, and one over the cap gets ``503`` at once. A handler
returns a ``Response``, or writes a stream itself (server-sent events) and returns None.
A bug in a handler answers ``500`` and never stops the daemon. No thread shares state
with the daemon: everything runs on its event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["HttpError", "HttpServer", "Request", "Response", "head_bytes"]

log = logging.getLogger("svcmgr.httpd")

MAX_HEAD = 16 * 1024
MAX_HEADERS = 100
HEAD_TIMEOUT = 10.0
BODY_TIMEOUT = 10.0
MAX_FIELDS = 50

REASONS = {200: "OK", 204: "No Content", 303: "See Other", 304: "Not Modified", 400: "Bad Request",
           401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 411: "Length Required", 413: "Content Too Large",
           415: "Unsupported Media Type", 421: "Misdirected Request", 429: "Too Many Requests",
           431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
           503: "Service Unavailable"}
TEXT = "text/plain; charset=utf-8"


class HttpError(Exception):
    """A request refused: the status and a one-line reason for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    peer: str = ""

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def form(self) -> dict[str, str]:
        """The body as an HTML form (``application/x-www-form-urlencoded``): one value per field."""
        ctype = self.header("content-type").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise HttpError(415, "expected a form (application/x-www-form-urlencoded)")
        try:
            pairs = parse_qs(self.body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(self.body),
                             max_num_fields=MAX_FIELDS)
        except (UnicodeDecodeError, ValueError) as e:
            raise HttpError(400, f"malformed form: {e}") from None
        out = {}
        for k, vs in pairs.items():
            if len(vs) != 1:
                raise HttpError(400, f"form field {k!r} given {len(vs)} times")
            out[k] = vs[0]
        return out

    def cookie(self, name: str) -> str | None:
        for part in self.header("cookie").split(";"):
            k, sep, v = part.strip().partition("=")
            if sep and k == name:
                return v
        return None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, status: int, text: str, **headers: str) -> Response:
        return cls(status, text.encode(), {"Content-Type": TEXT, **headers})


def head_bytes(status: int, headers: dict[str, str]) -> bytes:
    """A response's status line and headers, each header value checked to be one line."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    for k, v in headers.items():
        if "\r" in v or "\n" in v or "\r" in k or "\n" in k:
            raise ValueError(f"header {k!r} would span lines")
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


async def read_request(reader: asyncio.StreamReader, *, max_body: int, peer: str = "") -> Request:
    """Read and parse one request; raises HttpError naming what is wrong."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
    except asyncio.LimitOverrunError:
        raise HttpError(431, f"request head larger than {MAX_HEAD} bytes") from None
    except asyncio.IncompleteReadError:
        raise HttpError(400, "incomplete request") from None
    except TimeoutError:
        raise HttpError(408, f"request head not received within {HEAD_TIMEOUT:g}s") from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise HttpError(400, "malformed request line") from None
    if not version.startswith("HTTP/1.") or not target.startswith("/"):
        raise HttpError(400, "not an HTTP/1.x request for a path")
    headers: dict[str, str] = {}
    hlines = [x for x in lines[1:] if x]
    if len(hlines) > MAX_HEADERS:
        raise HttpError(431, f"more than {MAX_HEADERS} header lines")
    for line in hlines:
        k, sep, v = line.partition(":")
        if not sep or not k or k != k.strip() or any(c in k for c in " \t"):
            raise HttpError(400, "malformed header line")
        k = k.lower()
        if k in headers and k in ("host", "content-length", "origin", "cookie", "sec-fetch-site",
                                  "content-type", "transfer-encoding"):
            raise HttpError(400, f"header {k} given twice")
        headers[k] = v.strip()
    if headers.get("transfer-encoding"):
        raise HttpError(501, "Transfer-Encoding is not supported; send Content-Length")
    body = b""
    length = headers.get("content-length", "")
    if length:
        if not length.isdigit():
            raise HttpError(400, "bad Content-Length")
        n = int(length)
        if n > max_body:
            raise HttpError(413, f"body of {n} bytes is larger than {max_body}")
        try:
            body = await asyncio.wait_for(reader.readexactly(n), BODY_TIMEOUT)
        except asyncio.IncompleteReadError:
            raise HttpError(400, "incomplete body") from None
        except TimeoutError:
            raise HttpError(408, f"body not received within {BODY_TIMEOUT:g}s") from None
    elif method == "POST":
        raise HttpError(411, "Content-Length is required")
    try:
        parts = urlsplit(target)
        path = unquote(parts.path, errors="strict")
        query = parse_qs(parts.query, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise HttpError(400, "malformed target") from None
    return Request(method, target, path, query, headers, body, peer)


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[Response | None]]


class HttpServer:
    """Listens on one address; each connection is one request to ``handler``."""

    def __init__(self, name: str, handler: Handler, *, max_connections: int = 64, max_body: int = 0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.name = name
        self.handler = handler
        self.max_connections = max_connections
        self.max_body = max_body
        self.ssl = ssl_context
        self.active = 0
        self.address: tuple[str, int] | None = None
        self.counters = {"requests": 0, "bad_requests": 0, "refused": 0, "errors": 0}

    async def serve(self, host: str, port: int, bound: Callable[[tuple[str, int]], None] | None = None) -> None:
        """Serve until cancelled; OSError when the address cannot be bound. ``bound`` is told the address once
        bound (with port 0, the port the kernel chose)."""
        server = await asyncio.start_server(self._connection, host, port, limit=MAX_HEAD, reuse_address=True,
                                            ssl=self.ssl)
        sock = server.sockets[0].getsockname()
        self.address = (sock[0], sock[1])
        if bound is not None:
            bound(self.address)
        try:
            async with server:
                await server.serve_forever()
        finally:
            server.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.active >= self.max_connections:
                self.counters["refused"] += 1
                await _send(writer, Response.text(503, "too many connections; try again\n", **{"Retry-After": "2"}))
                return
            self.active += 1
            try:
                await self._one(reader, writer)
            finally:
                self.active -= 1
        except (ConnectionError, TimeoutError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            req = await read_request(reader, max_body=self.max_body, peer=str(peer[0]) if peer else "")
        except HttpError as e:
            self.counters["bad_requests"] += 1
            await _send(writer, Response.text(e.status, e.message + "\n", **e.headers))
            return
        self.counters["requests"] += 1
        try:
            resp = await self.handler(req, writer)
        except HttpError as e:
            resp = Response.text(e.status, e.message + "\n", **e.headers)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            self.counters["errors"] += 1
            log.exception("%s: %s %s failed", self.name, req.method, req.path)
            resp = Response.text(500, "internal error; see the daemon's log\n")
        if resp is not None:
            await _send(writer, resp, head_only=req.method == "HEAD")


async def _send(writer: asyncio.StreamWriter, resp: Response, *, head_only: bool = False) -> None:
    headers = {"Content-Length": str(len(resp.body)), "Connection": "close", **resp.headers}
    writer.write(head_bytes(resp.status, headers))
    if not head_only:
        writer.write(resp.body)
    await writer.drain()
