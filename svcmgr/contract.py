"""Process contracts: every process a service makes, tracked and killed together.

Two kinds, chosen once at daemon start:

* ``cgroup``: each contract is its own cgroup v2 group (found through
  ``/proc/self/mountinfo``, never assumed at ``/sys/fs/cgroup``). Children are born
  in it: where the daemon may move itself, it stands in the group while it spawns
  (``placing``), else the child joins it before it execs; membership is
  ``cgroup.procs``; ``cgroup.kill`` ends it.
* ``pgid``: where the daemon may not create groups. Each contract is a process
  group; since the daemon is a child subreaper, a process that leaves the group
  (``setsid`` of a double-forking daemon) still becomes the daemon's child when its
  parent exits, and is claimed by descent or by the ``SVCMGR_CONTRACT`` marker in its
  environment. The marker only tells which contract such a child belongs to: the
  kernel must tie the process to the daemon first (a child of the subreaper is a
  descendant of one of its contracts). Anyone can put the marker in an environment; a
  process elsewhere (a child of init) is never claimed by it.

A contract knows nothing about services or states: the restarter asks it to spawn,
to list, to signal, and whether it is empty.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from svcmgr.credentials import Credentials
from svcmgr.procfs import (
    ProcInfo,
    alive,
    children_of,
    environ,
    marker_in,
    proc_table,
    read_marker,
    read_small,
    read_stat,
    write_small,
)
from svcmgr.rctl import Group

__all__ = ["Contract", "kill", "strays"]

#: How many more times a scan reads /proc when it found no member of a group that still exists.
RESCANS = 5

#: Process groups led by the live ``pgid`` contracts of this daemon. A process in another
#: contract's group that has not made a session of its own belongs to that contract: the
#: marker scan of ``_claim`` need not read its environment.
_LIVE_GROUPS: set[int] = set()


@dataclass(slots=True)
class Contract:
    """The processes of one service start."""

    ctid: int
    kind: str  # "cgroup" | "pgid"
    marker: str
    cgroup: str | None = None
    pgid: int | None = None
    main_pid: int | None = None
    members: set[int] = field(default_factory=set)
    adopted: bool = False
    main_exited: bool = False  # the main process's end was processed (by the restarter)
    #: The daemon's own cgroup, when it may move itself into this one to spawn (see ``placing``).
    home: str | None = None
    #: the resource-control groups (memory, cpu, pids limits) of this contract
    rctl: Group = field(default_factory=Group)
    _placed: bool = False
    #: member pid -> its start time (clock ticks since boot), read once: a record is written at each
    #: state change, and a process's start time never changes
    _starts: dict[int, int] = field(default_factory=dict, repr=False, compare=False)
    #: the last record made (``to_record``) and what it was made of
    _record: tuple[tuple[Any, ...], dict[str, Any]] | None = field(default=None, repr=False, compare=False)
    #: where the main process's start time may be known without reading /proc: the spawn helper's replies
    #: (``ForkServer.born``)
    birth: Callable[[int], int | None] | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------- spawning
    @contextlib.contextmanager
    def placing(self) -> Iterator[None]:
        """Spawn inside: the daemon stands in this contract's cgroup while the block runs.

        A child forked meanwhile is born in the group, with nothing run between its fork
        and its exec, so the spawn can use vfork; joining from the child
        (``preexec_fn``) forces a full fork of the daemon and Python code in the child,
        which costs several milliseconds per start in a daemon of tens of MiB. Nothing
        else runs in the daemon meanwhile: the block must only spawn."""
        if self.kind != "cgroup" or not self.cgroup or self.home is None:
            yield
            return
        write_small(self.cgroup + "/cgroup.procs", b"0")
        self._placed = True
        try:
            yield
        finally:
            self._placed = False
            write_small(self.home + "/cgroup.procs", b"0")

    def popen_kwargs(self, creds: Credentials, *, leader: bool) -> dict[str, Any]:
        """Popen arguments that place the child in this contract with these credentials."""
        kw: dict[str, Any] = {}
        cg = self.cgroup
        if self.kind == "pgid":
            kw["process_group"] = 0 if leader or self.pgid is None else self.pgid
            if creds.needs_child:
                kw["preexec_fn"] = creds.apply
            return kw
        kw["process_group"] = 0
        if self._placed:
            if creds.needs_child:
                kw["preexec_fn"] = creds.apply
            return kw
        procs = os.path.join(cg, "cgroup.procs") if cg else None

        def preexec() -> None:
            if procs:
                with open(procs, "w") as f:
                    f.write("0")
            creds.apply()

        kw["preexec_fn"] = preexec
        return kw

    def started(self, pid: int) -> None:
        if self.main_pid is None:
            self.main_pid = pid
            if self.kind == "pgid" and self.pgid is None:
                self.pgid = pid
                _LIVE_GROUPS.add(pid)
        self.members.add(pid)

    # ------------------------------------------------------------- membership
    def scan(self, table: dict[int, ProcInfo] | None = None, *, daemon_pid: int | None = None) -> set[int]:
        """Refresh and return the set of live member pids."""
        if self.kind == "cgroup":
            self.members = self._cgroup_procs()
            return self.members
        if self.pgid is not None and table is None and not self.adopted:
            # Fast path: the group still has processes, so the contract is not empty.
            try:
                os.killpg(self.pgid, 0)
            except ProcessLookupError:
                # The group is gone: only an escaped process can remain. It is an orphan now, a child
                # of the daemon (or of init); look at those alone before scanning all of /proc.
                if not any(alive(p) for p in self.members) and \
                        self._no_escapee(daemon_pid or os.getpid()):
                    self.members = set()
                    return self.members
            except PermissionError:
                return self.members
            else:
                living = {p for p in self.members if alive(p)}
                if living:
                    self.members = living
                    return living
        daemon = daemon_pid or os.getpid()
        members = self._claim(table if table is not None else proc_table(), daemon)
        if table is None:
            # A table is read process by process after /proc is listed: a member forked after the listing and
            # whose parent exited before its line was read is in no table (a start method's ``sleep 1000 &
            # exit 0``). A group the kernel still knows is not empty: read again (a group of zombies only, left
            # unreaped, stays empty after a few reads).
            for _ in range(RESCANS):
                if members or not self._group_exists():
                    break
                members = self._claim(proc_table(), daemon)
        self.members = members
        return members

    def _group_exists(self) -> bool:
        """Whether the kernel knows the process group (zombies count): one atomic look, unlike a table."""
        if self.pgid is None:
            return False
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _no_escapee(self, daemon_pid: int) -> bool:
        """True when no child of the daemon may be ours (the rule ``_claim`` applies to them, asked with
        getpgid/getsid instead of reading /proc for every process); False when one carries our marker
        or the children cannot be listed, and the full scan must decide."""
        kids = children_of(daemon_pid)
        if kids is None:
            return False
        for p in kids:
            try:
                if not self._may_be_ours(p, os.getpgid(p), os.getsid(p)):
                    continue
            except ProcessLookupError:
                continue
            env = environ(p)
            if not env or marker_in(env) == self.marker:
                return False  # ours, or exiting while its children are handed over: the scan decides
        return True

    def claim_children(self, daemon_pid: int) -> bool:
        """Process-group mode: the daemon's children that are this contract's become members (in its group,
        or a session of their own carrying its marker: what the start method left in the background,
        re-parented to the daemon when it exited). Only the daemon's children are read, no walk of /proc.
        So the contract's record names them from the start, and a daemon restarted after a crash (whose
        children they are not) finds them, and their descendants, through it. True if any was added."""
        if self.kind != "pgid":
            return False
        added = False
        for p in children_of(daemon_pid) or ():
            if p in self.members:
                continue
            try:
                g, sid = os.getpgid(p), os.getsid(p)
            except ProcessLookupError:
                continue
            if g == self.pgid or (self._may_be_ours(p, g, sid) and read_marker(p) == self.marker):
                self.members.add(p)
                added = True
        return added

    def _may_be_ours(self, pid: int, pgid: int, sid: int) -> bool:
        """Whether a child of the daemon outside this contract's group may be ours (then its marker says):
        not when it is in another live contract's group without a session of its own."""
        return not (pgid != self.pgid and pgid in _LIVE_GROUPS and sid != pid)

    def _claim(self, tbl: dict[int, ProcInfo], daemon_pid: int) -> set[int]:
        mine = {p for p, i in tbl.items() if self.pgid is not None and i.pgid == self.pgid}
        mine |= {p for p in self.members if p in tbl}
        children: dict[int, list[int]] = {}
        for p, i in tbl.items():
            children.setdefault(i.ppid, []).append(p)
        stack = list(mine)
        while stack:
            p = stack.pop()
            for c in children.get(p, ()):
                if c not in mine:
                    mine.add(c)
                    stack.append(c)
        for p, i in tbl.items():
            if p in mine or i.ppid != daemon_pid:
                continue  # the marker confirms only what the kernel ties to us: a child of the subreaper
            if not self._may_be_ours(p, i.pgid, i.sid):
                continue  # in another contract's group, no session of its own: that contract's
            if read_marker(p) == self.marker:
                mine.add(p)
                for c in children.get(p, ()):
                    mine.add(c)
            elif not environ(p):
                # Exiting (its memory is gone, so no marker to read): its children are on their way
                # to the subreaper. Those carrying our marker are ours already, or a sweep taken
                # in this window would find the contract empty while its daemon lives.
                for c in children.get(p, ()):
                    if read_marker(c) == self.marker:
                        mine.add(c)
                        mine.update(children.get(c, ()))
        return mine

    def _cgroup_procs(self) -> set[int]:
        assert self.cgroup is not None
        try:
            return {int(x) for x in read_small(self.cgroup + "/cgroup.procs").split()}
        except FileNotFoundError:
            return set()
        except OSError:
            return set(self.members)

    def empty(self, table: dict[int, ProcInfo] | None = None) -> bool:
        if self.kind == "pgid" and table is None and self.pgid is not None and not self.adopted:
            try:
                os.killpg(self.pgid, 0)
            except ProcessLookupError:
                pass  # the group is gone: only an escaped process may remain; scan decides
            except PermissionError:
                return False
            else:
                return False  # a live group is a live contract; no need to learn who is in it
        return not self.scan(table)

    # ------------------------------------------------------------- signalling
    def signal(self, sig: int) -> None:
        """Send ``sig`` to every member."""
        if self.kind == "cgroup":
            if sig == signal.SIGKILL and self.cgroup and os.path.exists(os.path.join(self.cgroup, "cgroup.kill")):
                try:
                    with open(os.path.join(self.cgroup, "cgroup.kill"), "w") as f:
                        f.write("1")
                    return
                except OSError:
                    pass
            for p in self._cgroup_procs():
                kill(p, sig)
            return
        if self.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, sig)
        for p in self.scan(proc_table()):
            kill(p, sig)

    def remove(self) -> None:
        """Remove the contract's group once it is empty."""
        if self.kind == "pgid" and self.pgid is not None and not self.adopted:
            _LIVE_GROUPS.discard(self.pgid)
        if self.kind == "cgroup" and self.cgroup:
            with contextlib.suppress(OSError):
                os.rmdir(self.cgroup)
        self.rctl.remove()

    # ------------------------------------------------------------- persistence
    def to_record(self) -> dict[str, Any]:
        """What a daemon restarted after a crash needs to find this contract (``from_record``). Made again
        only when what it says changed: it is asked for at every state change of the instance, and its
        members rarely change between two (with resource controls, whose record changes on its own, always)."""
        key = (self.main_pid, self.pgid, frozenset(self.members))
        if self._record is not None and self._record[0] == key:
            return self._record[1]
        known, self._starts = self._starts, {}
        complete = True
        for p in sorted(self.members)[:64]:
            start = known.get(p)
            if start is None and p == self.main_pid and self.birth is not None:
                start = self.birth(p)
            if start is None:
                info = read_stat(p)
                start = info.starttime if info is not None else None
            if start is not None:
                self._starts[p] = start
            else:
                complete = False  # gone, or not readable now: looked at again next time
        starts = {str(p): t for p, t in self._starts.items()}
        rec = {"ctid": self.ctid, "kind": self.kind, "marker": self.marker, "cgroup": self.cgroup,
               "pgid": self.pgid, "main_pid": self.main_pid, "members": starts}
        if self.rctl.dirs:
            rec["rctl"] = self.rctl.to_record()
        self._record = (key, rec) if complete and not self.rctl.dirs else None
        return rec

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Contract:
        """A contract left by an earlier daemon, with only its still-living, same-born members."""
        members: set[int] = set()
        for p, start in (rec.get("members") or {}).items():
            info = read_stat(int(p))
            if info is not None and info.starttime == start and info.state not in ("Z", "X"):
                members.add(int(p))
        c = cls(int(rec["ctid"]), rec["kind"], rec["marker"], rec.get("cgroup"), rec.get("pgid"),
                rec.get("main_pid"), members, adopted=True, rctl=Group.from_record(rec.get("rctl")))
        if c.kind == "pgid" and c.pgid is not None and c.pgid not in members:
            info = read_stat(c.pgid)
            if info is None or info.pgid != c.pgid:
                # The group leader is gone; only members recognised above count.
                pass
        return c


def kill(pid: int, sig: int) -> None:
    """Signal ``pid``; a process already gone, or not ours to signal, is let be."""
    try:
        os.kill(pid, sig)
    except OSError as e:
        if e.errno not in (errno.ESRCH, errno.EPERM):
            raise


def strays(tag: str, keep: set[str]) -> list[int]:
    """Live processes carrying a contract marker of the daemon tagged ``tag`` that is none of ``keep``:
    after a restart, in process-group mode, what is left of contracts no instance adopted (a start or
    a stop method the earlier daemon was running when it died, a contract it had not recorded yet)."""
    prefix = f"{tag}."
    out = []
    for pid in proc_table():
        m = read_marker(pid)
        if m is not None and m.startswith(prefix) and m not in keep:
            out.append(pid)
    return out
