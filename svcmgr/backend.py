"""Where a daemon's contracts live: its backend (cgroup v2 groups under a group of its own, or process
groups), detected once at start, the contracts it creates, and what it leaves at a clean exit.

The cgroup backend's groups are ``svcmgr-TAG/NAME.CTID`` under the daemon's own cgroup; at a clean exit
every group is removed (a process still in one is a stray: killed and logged), and a daemon that
restarts in place (``SIGUSR2``: its services keep running) leaves them for the next to adopt.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from svcmgr.contract import Contract
from svcmgr.procfs import find_cgroup2_mount, own_cgroup
from svcmgr.rctl import Controls
from svcmgr.security import Resources

if TYPE_CHECKING:
    from svcmgr.forkservers import ForkServers

__all__ = ["Backend", "detect_backend"]

#: Seconds a clean exit waits, at most, for the processes it found left in its groups to end.
STRAY_WAIT = 2.0
#: Seconds a clean exit waits, at most, for its busy groups to empty before it calls what is in them strays.
ENDING_WAIT = 0.5

log = logging.getLogger("svcmgr.backend")


class Backend:
    """Creates contracts of one kind for one daemon."""

    def __init__(self, kind: str, tag: str, base: str | None = None, home: str | None = None,
                 spawner: Any = None, controls: Controls | None = None) -> None:
        self.kind = kind
        self.tag = tag
        self.base = base
        #: the daemon's own cgroup, set when the daemon may move itself in and out of its contracts'
        self.home = home
        #: a ``svcmgr.spawn.CloneSpawner`` when children can be born in their group (clone3)
        self.spawner = spawner
        #: where resource controls go (``svcmgr.rctl``)
        self.controls = controls if controls is not None else Controls(tag)

    def describe(self) -> str:
        if self.kind != "cgroup":
            return "process groups under a child subreaper"
        how = "clone3 into the group" if self.spawner else "moved into the group"
        return f"cgroup v2 at {self.base} ({how})"

    def create(self, ctid: int, name: str, resources: Resources | None = None) -> Contract:
        """A new contract; with ``resources``, its limits written (raises OSError when they cannot be)."""
        marker = f"{self.tag}.{ctid}"
        group = f"{_escape(name)}.{ctid}"
        if self.kind == "cgroup":
            assert self.base is not None
            path = os.path.join(self.base, group)
            try:
                os.mkdir(path)  # its parent is there (made at start): one system call, not makedirs' stat and mkdir
            except (FileExistsError, FileNotFoundError):
                os.makedirs(path, exist_ok=True)
            c = Contract(ctid, "cgroup", marker, cgroup=path, home=self.home)
        else:
            c = Contract(ctid, "pgid", marker)
        if resources:
            try:
                c.rctl = self.controls.create(group, resources, c.cgroup)
            except OSError:
                c.remove()
                raise
        return c

    async def create_for_burst(self, ctid: int, name: str, resources: Resources | None = None,
                               helper: ForkServers | None = None) -> Contract:
        """``create``, then, while the spawn ``helper`` is at work, a turn of the loop before the caller spawns
        into it: the starts of a burst make their groups in one turn and ask the helper in the next. A group
        made while the helper moves into another waits for the kernel's cgroup lock (1-23 ms measured, in the
        daemon's loop). A start alone (a restart: the helper idle) asks at once, before the records the loop
        would write in that turn. Cancelled in that turn, the contract's group is removed."""
        c = self.create(ctid, name, resources)
        if helper is not None:
            c.birth = helper.born  # its record takes the main process's start time from the helper's reply
        if helper is None or not helper.busy():
            return c
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            c.remove()
            raise
        return c

    def close(self, *, groups: bool = True) -> None:
        """Remove this daemon's group of groups on a clean exit. With ``groups`` (every instance stopped), first
        each group in it, deepest first: a process still in one after ``ENDING_WAIT`` seconds is a stray, killed
        and logged, and its group removed once empty (at most ``STRAY_WAIT`` seconds more). Without, a next
        daemon adopts them."""
        if self.kind == "cgroup" and self.base:
            if groups:
                _remove_groups(self.base)
            with contextlib.suppress(OSError):
                os.rmdir(self.base)
        self.controls.close()

    def leftovers(self, keep: Iterable[str]) -> list[str]:
        """Groups under our base that no known contract owns (from a daemon that died)."""
        if self.kind != "cgroup" or not self.base:
            return []
        keep = set(keep)
        try:
            names = os.listdir(self.base)
        except OSError:
            return []
        return [os.path.join(self.base, n) for n in names
                if os.path.isdir(os.path.join(self.base, n)) and os.path.join(self.base, n) not in keep]


