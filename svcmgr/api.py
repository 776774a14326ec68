"""The control socket: one JSON request and one JSON reply per connection.

The caller's uid and gid come from SO_PEERCRED. Anyone may read; root (and the
user the daemon runs as) may do anything; a manifest's ``[authorizations]``
delegate actions on that one service to named users or groups, as SMF's
``action_authorization`` and ``value_authorization`` do (``svcmgr.authz`` decides,
for every operation that asks). Every request is
validated and a bad one gets a reply that names what is wrong; nothing a client
sends can stop the daemon.

What one client may hold of the daemon is bounded (``Limits``, sized from the
descriptor limit so that the daemon keeps a reserve for its own work): connections
per user and in total, with room kept for root; the time to send a whole request
and to take the reply; a request's size (1 MiB, more for root), read in chunks so
that a refused one costs nothing afterwards.

Request: ``{"op": NAME, ...arguments}``. Reply: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": TEXT, "code": N}`` (1: refused or failed, 2: bad usage).
Operations are the table ``Api.ops`` (name -> handler), each documented at its handler;
components add theirs with ``register``.
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
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from svcmgr.jsontext import unpaired_surrogate

__all__ = ["Api", "ApiError", "Caller", "Encoded", "Limits", "arg"]

log = logging.getLogger("svcmgr.api")

Handler = Callable[["Caller", dict[str, Any]], Awaitable[Any]]
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Limits:
    """What clients may hold of the daemon (docs/security.md, "any local user")."""

    request: int = 1 << 20             # bytes of one request from an ordinary user
    privileged_request: int = 16 << 20  # ... from root (imports of large manifest folders)
    idle: float = 10.0                 # seconds to send a whole request, and to take the reply
    per_user: int = 32                 # connections one ordinary user may hold at once
    total: int = 256                   # connections all ordinary users may hold together
    privileged: int = 64               # connections kept for root beyond ``total``

    @classmethod
    def for_descriptors(cls, nofile: int) -> Limits:
        """Caps that leave at least half of ``nofile`` descriptors to the daemon's own work
        (services' logs, pipes, pidfds, cgroups): clients get at most the other half."""
        room = max(8, nofile // 2)
        total = min(cls.total, room * 3 // 4)
        return cls(total=total, privileged=min(cls.privileged, room - total), per_user=min(cls.per_user, total))


class Encoded:
    """A result its handler has encoded as JSON already (``text``, what ``json.dumps`` would make of it):
    the reply carries it as it is; an in-process ``call`` gets it decoded."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _TooLarge(Exception):
    pass


class ApiError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Caller:
    """Who is on the other end of a connection (``SO_PEERCRED``). ``groups``: the gid and, for an ordinary
    caller, the supplementary groups; a privileged caller's are not read, as it holds every right."""

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
    privileged = uid == 0 or uid == os.geteuid()
    if not privileged:  # a privileged caller holds every right: its groups are never asked (authz.allowed)
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    groups.update(int(x) for x in line.split()[1:])
                    break
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

    def __init__(self, path: str, limits: Limits | None = None) -> None:
        self.path = path
        self.limits = limits or Limits()
        self.ops: dict[str, Handler] = {}
        self._server: asyncio.AbstractServer | None = None
        self.requests = 0
        self.errors = 0
        #: open connections per uid; refusals of connections over a cap
        self.connections: Counter[int] = Counter()
        self._privileged: set[int] = set()
        self.refused = 0
        self._serving: set[asyncio.Task[Any]] = set()  # one per open connection, for ``close``

    def register(self, op: str, handler: Handler) -> None:
        if op in self.ops:
            raise ValueError(f"operation {op} registered twice")
        self.ops[op] = handler

    async def start(self) -> None:
        if len(self.path.encode()) >= 108:
            raise OSError(f"socket path too long for a Unix socket ({len(self.path)} bytes): {self.path}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._serve, self.path, limit=_CHUNK, backlog=64)
        os.chmod(self.path, 0o666)

    async def close(self) -> None:
        """Stop listening and end every open connection: the requests still being read or handled are
        cancelled and awaited (at most 2 s), so no task outlives the socket."""
        if self._server is not None:
            self._server.close()
            serving = list(self._serving)
            for task in serving:
                task.cancel()
            if serving:
                await asyncio.wait(serving, timeout=2)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _admit(self, caller: Caller) -> str | None:
        """None when the caller may open one more connection, else why not."""
        lim = self.limits
        ordinary = sum(n for uid, n in self.connections.items() if uid not in self._privileged)
        if caller.privileged:
            if sum(self.connections.values()) >= lim.total + lim.privileged:
                return "too many connections"
            return None
        if self.connections[caller.uid] >= lim.per_user:
            return f"too many connections from {caller.describe()} (at most {lim.per_user} at once)"
        if ordinary >= lim.total:
            return f"too many connections from ordinary users (at most {lim.total} at once)"
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        caller: Caller | None = None
        task = asyncio.current_task()  # the server's, one per connection
        assert task is not None
        self._serving.add(task)
        try:
            caller = _peer(writer.get_extra_info("socket"))
            why = self._admit(caller)
            if why is not None:
                self.refused += 1
                caller = None
                writer.write(json.dumps({"ok": False, "error": f"{why}; try again later", "code": 1}).encode()
                             + b"\n")
                return
            self.connections[caller.uid] += 1
            if caller.privileged:
                self._privileged.add(caller.uid)
            cap = self.limits.privileged_request if caller.privileged else self.limits.request
            try:
                async with asyncio.timeout(self.limits.idle):
                    line = await _read_request(reader, cap)
            except _TooLarge:
                await self._reply(writer, {"ok": False, "error": f"bad request: larger than {cap} bytes", "code": 2})
                await _discard(reader, 4 * cap)  # so the client reads the reply instead of a reset
                return
            except TimeoutError:
                return  # an idle or slow client: dropped
            if not line.strip():
                return
            reply = await self.handle(caller, line)
            await self._reply(writer, reply)
        except (ConnectionError, TimeoutError, asyncio.CancelledError):
            pass
        finally:
            self._serving.discard(task)
            if caller is not None:
                self.connections[caller.uid] -= 1
                if self.connections[caller.uid] <= 0:
                    del self.connections[caller.uid]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _reply(self, writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
        """Send a reply; a client that does not take it within the idle time is dropped."""
        result = reply.get("result")
        if isinstance(result, Encoded):  # what json.dumps makes of the reply, the result's text spliced in
            writer.write(f'{{"ok": true, "result": {result.text}}}\n'.encode())
        else:
            writer.write(json.dumps(reply, default=str).encode() + b"\n")
        async with asyncio.timeout(self.limits.idle):
            await writer.drain()

    async def call(self, caller: Caller, op: str, **args: Any) -> Any:
        """Run one operation for a caller inside the daemon (the web dashboard): the same handler and the
        same authorization as a request on the socket. Raises ApiError."""
        handler = self.ops.get(op)
        if handler is None:
            raise ApiError(f"bad request: unknown operation {op!r}", 2)
        self.requests += 1
        try:
            result = await handler(caller, {"op": op, **args})
        except ApiError:
            self.errors += 1
            raise
        return json.loads(result.text) if isinstance(result, Encoded) else result

    async def handle(self, caller: Caller, line: bytes) -> dict[str, Any]:
        self.requests += 1
        try:
            try:
                req = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ApiError(f"bad request: not JSON: {e}", 2) from None
            if not isinstance(req, dict):
                raise ApiError("bad request: expected a JSON object", 2)
            bad = unpaired_surrogate(line, req)
            if bad is not None:  # stored as a property value, it made root's ``svccfg export`` fail
                raise ApiError(f"bad request: holds text that is not Unicode (an unpaired surrogate, {bad})", 2)
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


async def _read_request(reader: asyncio.StreamReader, cap: int) -> bytes:
    """One request line (or what came before the client stopped sending); _TooLarge past ``cap`` bytes.
    Read in chunks: the buffer never holds more than ``cap`` and a chunk."""
    buf = bytearray()
    while True:
        chunk = await reader.read(_CHUNK)
        if not chunk:
            return bytes(buf)
        end = chunk.find(b"\n")
        if end >= 0:
            buf += chunk[:end + 1]
            if len(buf) > cap:
                raise _TooLarge
            return bytes(buf)
        buf += chunk
        if len(buf) > cap:
            raise _TooLarge


async def _discard(reader: asyncio.StreamReader, limit: int, seconds: float = 2.0, pause: float = 0.2) -> None:
    """Read and drop what a client still sends, within bounds: at most ``limit`` bytes and ``seconds``,
    and no longer than ``pause`` once it stops sending (it waits for the reply)."""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(seconds):
            n = 0
            while n < limit:
                chunk = await asyncio.wait_for(reader.read(_CHUNK), pause)
                if not chunk:
                    return
                n += len(chunk)
