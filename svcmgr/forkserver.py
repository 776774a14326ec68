"""The daemon's side of the spawn helper: a small process that creates the daemon's children.

Forking costs in proportion to the parent's address space: page tables copied, pages
made copy-on-write, faults afterwards. The daemon is tens of MiB; the helper is a bare
interpreter (``python -I -S`` running ``svcmgr.spawn.serve``, standard library only: a
few MiB), started once with one end of a private socket pair (never bound to a name,
so only the daemon can ask it anything). For each request it calls ``clone3`` with

* ``CLONE_INTO_CGROUP``: the child is born in its contract's group (the group's
  descriptor comes with the request), so nothing is moved into a cgroup and the
  kernel's RCU wait on a move is never paid;
* ``CLONE_PARENT``: the child's parent is the daemon, not the helper. The daemon
  reaps it like any child of its own (``svcmgr.reaper``, SIGCHLD): exit statuses need
  no relay, and a daemon restart finds its services as before.

The child runs system calls only before ``execve`` (``svcmgr.spawn.exec_child``); a
failure to exec comes back through a close-on-exec pipe, so a reply says "running, pid
N", "could not exec, errno E", or that clone3 failed (then the daemon spawns in-process,
as it does without a helper, and for methods whose credentials need the child).

A request goes out at once and the daemon goes on while the helper forks on another
CPU; the helper clones each request as it comes and answers when that child has exec'd,
so the children of a burst exec side by side (replies carry the request's number). The
reply registers the child with the reaper before anything else runs; while requests are
out the reaper holds back the exits of children it does not know (one of them may be a
child whose reply is on its way). The helper exits when the daemon's end closes, and
with the daemon (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import array
import asyncio
import itertools
import logging
import marshal
import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from svcmgr.process import Child
from svcmgr.spawn import MAX_REQUEST, candidates_for

if TYPE_CHECKING:
    from svcmgr.reaper import Reaper

__all__ = ["ForkServer", "HelperUnavailable"]

log = logging.getLogger("svcmgr.forkserver")

WINDOW = 32


class HelperUnavailable(Exception):
    """The helper cannot spawn this (it is gone, or clone3 failed there): spawn in-process instead."""


class ForkServer:
    """Starts the helper, sends it requests and matches its replies (by number: a child that execs
    sooner is answered sooner)."""

    def __init__(self, reaper: Reaper) -> None:
        self.reaper = reaper
        self.pid: int | None = None
        self._sock: socket.socket | None = None
        self._pending: dict[int, tuple[asyncio.Future[Child], str]] = {}
        self._numbers = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: at most this many requests out at once (their messages fit in the socket's buffer)
        self._window = asyncio.Semaphore(WINDOW)
        self.spawned = 0
        self.why_not: str | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the helper (a known child of the reaper's); raises OSError when it cannot be."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        boot = (f"import sys; sys.path.insert(0, {package_parent!r}); "
                "from svcmgr.spawn import serve; serve(int(sys.argv[1]))")
        try:
            child = self.reaper.spawn([sys.executable, "-I", "-S", "-c", boot, str(theirs.fileno())],
                                      pass_fds=(theirs.fileno(),), stdout=subprocess.DEVNULL)
        except OSError:
            mine.close()
            raise
        finally:
            theirs.close()
        mine.setblocking(False)
        self._sock = mine
        self._loop = loop
        self.pid = child.pid
        loop.add_reader(mine.fileno(), self._readable)
        child.exited.add_done_callback(lambda f: self.lost(f"spawn helper {f.result().describe()}"))

    def usable(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        """Close the daemon's end; the helper exits when it reads the end of the stream."""
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        while self._pending:
            _, (fut, _) = self._pending.popitem()
            self._answered()
            if not fut.done():
                fut.set_exception(HelperUnavailable(self.why_not or "spawn helper closed"))

    def lost(self, why: str) -> None:
        """The helper is gone or cannot clone here: every spawn is in-process from now on."""
        if self.why_not is None and self._sock is not None:
            self.why_not = why
            log.warning("%s; spawning in the daemon from now on", why)
        self.close()

    async def spawn(self, argv: Sequence[str], *, cgroup: str | None, env: Mapping[str, str], cwd: str,
                    stdout: int | None, process_group: bool = True) -> asyncio.Future[Child]:
        """Ask for ``argv`` to be started (in ``cgroup``, if given): the future of the child.

        The request is sent (once fewer than ``WINDOW`` are out) before this returns: the caller
        may close ``stdout`` then. The future fails with OSError when the program cannot be
        executed (the child's errno), and HelperUnavailable when the helper cannot spawn it:
        spawn in-process then."""
        await self._window.acquire()
        try:
            return self._send(argv, cgroup=cgroup, env=env, cwd=cwd, stdout=stdout, process_group=process_group)
        except BaseException:
            self._window.release()
            raise

    def _send(self, argv: Sequence[str], *, cgroup: str | None, env: Mapping[str, str], cwd: str,
              stdout: int | None, process_group: bool) -> asyncio.Future[Child]:
        if self._sock is None or self._loop is None:
            raise HelperUnavailable(self.why_not or "no spawn helper")
        args = [os.fsencode(a) for a in argv]
        envb = {os.fsencode(k): os.fsencode(v) for k, v in env.items()}
        path = os.fsencode(env.get("PATH", os.defpath))
        number = next(self._numbers)
        req = marshal.dumps((number, args, envb, candidates_for(args[0], path), os.fsencode(cwd), process_group,
                             stdout is not None, cgroup is not None))
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
        self._pending[number] = (fut, str(argv[0]))
        self.reaper.hold()
        return fut

    def _answered(self) -> None:
        self.reaper.release()
        self._window.release()

    def _readable(self) -> None:
        while self._sock is not None:
            try:
                reply = self._sock.recv(64)
            except BlockingIOError:
                return
            except OSError as e:
                self.lost(f"spawn helper: {e.strerror or e}")
                return
            if not reply:
                self.lost("spawn helper exited")
                return
            try:
                number, pid, stage, code = marshal.loads(reply)
                fut, program = self._pending.pop(number)
            except (EOFError, ValueError, TypeError, KeyError):
                self.lost("spawn helper answered what was not asked")
                return
            try:
                child = self.reaper.register(pid) if stage in ("ok", "exec") else None  # before held exits go
            finally:
                self._answered()
            if stage == "clone" or child is None:
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
                fut.set_result(child)
