"""The control socket: one JSON request and one JSON reply per connection.

The caller's uid and gid come from SO_PEERCRED. Anyone may read; root (and the
user the daemon runs as) may do anything; a manifest's ``[authorizations]``
delegate actions on that one service to named users or groups, as SMF's
``action_authorization`` and ``value_authorization`` do (``svcmgr.authz`` decides,
for every operation that asks). Every request is
validated and a bad one gets a reply that names what is wrong; nothing a client
sends can stop the daemon.

Request: ``{"op": NAME, ...arguments}``. Reply: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": TEXT, "code": N}`` (1: refused or failed, 2: bad usage).
Operations and their arguments are listed in ``Api.OPS`` and documented at each
handler; other packages add theirs with ``register``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Api", "ApiError", "Caller", "arg"]

log = logging.getLogger("svcmgr.api")

MAX_REQUEST = 16 * 1024 * 1024
Handler = Callable[["Caller", dict[str, Any]], Awaitable[Any]]


class ApiError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Caller:
    pid: int
    uid: int
    gid: int
    groups: frozenset[int]
    privileged: bool

    @property
    def name(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)

    def describe(self) -> str:
        return f"uid {self.uid} ({self.name})"


def _peer(sock: socket.socket) -> Caller:
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", data)
    groups = {gid}
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Groups:"):
                groups.update(int(x) for x in line.split()[1:])
                break
    privileged = uid == 0 or uid == os.geteuid()
    return Caller(pid, uid, gid, frozenset(groups), privileged)


_MISSING = object()


def arg(req: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = _MISSING, *,
        choices: tuple[Any, ...] | None = None) -> Any:
    """A validated request argument; a missing or mistyped one is a bad request (code 2)."""
    if key not in req or (req[key] is None and default is not _MISSING):
        if default is _MISSING:

            raise ApiError(f"bad request: {req.get('op')}: missing argument {key!r}", 2)
        return default
    v = req[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(v, bool) and bool not in kinds) or not isinstance(v, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ApiError(f"bad request: {req.get('op')}: argument {key!r} must be {names}, "
                       f"not {type(v).__name__}", 2)
    if kinds == (list,) and not all(isinstance(x, str) for x in v):
        raise ApiError(f"bad request: {req.get('op')}: argument {key!r} must be a list of strings", 2)
    if choices is not None and v not in choices:
        raise ApiError(f"bad request: {req.get('op')}: argument {key!r} must be one of "
                       f"{', '.join(map(str, choices))}", 2)
    return v


class Api:
    """The socket server and the table of operations."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.ops: dict[str, Handler] = {}
        self._server: asyncio.AbstractServer | None = None
        self.requests = 0
        self.errors = 0

    def register(self, op: str, handler: Handler) -> None:
        if op in self.ops:
            raise ValueError(f"operation {op} registered twice")
        self.ops[op] = handler

    async def start(self) -> None:
        if len(self.path.encode()) >= 108:
            raise OSError(f"socket path too long for a Unix socket ({len(self.path)} bytes): {self.path}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._serve, self.path, limit=MAX_REQUEST)
        os.chmod(self.path, 0o666)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            caller = _peer(sock)
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as e:
                line = e.partial
            except (asyncio.LimitOverrunError, ValueError):
                reply = {"ok": False, "error": f"bad request: larger than {MAX_REQUEST} bytes", "code": 2}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
                await _discard(reader)  # so the client reads the reply instead of a reset
                return

            if not line.strip():
                return
            reply = await self.handle(caller, line)
            writer.write(json.dumps(reply, default=str).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def handle(self, caller: Caller, line: bytes) -> dict[str, Any]:
        self.requests += 1
        try:
            try:
                req = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ApiError(f"bad request: not JSON: {e}", 2) from None
            if not isinstance(req, dict):
                raise ApiError("bad request: expected a JSON object", 2)
            op = req.get("op")
            if not isinstance(op, str) or op not in self.ops:
                raise ApiError(f"bad request: unknown operation {op!r}", 2)
            result = await self.ops[op](caller, req)
            return {"ok": True, "result": result}
        except ApiError as e:
            self.errors += 1
            return {"ok": False, "error": str(e), "code": e.code}
        except Exception as e:  # a bug in one handler must not take the daemon down
            self.errors += 1
            log.exception("request failed")
            return {"ok": False, "error": f"internal error: {type(e).__name__}: {e}", "code": 1}


async def _discard(reader: asyncio.StreamReader, limit: int = 4 * MAX_REQUEST, seconds: float = 2.0) -> None:
    """Read and drop what a client still sends, within bounds."""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(seconds):
            n = 0
            while n < limit:
                chunk = await reader.read(1 << 16)
                if not chunk:
                    return
                n += len(chunk)
