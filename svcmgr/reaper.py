"""Child processes of the daemon: spawning, and reaping every child in one place.

The daemon is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so every process a
service makes, double-forked daemons included, becomes its child when its parent
dies. One SIGCHLD handler reaps in a loop until nothing is left (signals merge),
resolves the waits of known children and hands unknown ones (orphans) to a
callback. Nothing else in the daemon may wait for children: asyncio's subprocess
helpers would race with this reaper, so every spawn goes through ``Reaper``. The
spawn helper (``svcmgr.forkserver``) reaps the children it made itself and relays
their ends, which ``exited`` hands over as if reaped here; when the helper ends, its
remaining children are re-parented to the daemon (the subreaper) and reaped here.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from svcmgr.process import Child, ExitStatus

__all__ = ["Child", "ExitStatus", "Reaper", "quiet_wakeup", "set_subreaper"]

log = logging.getLogger("svcmgr.reaper")

PR_SET_CHILD_SUBREAPER = 36
#: Seconds the rest of a reaping waits after a waited-for child's end was handed over (``reap``).
REST_WAIT = 0.01


def set_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except OSError:
        return False


def quiet_wakeup() -> None:
    """No warning when asyncio's wakeup pipe is full. A burst of exits fills it (a unix socket holds
    a few hundred one-byte writes); nothing is lost (every SIGCHLD call reaps until no child is left,
    and a full pipe means a call is coming). The warning is worse than noise: Python 3.11 prints it
    from a pending call, and a signal that arrives while it prints can spin the interpreter forever
    (seen stopping 500 services). ``loop.add_signal_handler`` turns the warning back on each time it
    is called: call this again after adding handlers."""
    fd = signal.set_wakeup_fd(-1)
    if fd != -1:
        signal.set_wakeup_fd(fd, warn_on_full_buffer=False)


class Reaper:
    """Spawns children and reaps all of them from SIGCHLD."""

    def __init__(self) -> None:
        self._waiters: dict[int, asyncio.Future[ExitStatus]] = {}
        self.on_orphan: Callable[[ExitStatus], None] | None = None
        self.subreaper = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.reaped = 0
        #: spawn requests out (``svcmgr.forkserver``): exits of unknown children wait in ``_held``
        self._holds = 0
        self._held: dict[int, ExitStatus] = {}
        #: the rest of a reaping, left for later (``reap``)
        self._rest: asyncio.TimerHandle | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.subreaper = set_subreaper()
        loop.add_signal_handler(signal.SIGCHLD, self.reap)
        quiet_wakeup()

    def uninstall(self) -> None:
        if self._rest is not None:
            self._rest.cancel()
            self._rest = None
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGCHLD)
            self._loop = None

    def spawn(self, argv: Sequence[str], **popen: Any) -> Child:
        """Start a child (``subprocess.Popen`` arguments); its ``exited`` future resolves when it ends."""
        popen.setdefault("stdin", subprocess.DEVNULL)
        popen.setdefault("close_fds", True)
        p = subprocess.Popen(list(argv), **popen)
        pid = p.pid
        # This reaper waits for the child, not Popen: keep Popen from polling it later.
        p.returncode = 0
        loop = self._loop or asyncio.get_running_loop()
        fut: asyncio.Future[ExitStatus] = loop.create_future()
        self._waiters[pid] = fut
        return Child(pid, fut)

    def register(self, pid: int) -> Child:
        """Wait for a child started some other way: by clone3 here (call before returning to the loop),
        or by the spawn helper (between ``hold`` and ``release``)."""
        loop = self._loop or asyncio.get_running_loop()
        fut: asyncio.Future[ExitStatus] = loop.create_future()
        early = self._held.pop(pid, None)
        if early is not None:
            fut.set_result(early)
        else:
            self._waiters[pid] = fut
        return Child(pid, fut)

    def hold(self) -> None:
        """A child is being made elsewhere and its pid is not known yet: keep the exits of unknown
        children until ``release`` (one of them may be that child)."""
        self._holds += 1

    def release(self) -> None:
        """One ``hold`` is over; when none is left, the exits kept meanwhile go to ``on_orphan``."""
        self._holds -= 1
        if self._holds <= 0:
            self._holds = 0
            held, self._held = self._held, {}
            for es in held.values():
                self._orphan(es)

    def is_child(self, pid: int) -> bool:
        """Whether ``pid`` is a child spawned here and still running."""
        return pid in self._waiters

    def reap(self) -> None:
        """Reap every child that has ended (SIGCHLD handler; safe to call any time).

        Once the exit of a child someone waits for is handed over, the look for more (``_reap_rest``,
        which reaps all) is left for ``REST_WAIT`` seconds: with a thousand children each look walks them
        all in the kernel (0.2-0.3 ms), and the exit's own handling goes first, a restart up to its new
        process (its stop, its start and the spawn request take several turns of the loop). A child that
        ends meanwhile is reaped at its own SIGCHLD, or by that look."""
        self._reap(defer=True)

    def _reap_rest(self) -> None:
        self._rest = None
        self._reap(defer=False)

    def _reap(self, *, defer: bool) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except OSError as e:  # pragma: no cover - EINTR is retried by Python
                if e.errno == errno.EINTR:
                    continue
                raise
            if pid == 0:
                return
            if self._ended(ExitStatus(pid, status)) and defer and self._loop is not None:
                if self._rest is None:
                    self._rest = self._loop.call_later(REST_WAIT, self._reap_rest)
                return

    def exited(self, pid: int, status: int) -> None:
        """A child's end reaped elsewhere: the spawn helper reaps the children it made and relays their
        raw wait statuses (``svcmgr.forkserver``). Handled exactly as if reaped here."""
        self._ended(ExitStatus(pid, status))

    def _ended(self, es: ExitStatus) -> bool:
        """Hand one reaped end over (to its waiter, held, or to ``on_orphan``); True when a waiter got it."""
        self.reaped += 1
        fut = self._waiters.pop(es.pid, None)
        if fut is not None:
            if fut.done():
                return False
            fut.set_result(es)
            return True
        if self._holds:
            self._held[es.pid] = es
        else:
            self._orphan(es)
        return False

    def _orphan(self, es: ExitStatus) -> None:
        if self.on_orphan is not None:
            try:
                self.on_orphan(es)
            except Exception:  # a bad callback must not stop reaping
                log.exception("orphan handler failed for pid %d", es.pid)

    async def run(self, argv: Sequence[str], *, timeout: float | None = None,
                  **popen: Any) -> tuple[ExitStatus | None, bytes]:
        """Run a short command, collecting its output; None status if it timed out (it is killed)."""
        r, w = os.pipe()
        try:
            child = self.spawn(argv, stdout=w, stderr=w, start_new_session=True, **popen)
        except OSError:
            os.close(r)
            os.close(w)
            raise
        os.close(w)
        loop = asyncio.get_running_loop()
        chunks: list[bytes] = []
        done = loop.create_future()
        os.set_blocking(r, False)

        def readable() -> None:
            try:
                b = os.read(r, 65536)
            except BlockingIOError:
                return
            except OSError:
                b = b""
            if b:
                if sum(map(len, chunks)) < 1 << 20:
                    chunks.append(b)
            else:
                loop.remove_reader(r)
                if not done.done():
                    done.set_result(None)

        loop.add_reader(r, readable)
        try:
            try:
                status = await asyncio.wait_for(child.wait(), timeout)
            except TimeoutError:
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await child.wait()
                return None, b"".join(chunks)
            try:
                await asyncio.wait_for(asyncio.shield(done), 0.5)
            except TimeoutError:
                pass  # a grandchild holds the pipe open; we have the status
            return status, b"".join(chunks)
        finally:
            loop.remove_reader(r)
            os.close(r)
