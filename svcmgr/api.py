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
that a refused one costs nothing afterwards. ``svcmgr.apiserver`` serves the connections
within these bounds; this module turns each request into its reply.

Request: ``{"op": NAME, ...arguments}``. Reply: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": TEXT, "code": N}`` (1: refused or failed, 2: bad usage).
Operations are the table ``Api.ops`` (name -> handler), each documented at its handler;
components add theirs with ``register``.
"""

from __future__ import annotations

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

from svcmgr.apiserver import Server
from svcmgr.jsontext import unpaired_surrogate

__all__ = ["Api", "ApiError", "Caller", "Encoded", "Limits", "arg"]

log = logging.getLogger("svcmgr.api")

Handler = Callable[["Caller", dict[str, Any]], Awaitable[Any]]


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


#: The caller's supplementary groups as the kernel took them at connect (Linux 4.13), beside SO_PEERCRED.
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)
_PEER_GROUPS = 256  # the most one getsockopt of Python's reads (1024 bytes)


def _peer_groups(sock: socket.socket, pid: int, uid: int) -> set[int]:
    """An ordinary caller's supplementary groups, as the kernel recorded them when it connected
    (``SO_PEERGROUPS``). ``/proc/PID/status`` is read only where the kernel cannot say (older than 4.13,
    or more than 256 groups), and only if that process is still the caller's user: a caller that exits
    leaves its pid to the next process, whose groups are not the caller's."""
    with contextlib.suppress(OSError):
        data = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 4 * _PEER_GROUPS)
        return set(struct.unpack(f"{len(data) // 4}I", data))
    with contextlib.suppress(OSError, ValueError, IndexError, KeyError), open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
        if int(fields["Uid"].split()[0]) == uid:
            return {int(x) for x in fields["Groups"].split()}
    return set()


def _peer(sock: socket.socket) -> Caller:
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", data)
    groups = {gid}
    privileged = uid == 0 or uid == os.geteuid()
    if not privileged:  # a privileged caller holds every right: its groups are never asked (authz.allowed)
        groups |= _peer_groups(sock, pid, uid)
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
    """The table of operations, and the socket that serves it (``svcmgr.apiserver``)."""

    def __init__(self, path: str, limits: Limits | None = None) -> None:
        self.path = path
        self.limits = limits or Limits()
        self.ops: dict[str, Handler] = {}
        self.requests = 0
        self.errors = 0
        self._server = Server(path, self.limits, _peer, self.respond)

    @property
    def connections(self) -> Counter[int]:
        """Open connections per uid."""
        return self._server.connections

    @property
    def refused(self) -> int:
        """Connections refused over a cap."""
        return self._server.refused

    def register(self, op: str, handler: Handler) -> None:
        if op in self.ops:
            raise ValueError(f"operation {op} registered twice")
        self.ops[op] = handler

    async def start(self) -> None:
        """Listen at ``path`` (mode 0666)."""
        await self._server.start()

    async def close(self) -> None:
        """Stop listening and end every connection; the requests still being handled are cancelled and
        awaited (at most 2 s), so no task outlives the socket."""
        await self._server.close()

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

    async def respond(self, caller: Caller, line: bytes) -> bytes:
        """The reply line to a request line (``handle``'s reply, encoded)."""
        reply = await self.handle(caller, line)
        result = reply.get("result")
        if isinstance(result, Encoded):  # what json.dumps makes of the reply, the result's text spliced in
            return f'{{"ok": true, "result": {result.text}}}\n'.encode()
        try:
            return json.dumps(reply, default=str).encode() + b"\n"
        except (TypeError, ValueError) as e:  # a handler's result JSON cannot hold (a circular one)
            self.errors += 1
            log.exception("request failed: its result cannot be sent")
            return json.dumps({"ok": False, "error": f"internal error: {type(e).__name__}: {e}",
                               "code": 1}).encode() + b"\n"

    async def handle(self, caller: Caller, line: bytes) -> dict[str, Any]:
        self.requests += 1
        try:
            try:
                req = json.loads(line)
            except RecursionError:  # any user may send 100,000 brackets: not a bug of ours
                raise ApiError("bad request: not JSON: nested too deeply", 2) from None
            except ValueError as e:  # malformed, not UTF-8, or an integer longer than Python converts
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
