"""Seeing the system over the control socket: start timings, the critical chain, the live graph.

Read operations (anyone may call them), registered on the daemon's Api:

``timings`` ``{"fmris": [pattern...]?, "last": bool?, "boot": id?, "since": epoch?, "until": epoch?}``
    -> ``{"now", "boot", "boots", "window", "starts": [record...]}``. With ``last``: each
    instance's latest start (the latest that got past its dependencies, else the latest
    attempt). Otherwise the records that overlap a window: ``since``/``until`` (wall clock
    seconds), else the boot ``boot`` (a daemon run; default: the last one that recorded a
    start). A record (``StartRecord.to_dict``) holds its points as nanoseconds since the start
    of its boot (``at``), ``boot_started`` (wall clock seconds) and its durations in seconds.
``chain`` ``{"fmri": pattern?}`` -> ``{"target", "boot_started", "steps": [...]}``: the critical
    chain (``svcmgr.chain``) of an instance; default target: the milestone the daemon runs to,
    else the milestone that came online last, else the instance that came online last.
``graph`` ``{"fmris": [pattern...]?}`` -> ``{"nodes", "edges", "cycles"}``: the dependency graph
    (of the named instances, what they depend on and what depends on them), each node with
    its state and last start, each edge with its grouping, restart_on and whether it is met
    now (``met``, ``notyet``, ``never``). The drawing modules (``svcmgr.draw``) render it.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from typing import Any

from svcmgr.api import Api, ApiError, Caller, arg
from svcmgr.chain import Group, critical_chain
from svcmgr.control import instances_named
from svcmgr.engine import Engine, EngineError
from svcmgr.fmri import PathFMRI, parse_any
from svcmgr.graph import MET, NEVER, find_cycles
from svcmgr.spec import Dependency
from svcmgr.timings import Boot, Recorder, StartRecord

__all__ = ["Observe"]

_VALUE = {MET: "met", NEVER: "never"}


class Observe:
    """Registers ``timings``, ``chain`` and ``graph`` on an Api."""

    def __init__(self, engine: Engine, api: Api) -> None:
        self.engine = engine
        for op in ("timings", "chain", "graph"):
            api.register(op, getattr(self, f"op_{op}"))

    @property
    def recorder(self) -> Recorder:
        return self.engine.timings

    def _names(self, req: dict[str, Any], caller: Caller) -> list[str] | None:
        pats = arg(req, "fmris", list, [])
        return instances_named(self.engine, pats, caller, req.get("op")) if pats else None

    # ------------------------------------------------------------ timings
    async def op_timings(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        rec = self.recorder
        names = self._names(req, caller)
        now_mono, now_wall = rec.clock(), time.time()
        records = rec.records(names)
        window: list[float] | None = None
        boot_id: int | None = None
        if arg(req, "last", bool, False):
            latest: dict[str, StartRecord] = {}
            for r in records:
                if r.deps_met is not None or latest.get(r.fmri) is None or latest[r.fmri].deps_met is None:
                    latest[r.fmri] = r
            records = list(latest.values())
        else:
            since, until = _epoch(req, "since"), _epoch(req, "until")
            if since is None and until is None:
                boot_id = arg(req, "boot", int, None)
                if boot_id is None:
                    boot_id = max((r.boot for r in records), default=rec.boot.id)
                b = rec.boots.get(boot_id)
                if b is None:
                    known = ", ".join(str(i) for i in sorted(rec.boots))
                    raise ApiError(f"timings: no boot {boot_id} is kept (kept: {known})", 1)
                since = b.wall_ns / 1e9
                later = [x.wall_ns / 1e9 for x in rec.boots.values() if x.id > b.id]
                until = min(later) if later else now_wall
            since = -math.inf if since is None else since
            until = now_wall if until is None else until
            if until < since:
                raise ApiError("timings: 'until' is before 'since'", 2)
            window = [since, until]
            records = [r for r in records if _overlaps(r, rec.boots, now_mono, since, until)]
        return {"now": now_wall, "boot": boot_id, "window": window,
                "boots": [b.to_dict() for _, b in sorted(rec.boots.items())],
                "starts": [rec.to_dict(r, now_mono) for r in records]}

    # ------------------------------------------------------------ chain
    async def op_chain(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        e = self.engine
        pattern = arg(req, "fmri", str, None)
        if pattern is not None:
            try:
                target = e.resolve_one(pattern)
            except EngineError as err:
                raise ApiError(str(err), err.code) from None
        else:
            target = self._default_target()
        rec = self.recorder
        groups: dict[str, dict[Dependency, list[str]]] = {}
        for u, v, d in e.graph.edges():
            if d.grouping != "exclude_all":
                groups.setdefault(u, {}).setdefault(d, []).append(v)

        def groups_of(f: str) -> list[Group]:
            return [Group(d.name, d.grouping, tuple(ms)) for d, ms in groups.get(f, {}).items()]

        boots = rec.boots
        steps = critical_chain(target, {f: list(q) for f, q in rec.recent.items()}, groups_of,
                               comparable=lambda a, b: _machine(boots, a) == _machine(boots, b))
        if not steps:
            raise ApiError(f"{target} has no recorded start that came online (see svcs -x {target})", 1)
        top = boots.get(steps[0].record.boot)
        base = top.mono_ns if top is not None else 0
        now = rec.clock()
        out = []
        for s in steps:
            r = s.record
            d = r.durations(now)
            out.append({"fmri": s.fmri, "via": s.via, "status": r.status,
                        "online_at": (r.online - base) / 1e9 if r.online is not None else None,
                        "queued_at": (r.queued - base) / 1e9 if r.queued is not None else None,
                        "start": d["start"], "wait": d["wait"], "method": d["method"]})
        return {"target": target, "boot": steps[0].record.boot,
                "boot_started": top.wall_ns / 1e9 if top is not None else None, "steps": out}

    def _default_target(self) -> str:
        e = self.engine
        if e.milestone not in (None, "none") and e.milestone in e.instances:
            return str(e.milestone)
        rec = self.recorder

        def online(f: str) -> int:
            r = rec.last(f, online=True)
            return r.online if r is not None and r.online is not None else -1

        milestones = [f for f, i in e.instances.items() if i.config.spec.type == "milestone" and online(f) >= 0]
        pool = milestones or [f for f in e.instances if online(f) >= 0]
        if not pool:
            raise ApiError("no instance has a recorded start that came online", 1)
        return max(pool, key=online)

    # ------------------------------------------------------------ graph
    async def op_graph(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        e = self.engine
        g = e.graph
        names = self._names(req, caller)
        if names is None:
            shown = set(e.instances)
        else:
            shown = set()
            for f in names:
                shown |= g.closure(f, ("require_all", "require_any", "optional_all", "exclude_all"))
                shown |= g.all_dependents(f)
        cycle_edges = set()
        cycles = [c for c in find_cycles(g.configs) if shown.intersection(c)]
        for c in cycles:
            cycle_edges.update(itertools.pairwise(c))
        nodes: dict[str, dict[str, Any]] = {}
        edges = []
        for f in sorted(shown):
            inst = e.instances[f]
            last = self.recorder.last(f, online=True)
            d = last.durations(self.recorder.clock()) if last is not None else {}
            nodes[f] = {"fmri": f, "state": inst.state.value,
                        "nstate": inst.next_state.value if inst.next_state else None,
                        "enabled": inst.effective_enabled, "kind": inst.config.spec.type,
                        "start": d.get("start"), "wait": d.get("wait")}
            for dep, member, value in g.member_values(f, e.view):
                if member not in e.instances and member not in nodes:
                    nodes[member] = _outside(member)
                edges.append({"from": f, "to": member, "name": dep.name, "grouping": dep.grouping,
                              "restart_on": dep.restart_on, "value": _VALUE.get(value, "notyet"),
                              "cycle": (f, member) in cycle_edges})
                if member in e.instances and member not in shown:
                    shown.add(member)  # named by an edge of a node shown: drawn too (at the end)
        for f in sorted(shown - set(nodes)):
            inst = e.instances[f]
            nodes[f] = {"fmri": f, "state": inst.state.value,
                        "nstate": inst.next_state.value if inst.next_state else None,
                        "enabled": inst.effective_enabled, "kind": inst.config.spec.type,
                        "start": None, "wait": None}
        return {"nodes": list(nodes.values()), "edges": edges, "cycles": cycles}


def _outside(member: str) -> dict[str, Any]:
    """A node for what a dependency names but the daemon does not run: a file, or an absent FMRI."""
    p = parse_any(member)
    if isinstance(p, PathFMRI):
        return {"fmri": member, "state": "present" if os.path.exists(p.path) else "absent", "kind": "path"}
    return {"fmri": member, "state": "absent", "kind": "absent"}


def _epoch(req: dict[str, Any], key: str) -> float | None:
    v = arg(req, key, (int, float), None)
    if v is not None and not math.isfinite(v):
        raise ApiError(f"bad request: timings: {key!r} must be a finite number of seconds", 2)
    return None if v is None else float(v)


def _machine(boots: dict[int, Boot], r: StartRecord) -> str:
    b = boots.get(r.boot)
    return b.machine if b is not None else ""


def _overlaps(r: StartRecord, boots: dict[int, Boot], now: int, since: float, until: float) -> bool:
    """Whether a record's span (first point to its end, or now) meets the wall clock window."""
    b = boots.get(r.boot)
    if b is None:
        return False
    points = [p for p in (r.queued, r.deps_met, r.online, r.stop, r.end) if p is not None]
    if not points:
        return False
    end = r.end if r.end is not None else max(points) if r.status == "lost" else now
    first = b.wall_ns / 1e9 + (min(points) - b.mono_ns) / 1e9
    last = b.wall_ns / 1e9 + (end - b.mono_ns) / 1e9
    return first <= until and last >= since
