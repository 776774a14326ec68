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
import errno
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
_BACKLOG = 64


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
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.requests = 0
        self.errors = 0
        #: open connections per uid; refusals of connections over a cap
        self.connections: Counter[int] = Counter()
        self._privileged: set[int] = set()
        self.refused = 0
        self._open: set[_Connection] = set()         # connections being served
        self._tasks: set[asyncio.Task[None]] = set()  # their requests being handled
        self._scratch = memoryview(bytearray(_CHUNK))  # what each read of a connection lands in

    def register(self, op: str, handler: Handler) -> None:
        if op in self.ops:
            raise ValueError(f"operation {op} registered twice")
        self.ops[op] = handler

    async def start(self) -> None:
        if len(self.path.encode()) >= 108:
            raise OSError(f"socket path too long for a Unix socket ({len(self.path)} bytes): {self.path}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            sock.bind(self.path)
            os.chmod(self.path, 0o666)
            sock.listen(_BACKLOG)
        except BaseException:
            sock.close()
            raise
        self._listener = sock
        self._loop.add_reader(sock.fileno(), self._accept)

    async def close(self) -> None:
        """Stop listening and end every connection; the requests still being handled are cancelled and
        awaited (at most 2 s), so no task outlives the socket."""
        if self._listener is not None:
            self._loop.remove_reader(self._listener.fileno())  # type: ignore[union-attr]
            self._listener.close()
            self._listener = None
        for conn in list(self._open):
            conn.abort()
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _accept(self) -> None:
        """Take the connections waiting (at most a backlog's worth per wake, as asyncio's servers do)."""
        assert self._listener is not None and self._loop is not None
        for _ in range(_BACKLOG):
            try:
                sock, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as e:
                if e.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                # out of descriptors or memory: the waiting connection stays in the backlog; try again later
                log.error("control socket: cannot accept a connection: %s; trying again in 1 s", e.strerror)
                self._loop.remove_reader(self._listener.fileno())
                self._loop.call_later(1.0, self._resume_accepting)
                return
            sock.setblocking(False)
            _Connection(self, sock, self._loop).start()

    def _resume_accepting(self) -> None:
        if self._listener is not None and self._loop is not None:
            self._loop.add_reader(self._listener.fileno(), self._accept)

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

    def _hold(self, caller: Caller) -> None:
        self.connections[caller.uid] += 1
        if caller.privileged:
            self._privileged.add(caller.uid)

    def _release(self, caller: Caller) -> None:
        self.connections[caller.uid] -= 1
        if self.connections[caller.uid] <= 0:
            del self.connections[caller.uid]

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


def _encode(reply: dict[str, Any]) -> bytes:
    result = reply.get("result")
    if isinstance(result, Encoded):  # what json.dumps makes of the reply, the result's text spliced in
        return f'{{"ok": true, "result": {result.text}}}\n'.encode()
    return json.dumps(reply, default=str).encode() + b"\n"


class _Connection:
    """One client, from its admission to the end of its reply, driven by the loop's readiness callbacks on the
    socket itself (no transport, stream or task of its own). The request is read in chunks of at most
    ``_CHUNK`` bytes, one per readiness, until a newline or the end of sending, within the idle time; it is
    handled in a task (``Api._tasks``, for ``Api.close``). The reply is closed on once the client took it,
    or dropped after the idle time. Past the cap, the refusal is written and what follows is dropped within
    bounds (4x the cap, 2 s, 0.2 s once it stops sending). It counts against the caps until it is closed
    and its request handled."""

    _DISCARD_SECONDS = 2.0  # the most time spent dropping what follows a request past the cap
    _DISCARD_PAUSE = 0.2    # ... and once the client stops sending (it waits for the reply)

    def __init__(self, api: Api, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.api = api
        self.sock = sock
        self.fd = sock.fileno()
        self.loop = loop
        self.caller: Caller | None = None  # set once admitted: it counts against the caps until released
        self.cap = 0
        self.buf = bytearray()
        self.out = memoryview(b"")     # what the socket has not taken yet
        self.reading = False           # the request is being read
        self.discarding = -1           # bytes still to drop after a request past the cap; -1: not dropping
        self.watching = False          # the loop tells when the socket is readable
        self.closing = False           # close once ``out`` is taken
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None  # the idle time, or the bound on dropping
        self.pause: asyncio.TimerHandle | None = None  # while dropping: the client stopped sending
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Admit the client, or refuse it with the reason; then read what it has sent already."""
        api = self.api
        try:
            caller = _peer(self.sock)
        except OSError as e:
            log.warning("control socket: cannot tell who is calling: %s", e)
            self.abort()
            return
        why = api._admit(caller)
        if why is not None:
            api.refused += 1
            self._write(json.dumps({"ok": False, "error": f"{why}; try again later", "code": 1}).encode() + b"\n")
            self._close()
            return
        self.caller = caller
        api._hold(caller)
        api._open.add(self)
        self.cap = api.limits.privileged_request if caller.privileged else api.limits.request
        self.reading = True
        self.timer = self.loop.call_later(api.limits.idle, self._close)  # an idle or slow client: dropped
        self._readable()  # a client most often sends its request as it connects

    def abort(self) -> None:
        """End the connection at once (the daemon is stopping, or the client is gone)."""
        if self.closed:
            return
        self.closed = True
        self._cancel_timers()
        self._watch(False)
        if self.out:
            self.loop.remove_writer(self.fd)
        self.sock.close()
        self.api._open.discard(self)
        if self.task is None or self.task.done():
            self._release()

    def _watch(self, on: bool) -> None:
        if on != self.watching:
            self.watching = on
            if on:
                self.loop.add_reader(self.fd, self._readable)
            else:
                self.loop.remove_reader(self.fd)

    def _readable(self) -> None:
        """One chunk of what the client sent (one per readiness, so that no client holds the loop)."""
        scratch = self.api._scratch
        try:
            n = self.sock.recv_into(scratch)
        except (BlockingIOError, InterruptedError):
            self._watch(True)
            return
        except OSError:  # reset by the client
            self.abort()
            return
        if not n:  # the client's end of sending
            self._watch(False)
            if self.reading:  # what came before it is the request
                self._dispatch()
            elif self.discarding >= 0:
                self._close()
        elif self.reading:
            end = scratch.obj.find(b"\n", 0, n)  # type: ignore[attr-defined]
            self.buf += scratch[:n if end < 0 else end + 1]
            if len(self.buf) > self.cap:
                self._too_large()
            elif end >= 0:
                self._dispatch()
            else:
                self._watch(True)
        elif self.discarding >= 0:
            self.discarding -= n
            if self.discarding <= 0:
                self._close()
            else:
                self._pause_dropping()

    def _dispatch(self) -> None:
        self.reading = False
        self._cancel_timers()
        self._watch(False)
        line, self.buf = bytes(self.buf), bytearray()
        if not line.strip():
            self._close()
            return
        self.task = task = self.loop.create_task(self._respond(line))
        self.api._tasks.add(task)
        task.add_done_callback(self.api._tasks.discard)

    async def _respond(self, line: bytes) -> None:
        assert self.caller is not None
        try:
            reply = await self.api.handle(self.caller, line)
            if not self.closed:
                self._write(_encode(reply))
                self._close()
        finally:
            if self.closed:
                self._release()

    def _too_large(self) -> None:
        self.reading = False
        self.buf = bytearray()
        self._cancel_timers()
        self._write(_encode({"ok": False, "error": f"bad request: larger than {self.cap} bytes", "code": 2}))
        self.discarding = 4 * self.cap
        self.timer = self.loop.call_later(self._DISCARD_SECONDS, self._close)
        self._pause_dropping()
        self._watch(True)

    def _pause_dropping(self) -> None:
        if self.pause is not None:
            self.pause.cancel()
        self.pause = self.loop.call_later(self._DISCARD_PAUSE, self._close)

    def _write(self, data: bytes) -> None:
        """Send what the socket takes now; the rest waits for it (``_writable``)."""
        if self.closed:
            return
        assert not self.out  # one reply per connection
        try:
            n = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:  # the client is gone
            self.abort()
            return
        if n < len(data):
            self.out = memoryview(data)[n:]
            self.loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        try:
            n = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.abort()
            return
        self.out = self.out[n:]
        if not self.out:
            self.loop.remove_writer(self.fd)
            if self.closing:
                self.abort()

    def _close(self) -> None:
        """Close once the client has taken what was written; drop it if it does not within the idle time."""
        self.reading = False
        self.discarding = -1
        self._cancel_timers()
        self._watch(False)
        if self.closed or self.closing:
            return
        if not self.out:
            self.abort()
            return
        self.closing = True
        self.timer = self.loop.call_later(self.api.limits.idle, self.abort)

    def _cancel_timers(self) -> None:
        for t in (self.timer, self.pause):
            if t is not None:
                t.cancel()
        self.timer = self.pause = None

    def _release(self) -> None:
        if self.caller is not None:
            self.api._release(self.caller)
            self.caller = None