def _remove_groups(base: str) -> None:
    """Remove every group under ``base``, deepest first. A group still busy gets ``ENDING_WAIT`` seconds
    first: a process killed by its own start (one cut short by the stop, whose child came after) may not
    have been scheduled to exit yet. What is still in a group after that is a stray: killed and logged,
    and the group removed once empty (at most ``STRAY_WAIT`` seconds more)."""
    busy = _rmdir_all([here for here, _dirs, _files in os.walk(base, topdown=False) if here != base],
                      ENDING_WAIT)
    for here in busy:
        stray = Contract(0, "cgroup", "", cgroup=here)
        procs = sorted(stray.scan())
        if procs:
            log.warning("killing %d process(es) left in %s as svcmgrd stops: %s", len(procs), here,
                        " ".join(map(str, procs[:16])))
            stray.signal(signal.SIGKILL)
    _rmdir_all(busy, STRAY_WAIT)


def _rmdir_all(paths: list[str], wait: float) -> list[str]:
    """Remove each directory in order, trying the busy ones again for at most ``wait`` seconds; those still
    busy then, in order. One that is gone or cannot be removed for another reason is let be."""
    busy = []
    for here in paths:
        try:
            os.rmdir(here)
        except OSError as e:
            if e.errno == errno.EBUSY:
                busy.append(here)
    deadline = time.monotonic() + wait
    while busy and time.monotonic() < deadline:
        time.sleep(0.01)
        for here in list(busy):
            try:
                os.rmdir(here)
            except OSError as e:
                if e.errno == errno.EBUSY:
                    continue
            busy.remove(here)
    return busy


def _can_move_self(probe: str, home: str) -> bool:
    """Whether the daemon may step into a group of its own and back (``Contract.placing``)."""
    try:
        with open(os.path.join(probe, "cgroup.procs"), "w") as f:
            f.write("0")
    except OSError:
        return False
    try:
        with open(os.path.join(home, "cgroup.procs"), "w") as f:
            f.write("0")
    except OSError as e:
        raise OSError(e.errno, f"cannot move back to {home} after a probe: {e.strerror}") from None
    return True


@functools.lru_cache(maxsize=4096)
def _escape(name: str) -> str:
    """``name`` as a cgroup's name (kept per name: an instance's contracts all take the same)."""
    return "".join(c if c.isalnum() or c in "-_.:" else "-" for c in name)


def _clone_spawner(probe: str, log: Callable[[str], None] | None) -> Any:
    """A CloneSpawner when clone3 can place a child in a group here (set SVCMGR_NO_CLONE3=1 to refuse it)."""
    if os.environ.get("SVCMGR_NO_CLONE3"):
        return None
    try:
        from svcmgr.spawn import CloneSpawner  # here: ctypes and clone3 only on a cgroup host that allows it

        s = CloneSpawner()
        why = s.probe(probe)
    except (OSError, AttributeError) as e:
        why = str(e)
    if why is not None:
        if log:
            log(f"{why}; children are moved into their group instead")
        return None
    return s


def detect_backend(tag: str, *, allow_cgroup: bool = True,
                   log: Callable[[str], None] | None = None) -> Backend:
    """A cgroup v2 backend where this daemon may create groups, else process groups."""
    if allow_cgroup:
        mount = find_cgroup2_mount()
        if mount is not None:
            home = os.path.join(mount, own_cgroup().lstrip("/"))
            base = os.path.join(home, f"svcmgr-{tag}")
            try:
                os.makedirs(base, exist_ok=True)
                probe = os.path.join(base, ".probe")
                with contextlib.suppress(FileExistsError):  # left by a daemon that died while probing
                    os.mkdir(probe)
                movable = _can_move_self(probe, home)
                spawner = _clone_spawner(probe, log)
                os.rmdir(probe)
            except OSError as e:
                if log:
                    log(f"cgroup v2 at {mount} not writable ({e.strerror}); tracking by process group")
            else:
                return Backend("cgroup", tag, base, home if movable else None, spawner,
                               Controls.detect(tag, base, log=log))
        elif log:
            log("no cgroup v2 mount; tracking by process group")
        return Backend("pgid", tag, controls=Controls.detect(tag, None, log=log))
    return Backend("pgid", tag, controls=Controls.off(tag, "svcmgrd runs without cgroups (--no-cgroup)"))
