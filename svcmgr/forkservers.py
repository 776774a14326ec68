"""The daemon's spawn helpers as one (``ForkServers``): the helper of ``svcmgr.forkserver``, and a spare forked
from it for a deep burst."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from svcmgr.forkserver import ForkServer, Given, HelperUnavailable

if TYPE_CHECKING:
    from svcmgr.process import Child
    from svcmgr.reaper import Reaper

__all__ = ["DEEP", "ForkServers", "HelperUnavailable"]  # what their spawn raises, as one helper's

log = logging.getLogger("svcmgr.forkservers")

#: A spare helper is asked for when the least busy helper has this many requests unanswered.
DEEP = 2

class ForkServers:
    """The spawn helpers, used as one: the first (``primary``) for as long as the daemon runs, and a spare
    for a deep burst. A ``posix_spawn`` returns only once its child has exec'd, so one helper makes one
    child at a time; when the least busy helper has ``DEEP`` requests unanswered, the primary forks a spare
    (with a socket pair of its own: its children, their ends), and each request goes to the ready helper
    with the fewest unanswered. Idle for ``spawnhelper.HANDOVER`` seconds, the spare says so and the
    daemon lets it go (its running children are re-parented to the daemon, a subreaper). A spare that is
    lost leaves the primary serving; the primary lost, every spawn is in-process from then on, as with one
    helper (the spare is let go)."""

    def __init__(self, reaper: Reaper, spares: int = 1) -> None:
        self.reaper = reaper
        self.primary = ForkServer(reaper)
        self.spares: list[ForkServer] = []
        #: at most this many spares at once (0: none)
        self.most = spares
        #: how many spares were started
        self.started = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the primary helper; raises OSError when it cannot be."""
        self.primary.start(loop)
        self._loop = loop

    @property
    def members(self) -> list[ForkServer]:
        return [self.primary, *self.spares]

    @property
    def pids(self) -> list[int]:
        """The helpers' pids (the primary's first)."""
        return [fs.pid for fs in self.members if fs.usable() and fs.pid is not None]

    def usable(self) -> bool:
        return self.primary.usable()

    def busy(self) -> bool:
        return any(fs.busy() for fs in self.members)

    def born(self, pid: int) -> int | None:
        for fs in self.members:
            start = fs.born(pid)
            if start is not None:
                return start
        return None

    def _least_busy(self) -> ForkServer:
        if not self.primary.usable():
            for spare in self.spares:
                spare.retire()
            raise HelperUnavailable(self.primary.why_not or "no spawn helper")
        self.spares = [fs for fs in self.spares if fs.open()]
        best = min((fs for fs in self.members if fs.usable() and fs.ready), key=ForkServer.outstanding)
        if best.outstanding() >= DEEP and len(self.spares) < self.most:
            self._add_spare()
        return best

    def _add_spare(self) -> None:
        spare = self.primary.add_spare(self._idle)
        if spare is not None:
            self.spares.append(spare)
            self.started += 1
            log.debug("a spare spawn helper asked for: %d spawns out", self.primary.outstanding())

    def _idle(self, spare: ForkServer) -> None:
        """A spare has been idle: let it go, unless something was asked of it meanwhile."""
        if not spare.outstanding():
            spare.retire()

    def open_log(self, path: str, mode: int, given: Given) -> bool:
        """``ForkServer.open_log`` by the least busy helper."""
        try:
            fs = self._least_busy()
        except HelperUnavailable:
            return False
        return fs.open_log(path, mode, given)

    async def spawn(self, argv: Sequence[str], *, cgroup: str | None, env: Mapping[str, str], cwd: str,
                    stdout: int | None = None, fifo: str | None = None, reader: Given | None = None,
                    process_group: bool = True) -> asyncio.Future[Child]:
        """``ForkServer.spawn`` by the least busy helper: ``hot`` when another helper is at work (moving between
        groups, the kernel's RCU sync warm), so that a spare's lone spawn in a burst stands in its group. With one
        helper, never: a spawn behind another one that was cloned (a restart) would wait for a grace period."""
        fs = self._least_busy()
        hot = any(other.busy() for other in self.members if other is not fs)
        return await fs.spawn(argv, cgroup=cgroup, env=env, cwd=cwd, stdout=stdout, fifo=fifo, reader=reader,
                              process_group=process_group, hot=hot)

    async def drain(self, timeout: float) -> None:
        """``ForkServer.drain`` for every helper."""
        await asyncio.gather(*(fs.drain(timeout) for fs in self.members))

    def close(self) -> None:
        """``ForkServer.close`` for every helper: the spares first (each dies with the primary)."""
        for fs in reversed(self.members):
            fs.close()
