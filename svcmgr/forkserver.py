"""The daemon's side of the spawn helper: a small process that creates the daemon's children.

Forking costs in proportion to the parent's address space: page tables copied, pages
made copy-on-write, faults afterwards. The daemon is tens of MiB; the helper is a bare
interpreter (``python -I -S`` running ``svcmgr.spawnhelper.serve``, standard library only:
a few MiB), started once with one end of a private socket pair (never bound to a name,
so only the daemon can ask it anything). For each request it ``posix_spawn``s the child
(vfork-style: no page table copied, no Python run in the child), standing in the contract's
group meanwhile so that the child is born there (the group's descriptor comes with the
request); a lone spawn into a group after a pause, when that move would wait for an RCU
grace period, is a ``clone3`` with ``CLONE_INTO_CGROUP`` and ``CLONE_PARENT`` (the child is
the daemon's, ``svcmgr.spawn.exec_child`` runs in it). ``svcmgr.spawnhelper`` says how.

A ``posix_spawn`` child is the helper's: the helper reaps it and relays ``(pid, wait status)``
after its reply, and ``Reaper.exited`` hands that over exactly as if the daemon had reaped it
(the exit codes, signals and core dumps unchanged). ``close`` lets the helper go in order: it
relays what it has reaped and exits, and the daemon reads until the end of the stream, so no
end is lost; the children still running are re-parented to the daemon (a child subreaper,
which ``execve`` keeps) and reaped by it, as after any death of the helper. So that a relay is
not in the way of every later restart, a helper idle for ``spawnhelper.HANDOVER`` seconds with
children of its own hands over to a fork of itself and exits: those children are the daemon's from
then on, reaped by it with no hop, and the successor (named in the old helper's last message)
serves the same socket.

In a burst, a spare helper forked from the first, with a socket pair of its own, takes requests too,
so that a spawn does not wait for the exec of another's child (``svcmgr.forkservers``).

It also does the file-system work of a start that would otherwise wait on the daemon's event
loop (making a file costs the journal a millisecond or so under load): it opens the instance's
FIFO by name for the child, makes it at the first spawn and hands its reading end back with the
reply, and makes the instance's log file when asked (``open_log``), handing back its descriptor
(``SCM_RIGHTS``), under the rules of ``svcmgr.safefs.open_own``. What it cannot open, the daemon
tries itself, and says why.

A reply says "running, pid N, started at tick T" (the start time ``/proc/PID/stat`` gives, which the
contract's record keeps: ``born``), "could not exec, errno E" (execvp's), or that the clone failed
(then the daemon spawns in-process, as it does without a helper, and for methods whose
credentials need the child). A request goes out at once and the daemon goes on while the helper
spawns on another CPU (replies carry the request's number). The reply registers the child with
the reaper before anything else runs; while requests are out the reaper holds back the exits of
children it does not know (a cloned child, the daemon's, may end before its reply is read). The
helper exits when the daemon's end closes, and with the daemon (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import itertools
import logging
import marshal
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from svcmgr.process import Child, ExitStatus
from svcmgr.spawn import MAX_REQUEST, candidates_for
from svcmgr.spawnhelper import EXIT

#: what ``os.fsencode`` encodes a str with
_FS_ENCODING = (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())

if TYPE_CHECKING:
    from svcmgr.reaper import Reaper

__all__ = ["ForkServer", "HelperUnavailable"]

log = logging.getLogger("svcmgr.forkserver")

WINDOW = 32
#: at most this many log files asked for at once (more wait in the daemon, in order)
FILE_WINDOW = 16
_REPLY = 128
#: At a close, how long the daemon waits for the helper's last messages (the ends it has reaped).
QUIT_WAIT = 2.0

#: Where a descriptor the helper opened goes: the descriptor, or None when the helper could not open it.
Given = Callable[[int | None], None]


class HelperUnavailable(Exception):
    """The helper cannot spawn this (it is gone, or clone3 failed there): spawn in-process instead."""


class ForkServer:
    """Starts the helper, sends it requests and matches its replies (by number: a child that execs
    sooner is answered sooner)."""

    def __init__(self, reaper: Reaper, *, spare: bool = False,
                 on_idle: Callable[[ForkServer], None] | None = None) -> None:
        self.reaper = reaper
        #: a spare helper (``ForkServers``): it says when it is ready, and when idle (``on_idle``)
        self.spare = spare
        self.ready = not spare
        self._on_idle = on_idle
        self.pid: int | None = None
        self._sock: socket.socket | None = None
        self._pending: dict[int, tuple[asyncio.Future[Child], str, Given | None]] = {}
        #: log files asked for (number -> where the descriptor goes), and those still to ask for
        self._files: dict[int, Given] = {}
        self._unsent: collections.deque[tuple[int, bytes]] = collections.deque()
        self._numbers = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: at most this many requests out at once (their messages fit in the socket's buffer)
        self._window = asyncio.Semaphore(WINDOW)
        #: set while no spawn waits for its reply
        self._idle = asyncio.Event()
        self._idle.set()
        self.spawned = 0
        #: how many times the helper handed over to a fork of itself (``svcmgr.spawnhelper``)
        self.handovers = 0
        self.why_not: str | None = None
        #: the start times (clock ticks since boot) of the helper's children, from its replies, until asked for
        #: (``born``) or until their ends are relayed (a pid may be used again then)
        self._born: dict[int, int] = {}
        #: ``close`` is reading the helper's last messages
        self._quitting = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the helper (a known child of the reaper's); raises OSError when it cannot be."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        boot = (f"import sys; sys.path.insert(0, {package_parent!r}); "
                "from svcmgr.spawnhelper import serve; serve(int(sys.argv[1]))")
        try:
            child = self.reaper.spawn([sys.executable, "-I", "-S", "-c", boot, str(theirs.fileno())],
                                      pass_fds=(theirs.fileno(),), stdout=subprocess.DEVNULL)
        except OSError:
            mine.close()
            raise
        finally:
            theirs.close()
        self._attach(mine, loop)
        self.pid = child.pid
        child.exited.add_done_callback(self._helper_ended)

    def _attach(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        """Serve through ``sock``, the daemon's end of a helper's socket pair: its replies read as they come."""
        sock.setblocking(False)
        self._sock = sock
        self._loop = loop
        loop.add_reader(sock.fileno(), self._readable)

    def _helper_ended(self, f: asyncio.Future[ExitStatus]) -> None:
        """A helper ended: the helper is gone, unless it handed over to a successor (its last message,
        which may still wait in the socket: read first)."""
        es = f.result()
        if es.pid == self.pid and self._sock is not None:
            self._take_replies()
        if es.pid == self.pid:
            self.lost(f"spawn helper {es.describe()}")

    def _handed_over(self, successor: int) -> None:
        """The helper forked ``successor`` and exits: its children are the daemon's from now on (re-parented
        to the subreaper), the successor serves the same socket."""
        self.pid = successor
        self.handovers += 1
        self._born.clear()  # the children are the daemon's now, reaped without a relay
        self.reaper.register(successor).exited.add_done_callback(self._helper_ended)

    def usable(self) -> bool:
        return self._sock is not None and not self._quitting

    def add_spare(self, on_idle: Callable[[ForkServer], None]) -> ForkServer | None:
        """Ask this helper to fork a spare, with a socket pair of its own: the spare's ``ForkServer``, to be
        used once ``ready``; None when it cannot be asked now."""
        if self._sock is None or self._loop is None or self._quitting:
            return None
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._sock.sendmsg([marshal.dumps(("spare", next(self._numbers)))],
                               [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [theirs.fileno()]))])
        except OSError:
            mine.close()
            return None
        finally:
            theirs.close()
        spare = ForkServer(self.reaper, spare=True, on_idle=on_idle)
        spare._attach(mine, self._loop)
        return spare

    def open(self) -> bool:
        """The daemon's end is open: the helper serves, or is retiring and its last messages are still to come."""
        return self._sock is not None

    def outstanding(self) -> int:
        """How many spawns and log files asked for are not answered yet."""
        return len(self._pending) + len(self._files)

    def retire(self) -> None:
        """Let the helper go without waiting for it: it gets the end of the stream after every request sent,
        relays what it has reaped and exits; its last messages are read as they come."""
        if self._sock is not None and not self._quitting:
            self._quitting = True
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                self.lost("spawn helper: retired")

    def born(self, pid: int) -> int | None:
        """The start time of the helper's running child ``pid`` as ``/proc/PID/stat`` gives it (clock ticks
        since boot), from the helper's reply, told once; None when not known here (read it there)."""
        return self._born.pop(pid, None)

    def busy(self) -> bool:
        """Spawns are out: the helper is at work (and may be moving into their groups)."""
        return bool(self._pending)

    def close(self) -> None:
        """Let the helper go: it reads the end of the stream, relays the ends it has reaped and exits;
        they are read here until its end of the stream (at most ``QUIT_WAIT`` seconds), so that none is
        lost. Its children still running are re-parented to the daemon (a subreaper) and reaped here."""
        sock = self._sock
        if sock is not None and self.why_not is None:
            self._quitting = True
            try:
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(QUIT_WAIT)
                self._take_replies()
            except OSError:
                pass
        self._drop()

    def _drop(self) -> None:
        """Close the daemon's end; every spawn still out is answered HelperUnavailable."""
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        while self._pending:
            _, (fut, _, _) = self._pending.popitem()
            self._answered()
            if not fut.done():
                fut.set_exception(HelperUnavailable(self.why_not or "spawn helper closed"))
        self._unsent.clear()
        self._born.clear()
        while self._files:  # each log opens its file itself then
            _, given = self._files.popitem()
            given(None)

    async def drain(self, timeout: float) -> None:
        """Wait, at most ``timeout`` seconds, until every spawn asked for is answered. A child the helper made
        for a start the daemon's stop cut short then reaches its caller, which ends it, before the daemon
        lets the helper go (closed first, the child would run on, owned by no instance)."""
        if not self._idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
        await asyncio.sleep(0)  # the callers' callbacks on the last replies

    def lost(self, why: str) -> None:
        """The helper is gone or cannot clone here: every spawn is in-process from now on."""
        if self.why_not is None and self._sock is not None and not self._quitting:
            self.why_not = why
            if self.spare:
                log.info("spare %s", why)
            else:
                log.warning("%s; spawning in the daemon from now on", why)
        self._drop()

    def open_log(self, path: str, mode: int, given: Given) -> bool:
        """Ask the helper to open ``path`` for appending, made with ``mode`` if need be, as
        ``safefs.open_own`` opens (no link followed, the daemon's own file); False when there is no
        helper. ``given`` gets the descriptor, or None when the helper could not open it (the caller
        opens it itself then, and says why it cannot). Asks go out in order, ``FILE_WINDOW`` at once."""
        if self._sock is None:
            return False
        number = next(self._numbers)
        self._files[number] = given
        self._unsent.append((number, marshal.dumps(("log", number, os.fsencode(path), mode))))
        self._send_files()
        return True

    def _send_files(self) -> None:
        while self._unsent and self._sock is not None and len(self._files) - len(self._unsent) < FILE_WINDOW:
            try:
                self._sock.send(self._unsent[0][1])
            except BlockingIOError:
                return  # the socket's buffer is full: sent at the next reply
            except OSError as e:
                self.lost(f"spawn helper: {e.strerror or e}")
                return
            self._unsent.popleft()

    async def spawn(self, argv: Sequence[str], *, cgroup: str | None, env: Mapping[str, str], cwd: str,
                    stdout: int | None = None, fifo: str | None = None, reader: Given | None = None,
                    process_group: bool = True, hot: bool = False) -> asyncio.Future[Child]:
        """Ask for ``argv`` to be started (in ``cgroup``, if given): the future of the child.

        Its stdout and stderr are ``stdout``, or the FIFO ``fifo``, which the helper opens by name
        (``safefs.open_own``); with ``reader``, it makes the FIFO if need be and ``reader`` gets
        the FIFO's reading end (non-blocking) before the future is done, or None.
        The request is sent (once fewer than ``WINDOW`` are out) before this returns: the caller
        may close ``stdout`` then. The future fails with OSError when the program cannot be
        executed (the child's errno), and HelperUnavailable when the helper cannot spawn it:
        spawn in-process then. ``hot``: other spawns are at work (the kernel's cgroup moves are cheap now)."""
        await self._window.acquire()
        try:
            return self._send(argv, cgroup=cgroup, env=env, cwd=cwd, stdout=stdout, fifo=fifo, reader=reader,
                              process_group=process_group, hot=hot)
        except BaseException:
            self._window.release()
            raise

    def _send(self, argv: Sequence[str], *, cgroup: str | None, env: Mapping[str, str], cwd: str, stdout: int | None,
              fifo: str | None, reader: Given | None, process_group: bool, hot: bool) -> asyncio.Future[Child]:
        if self._sock is None or self._loop is None:
            raise HelperUnavailable(self.why_not or "no spawn helper")
        args = [os.fsencode(a) for a in argv]
        enc, errors = _FS_ENCODING  # os.fsencode's own encoding, without its call per key and value
        envb = {k.encode(enc, errors): v.encode(enc, errors) for k, v in env.items()}
        path = os.fsencode(env.get("PATH", os.defpath))
        number = next(self._numbers)
        req = marshal.dumps(("spawn", number, args, envb, candidates_for(args[0], path), os.fsencode(cwd),
                             process_group, stdout is not None, cgroup is not None,
                             os.fsencode(fifo) if fifo is not None and stdout is None else b"", reader is not None,
                             hot))
        if len(req) > MAX_REQUEST:
            raise HelperUnavailable("request too large for the spawn helper")
        cg = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if cgroup is not None else None
        fds = [fd for fd in (stdout, cg) if fd is not None]
        try:
            self._sock.sendmsg([req], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        except OSError as e:
            self.lost(f"spawn helper: {e.strerror or e}")
            raise HelperUnavailable(self.why_not) from None
        finally:
            if cg is not None:
                os.close(cg)
        fut: asyncio.Future[Child] = self._loop.create_future()
        self._pending[number] = (fut, str(argv[0]), reader)
        self._idle.clear()
        self.reaper.hold()
        return fut

    def _answered(self) -> None:
        self.reaper.release()
        self._window.release()
        if not self._pending:
            self._idle.set()

    def _readable(self) -> None:
        try:
            self._take_replies()
        finally:
            self._send_files()  # a reply read may have made room in the socket's buffer

    def _take_replies(self) -> None:
        while self._sock is not None:
            try:
                reply, anc, _flags, _addr = self._sock.recvmsg(_REPLY, socket.CMSG_SPACE(4), socket.MSG_CMSG_CLOEXEC)
            except BlockingIOError:
                return
            except OSError as e:
                self.lost(f"spawn helper: {e.strerror or e}")
                return
            if not reply:
                self.lost("spawn helper exited")
                return
            given = _descriptors(anc)
            try:
                number, pid, stage, code, *start = marshal.loads(reply)
                if number == EXIT and not given and isinstance(pid, int) and pid > 0 and isinstance(code, int):
                    if stage == "exit":
                        self._born.pop(pid, None)
                        self.reaper.exited(pid, code)  # a child of the helper's: after its reply, so registered
                        continue
                    if stage == "helper":
                        self._handed_over(pid)
                        continue
                    if stage == "ready":
                        self.pid, self.ready = pid, True
                        log.debug("spare spawn helper %d ready", pid)
                        continue
                    if stage == "idle":
                        if self._on_idle is not None:
                            self._on_idle(self)
                        continue
                if stage == "log":
                    self._file_answered(number, given)
                    continue
                fut, program, reader = self._pending.pop(number)
            except (EOFError, ValueError, TypeError, KeyError):
                for fd in given:
                    os.close(fd)
                self.lost("spawn helper answered what was not asked")
                return
            for fd in given[1:] if reader is not None else given:
                os.close(fd)
            if reader is not None and given:
                reader(given[0])  # the FIFO's reading end: drained before the child is reported
            try:
                # before held exits go; a posix_spawn child that could not exec was reaped by glibc (pid 0)
                child = self.reaper.register(pid) if stage in ("ok", "exec") and pid else None
            finally:
                self._answered()
            if stage == "fifo":  # this one is spawned in the daemon, which says why the FIFO cannot be opened
                if not fut.done():
                    fut.set_exception(HelperUnavailable(f"the FIFO: {os.strerror(code)}"))
                continue
            if stage == "clone" or (child is None and stage != "exec"):
                why = f"clone3 in the spawn helper: {os.strerror(code) if code else 'bad reply'}"
                if not fut.done():
                    fut.set_exception(HelperUnavailable(why))
                self.lost(why)
                return
            if fut.done():
                continue
            if stage == "exec":
                fut.set_exception(OSError(code, f"{os.strerror(code)}: {program}"))
            else:
                self.spawned += 1
                if stage == "ok" and start and isinstance(start[0], int) and start[0] > 0:
                    self._born[pid] = start[0]
                fut.set_result(child)

    def _file_answered(self, number: int, given: list[int]) -> None:
        where = self._files.pop(number)  # KeyError: not asked
        for fd in given[1:]:
            os.close(fd)
        where(given[0] if given else None)


def _descriptors(anc: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors a message carried."""
    fds = array.array("i")
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return list(fds)
