"""The control socket's connections: how many each caller may hold, and bytes in and out within bounds.

One request line in, one reply out, per connection; ``svcmgr.api`` says who is calling (``Caller``, from
SO_PEERCRED) and turns the line into the reply. Admission keeps the caps of ``Limits`` (per ordinary user,
all ordinary users together, a reserve for root) and refuses past them with the reason. A request is read in
chunks of at most 64 KiB until its newline or the client's end of sending, within the idle time and the size
cap; past the cap it is refused and what follows dropped within bounds. The reply must be taken within the
idle time.

Connections are driven by the loop's readiness callbacks on the socket itself (``add_reader``/``add_writer``,
timers by ``call_later``): no transport, stream or task per connection, only a task for each request while
its handler runs. ``Server.close`` ends every connection, and cancels and awaits those tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # svcmgr.api imports this module; these are only its types
    from svcmgr.api import Caller, Limits

__all__ = ["Identify", "Respond", "Server"]

log = logging.getLogger("svcmgr.api")

_CHUNK = 1 << 16  # the most read from a client at once
_BACKLOG = 64
_CLOSE_WAIT = 2.0  # the most ``close`` waits for the requests it cancelled


#: who is calling on a connected socket (``svcmgr.api``: SO_PEERCRED); OSError when it cannot be told
Identify = Callable[[socket.socket], "Caller"]
#: what answers a request: the caller and its request line (without what followed it) -> the reply line
Respond = Callable[["Caller", bytes], Awaitable[bytes]]


def _refusal(error: str, code: int) -> bytes:
    return json.dumps({"ok": False, "error": error, "code": code}).encode() + b"\n"


class Server:
    """The listening socket at ``path`` (mode 0666) and its connections, each answered by ``respond``.
    ``connections``: those open per uid (each counts until it is closed and its request handled);
    ``refused``: the connections refused over a cap."""

    def __init__(self, path: str, limits: Limits, identify: Identify, respond: Respond) -> None:
        self.path = path
        self.limits = limits
        self.identify = identify
        self.respond = respond
        self.connections: Counter[int] = Counter()
        self.refused = 0
        self._privileged: set[int] = set()
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open: set[_Connection] = set()         # every connection not yet closed
        self._tasks: set[asyncio.Task[None]] = set()  # the requests being handled
        self._scratch = memoryview(bytearray(_CHUNK))  # what each read of a connection lands in

    async def start(self) -> None:
        if len(self.path.encode()) >= 108:
            raise OSError(f"socket path too long for a Unix socket ({len(self.path)} bytes): {self.path}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            sock.bind(self.path)
            os.chmod(self.path, 0o666)
            sock.listen(_BACKLOG)
        except BaseException:
            sock.close()
            raise
        self._loop, self._listener = loop, sock
        loop.add_reader(sock.fileno(), self._accept)

    async def close(self) -> None:
        """Stop listening and end every connection at once; the requests still being handled are cancelled
        and awaited (at most 2 s), so no task outlives the socket. Closing again does nothing more."""
        if self._listener is not None and self._loop is not None:
            self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        for conn in list(self._open):
            conn.abort()
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=_CLOSE_WAIT)
            if pending:
                log.warning("control socket: %d requests still handled %g s after they were cancelled",
                            len(pending), _CLOSE_WAIT)
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
            conn = _Connection(self, sock, self._loop)
            self._open.add(conn)
            conn.start()

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


class _Connection:
    """One client, from its admission to the end of its reply, driven by the loop's readiness callbacks on the
    socket itself. The request is read one chunk per readiness (so that no client holds the loop) until a
    newline or the end of sending, within the idle time; it is handled in a task (``Server._tasks``). The
    connection is closed once the client took the reply, or dropped after the idle time. Past the cap, the
    refusal is written and what follows is dropped within bounds (4x the cap, 2 s, 0.2 s once it stops
    sending). It counts against the caps until it is closed and its request handled."""

    _DISCARD_SECONDS = 2.0  # the most time spent dropping what follows a request past the cap
    _DISCARD_PAUSE = 0.2    # ... and once the client stops sending (it waits for the reply)

    def __init__(self, server: Server, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
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
        server = self.server
        try:
            caller = server.identify(self.sock)
        except OSError as e:
            log.warning("control socket: cannot tell who is calling: %s", e)
            self.abort()
            return
        why = server._admit(caller)
        if why is not None:
            server.refused += 1
            self._write(_refusal(f"{why}; try again later", 1))
            self._close()
            return
        self.caller = caller
        server._hold(caller)
        self.cap = server.limits.privileged_request if caller.privileged else server.limits.request
        self.reading = True
        self.timer = self.loop.call_later(server.limits.idle, self._close)  # an idle or slow client: dropped
        self._readable()  # a client most often sends its request as it connects

    def abort(self) -> None:
        """End the connection at once (the daemon is stopping, the client is gone, or its time is up)."""
        if self.closed:
            return
        self.closed = True
        self._cancel_timers()
        self._watch(False)
        if self.out:
            self.loop.remove_writer(self.fd)
        self.sock.close()
        self.server._open.discard(self)
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
        """One chunk of what the client sent."""
        scratch = self.server._scratch
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
        if not line.strip():  # an empty request: closed without a reply
            self._close()
            return
        self.task = task = self.loop.create_task(self._respond(line))
        self.server._tasks.add(task)
        task.add_done_callback(self._handled)

    async def _respond(self, line: bytes) -> None:
        assert self.caller is not None
        try:
            reply = await self.server.respond(self.caller, line)
        except Exception:  # a bug in making the reply: the client is dropped, the daemon goes on
            log.exception("control socket: no reply to a request")
            self.abort()
            return
        if not self.closed:
            self._write(reply)
            self._close()

    def _handled(self, task: asyncio.Task[None]) -> None:
        """The request's task is done (or was cancelled, even before it ran): a closed connection is let go."""
        self.server._tasks.discard(task)
        if self.closed:
            self._release()

    def _too_large(self) -> None:
        self.reading = False
        self.buf = bytearray()
        self._cancel_timers()
        self._write(_refusal(f"bad request: larger than {self.cap} bytes", 2))
        if self.closed:  # the client is gone
            return
        self.discarding = 4 * self.cap  # so the client reads the refusal instead of a reset
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
        self.timer = self.loop.call_later(self.server.limits.idle, self.abort)

    def _cancel_timers(self) -> None:
        for t in (self.timer, self.pause):
            if t is not None:
                t.cancel()
        self.timer = self.pause = None

    def _release(self) -> None:
        if self.caller is not None:
            self.server._release(self.caller)
            self.caller = None
