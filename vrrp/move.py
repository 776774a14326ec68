"""Planned moves: a followed service about to stop on purpose hands its addresses over first, with no gap.

Following a service with weight 0, its stop sends the instance to FAULT, which drops
the addresses at once: the backup takes over only after its skew time, and clients
see a gap (and, for a balancer, its listeners are already closed). For a *planned*
stop (``svcadm disable``, ``restart``, a lost dependency) the engine first waits in
the stop gates; this one writes 1 into each affected instance's move file, which
keepalived follows with weight ``MOVE_WEIGHT``: the priority falls below any
backup's while this node still holds and serves the addresses. A preempting backup
takes over after its master-down interval and only then does this node go BACKUP
and drop the addresses; the gate opens when keepalived reports that (bounded by
twice the down interval, for a cluster with no backup or a backup with ``nopreempt``,
which then falls back to the FAULT path). The move file goes back to 0 when the
service is online again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable

from svcmgr.files import write_atomic
from vrrp.model import VrrpInstance

__all__ = ["PlannedMove"]

log = logging.getLogger("vrrp.move")


class PlannedMove:
    """Which instances are moving away for which stopping services, and their move files."""

    def __init__(self, path: Callable[[str], str], state: Callable[[str], str]) -> None:
        self.path = path  # instance name -> its move file
        self.state = state  # instance name -> keepalived's state of it (master, backup, ...)
        self.moving: dict[str, set[str]] = {}
        self.moves = 0
        self._changed = asyncio.Event()

    def write(self, instances: Iterable[VrrpInstance]) -> None:
        for i in instances:
            try:
                write_atomic(self.path(i.name), "1\n" if self.moving.get(i.name) else "0\n", durable=False)
            except OSError as e:
                log.error("cannot write the move file of %s: %s", i.name, e)

    def prune(self, instances: Iterable[VrrpInstance], track_dir: str) -> None:
        keep = {os.path.basename(self.path(i.name)) for i in instances}
        self.moving = {n: f for n, f in self.moving.items() if f"move_{n}" in keep}
        with contextlib.suppress(OSError):
            for name in os.listdir(track_dir):
                if name.startswith("move_") and name not in keep:
                    os.unlink(os.path.join(track_dir, name))

    def gate(self, fmri: str, applied: list[VrrpInstance]) -> tuple[Awaitable[None], float] | None:
        """The engine's stop gate: the instances following ``fmri`` move away; wait while this node is master."""
        insts = [i for i in applied if any(f.fmri == fmri for f in i.follows)]
        if not insts:
            return None
        for i in insts:
            self.moving.setdefault(i.name, set()).add(fmri)
        self.write(insts)
        masters = [i for i in insts if self.state(i.name) == "master"]
        if not masters:
            return None
        self.moves += 1
        bound = 2 * max(i.down_interval() for i in masters) + 0.5
        log.info("%s stops on purpose: moving %s away first (at most %.2fs)", fmri,
                 ", ".join(i.name for i in masters), bound)
        return self._wait([i.name for i in masters]), bound

    async def _wait(self, names: list[str]) -> None:
        t0 = time.monotonic()
        while any(self.state(n) == "master" for n in names):
            self._changed.clear()
            await self._changed.wait()
        log.info("%s moved away in %.3fs", ", ".join(names), time.monotonic() - t0)

    def transitioned(self) -> None:
        """keepalived reported a transition."""
        self._changed.set()

    def back(self, fmri: str, applied: list[VrrpInstance]) -> None:
        """``fmri`` is online again: the instances it made move contend with their own priority again."""
        done = [i for i in applied if fmri in self.moving.get(i.name, ())]
        for i in done:
            self.moving[i.name].discard(fmri)
        self.write(done)
