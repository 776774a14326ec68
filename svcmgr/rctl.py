"""Resource controls: an instance's memory, CPU and task limits, on cgroups.

What SMF does with projects and resource pools, Linux does with cgroups. Each limit
goes where this daemon can apply it, decided once at start (``Controls.detect``):

* cgroup v2, on the contract's own group (``memory.max``, ``cpu.max``, ``pids.max``),
  where the unified hierarchy delegates that controller to the daemon's groups;
* else the v1 hierarchy of that controller (``memory.limit_in_bytes``,
  ``cpu.cfs_quota_us``, ``pids.max``), found through ``/proc/self/mountinfo``, in a
  group of its own per contract under ``svcmgr-TAG`` in the daemon's own group, which
  the child joins before it execs (hybrid hosts: their unified hierarchy carries no
  resource controller).

A limit no hierarchy can carry is refused at import with the reason (``refusals``).
A contract's memory group also tells when the kernel's OOM killer acted inside it
(``oom_kill`` in ``memory.events`` or ``memory.oom_control``): the restarter turns that
into an ereport naming the limit.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from svcmgr.security import Resources

__all__ = ["CONTROLLERS", "Controls", "Group", "format_limits", "format_size"]

#: resource -> controller
CONTROLLERS = {"memory": "memory", "cpu": "cpu", "tasks": "pids"}
CPU_PERIOD = 100_000  # microseconds


def format_limits(res: Resources) -> str:
    """``memory 64 MiB, cpu 0.5, tasks 32`` (empty when unlimited)."""
    parts = []
    if res.memory is not None:
        parts.append(f"memory {format_size(res.memory)}")
    if res.cpu is not None:
        parts.append(f"cpu {res.cpu:g}")
    if res.tasks is not None:
        parts.append(f"tasks {res.tasks}")
    return ", ".join(parts)


def format_size(n: int) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n} bytes" if n < 1 << 20 else f"{n / (1 << 20):.1f} MiB"


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _v1_mounts() -> dict[str, tuple[str, str]]:
    """controller -> (v1 mount point, the mount's root within the hierarchy)."""
    out: dict[str, tuple[str, str]] = {}
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                parts = right.split()
                if len(parts) < 3 or parts[0] != "cgroup":
                    continue
                fields = left.split()
                for opt in parts[2].split(","):
                    if opt in ("memory", "cpu", "pids"):
                        out.setdefault(opt, (fields[4], fields[3]))
    except OSError:
        pass
    return out


def _v1_own(controller: str) -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, names, path = line.rstrip("\n").split(":", 2)
                if controller in names.split(","):
                    return path
    except (OSError, ValueError):
        pass
    return None


@dataclass(slots=True)
class Group:
    """One contract's resource-control groups."""

    #: controller -> the group folder carrying it
    dirs: dict[str, str] = field(default_factory=dict)
    #: v1 folders the child joins (their cgroup.procs)
    own: list[str] = field(default_factory=list)
    oom_seen: int = 0

    @property
    def join(self) -> tuple[str, ...]:
        return tuple(os.path.join(d, "cgroup.procs") for d in self.own)

    def oom_kills(self) -> int:
        """How many processes the OOM killer killed in this group's memory controller."""
        d = self.dirs.get("memory")
        if d is None:
            return 0
        for name in ("memory.events", "memory.oom_control"):
            try:
                with open(os.path.join(d, name)) as f:
                    for line in f:
                        k, _, v = line.partition(" ")
                        if k == "oom_kill":
                            return int(v)
            except (OSError, ValueError):
                continue
        return 0

    def new_oom_kill(self) -> bool:
        """True once for each OOM kill since the last call."""
        n = self.oom_kills()
        if n > self.oom_seen:
            self.oom_seen = n
            return True
        return False

    def remove(self) -> None:
        for d in self.own:
            with contextlib.suppress(OSError):
                os.rmdir(d)

    def to_record(self) -> dict[str, Any]:
        return {"dirs": self.dirs, "own": self.own, "oom_seen": self.oom_seen}

    @classmethod
    def from_record(cls, rec: dict[str, Any] | None) -> Group:
        rec = rec or {}
        return cls(dict(rec.get("dirs") or {}), list(rec.get("own") or []), int(rec.get("oom_seen") or 0))


class Controls:
    """Where this daemon applies each resource control."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        #: controller -> ("v2", None) or ("v1", base folder of this daemon's groups)
        self.where: dict[str, tuple[str, str | None]] = {}
        #: controller -> why it cannot be applied
        self.why: dict[str, str] = {ctl: "resource controls were not probed" for ctl in CONTROLLERS.values()}

    @classmethod
    def off(cls, tag: str, why: str) -> Controls:
        """No resource control at all, for this reason."""
        c = cls(tag)
        c.why = {ctl: why for ctl in CONTROLLERS.values()}
        return c

    @classmethod
    def detect(cls, tag: str, v2_base: str | None, *, log: Callable[[str], None] | None = None) -> Controls:
        """Probe the hierarchies: v2 at the contracts' base (``v2_base``, None when contracts
        are not cgroups), else v1 (whose base folders are made when a limit first needs them)."""
        c = cls(tag)
        c.why = {}
        v2 = _v2_available(v2_base) if v2_base else set()
        mounts = _v1_mounts()
        for ctl in CONTROLLERS.values():
            if ctl in v2:
                c.where[ctl] = ("v2", None)
                continue
            reason = "the unified hierarchy (cgroup v2) does not delegate it to svcmgrd" if v2_base else \
                "svcmgrd has no cgroup v2 group of its own"
            if ctl not in mounts:
                c.why[ctl] = f"{reason}, and no cgroup v1 {ctl} hierarchy is mounted"
                continue
            mount, root = mounts[ctl]
            own = _v1_own(ctl) or "/"
            rel = os.path.relpath(own, root) if own.startswith(root) else own.lstrip("/")
            base = os.path.normpath(os.path.join(mount, rel, f"svcmgr-{tag}"))
            if not os.access(os.path.dirname(base), os.W_OK):  # made at the first limit, not before
                c.why[ctl] = f"{reason}, and svcmgrd may not create groups in its cgroup v1 {ctl} hierarchy"
                continue
            c.where[ctl] = ("v1", base)
        if log and c.why:
            log("resource controls not available: " + "; ".join(f"{k}: {v}" for k, v in c.why.items()))
        return c

    def describe(self) -> dict[str, str]:
        """controller -> where its limits go, or why they cannot."""
        out = {}
        for ctl in CONTROLLERS.values():
            w = self.where.get(ctl)
            out[ctl] = (f"cgroup {w[0]}" + (f" ({w[1]})" if w[1] else "")) if w else f"unavailable: {self.why[ctl]}"
        return out

    def refusals(self, res: Resources) -> list[tuple[str, str]]:
        """(field, reason) for each limit of ``res`` this daemon cannot apply."""
        return [(key, f"cannot be applied here: {self.why[ctl]}")
                for key, ctl in CONTROLLERS.items()
                if getattr(res, key) is not None and ctl not in self.where]

    def create(self, name: str, res: Resources, v2_group: str | None) -> Group:
        """The groups of one contract named ``name``, limits written. Raises OSError (the
        caller then runs nothing: a limit that is not applied is not silently dropped)."""
        g = Group()
        if not res:
            return g
        try:
            for key, ctl in CONTROLLERS.items():
                value = getattr(res, key)
                if value is None:
                    continue
                if ctl not in self.where:
                    raise OSError(errno.EOPNOTSUPP, f"{key}: {self.why[ctl]}")
                kind, base = self.where[ctl]
                if kind == "v2":
                    assert v2_group is not None
                    d = v2_group
                else:
                    assert base is not None
                    d = os.path.join(base, name)
                    if d not in g.own:
                        os.makedirs(d, exist_ok=True)
                        g.own.append(d)
                g.dirs[ctl] = d
                _limit(kind, ctl, d, value)
        except OSError:
            g.remove()
            raise
        g.oom_seen = g.oom_kills()
        return g

    def sweep(self, keep: Iterable[str] = ()) -> int:
        """Remove the (empty) v1 groups under our bases that no known contract owns, left by a
        daemon that died; returns how many went."""
        keep = set(keep)
        n = 0
        for kind, base in self.where.values():
            if kind != "v1" or base is None or not os.path.isdir(base):
                continue
            for name in os.listdir(base):
                p = os.path.join(base, name)
                if p not in keep and os.path.isdir(p):
                    with contextlib.suppress(OSError):
                        os.rmdir(p)
                        n += 1
        return n

    def close(self) -> None:
        for kind, base in self.where.values():
            if kind == "v1" and base:
                with contextlib.suppress(OSError):
                    os.rmdir(base)


def _limit(kind: str, ctl: str, d: str, value: float) -> None:
    if ctl == "memory":
        _write(os.path.join(d, "memory.max" if kind == "v2" else "memory.limit_in_bytes"), str(int(value)))
    elif ctl == "cpu":
        quota = max(1000, int(value * CPU_PERIOD))
        if kind == "v2":
            _write(os.path.join(d, "cpu.max"), f"{quota} {CPU_PERIOD}")
        else:
            _write(os.path.join(d, "cpu.cfs_period_us"), str(CPU_PERIOD))
            _write(os.path.join(d, "cpu.cfs_quota_us"), str(quota))
    else:
        _write(os.path.join(d, "pids.max"), str(int(value)))


def _v2_available(base: str) -> set[str]:
    """Controllers the contracts under ``base`` can carry: those offered to ``base`` (enabled in the
    daemon's own group above it: tried here, which the kernel allows only where that group holds no
    process, as in a delegated subtree) that ``base``, which holds no process, then enables."""
    want = set(CONTROLLERS.values())
    parent = os.path.dirname(base)
    try:
        with open(os.path.join(parent, "cgroup.controllers")) as f:
            offered = set(f.read().split()) & want
    except OSError:
        return set()
    for ctl in sorted(offered):
        with contextlib.suppress(OSError):
            _write(os.path.join(parent, "cgroup.subtree_control"), f"+{ctl}")
    try:
        with open(os.path.join(base, "cgroup.controllers")) as f:
            reached = set(f.read().split()) & want
    except OSError:
        return set()
    out = set()
    for ctl in sorted(reached):
        try:
            _write(os.path.join(base, "cgroup.subtree_control"), f"+{ctl}")
        except OSError:
            continue
        out.add(ctl)
    return out
