"""Why an instance is not running, as ``svcs -x`` says it: the troubled instances, each one's reason, the
dependency paths to the root cause and the instances it keeps from running.

It reads the engine through ``Situation``: the instances, the dependency graph, the
state dependency evaluation sees (``view``) and why an instance is disabled.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from svcmgr.graph import Graph
from svcmgr.instance import Instance
from svcmgr.logs import tail
from svcmgr.machine import Phase
from svcmgr.states import RUNNING, State

__all__ = ["Situation", "explain", "iso", "troubled"]

#: Groupings through which a stopped instance keeps its dependents from running.
_REQUIRED = ("require_all", "require_any")


class Situation(Protocol):
    """What the reasoning reads (``svcmgr.engine.Engine`` is one)."""

    instances: Mapping[str, Instance]
    graph: Graph
    view: Callable[[str], tuple[State, bool] | None]

    def disabled_reason(self, inst: Instance) -> str: ...


@functools.lru_cache(maxsize=8192)
def iso(t: float | None) -> str | None:
    """Local time with its offset, to the second. Cached: a listing formats every instance's state
    time, and those change only with the state."""
    return None if t is None else dt.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def troubled(s: Situation) -> list[str]:
    """``svcs -x`` without operands: every enabled instance that is not running, every degraded or
    maintenance one, and every instance that keeps an enabled one from running."""
    out = []
    for f, inst in sorted(s.instances.items()):
        if inst.state in (State.DEGRADED, State.MAINTENANCE):
            out.append(f)
        elif inst.state in RUNNING:
            continue
        elif inst.effective_enabled or any(
                s.instances[d].effective_enabled and s.instances[d].state not in RUNNING
                for d, dep in s.graph.dependents_of(f) if dep.grouping in _REQUIRED):
            out.append(f)
    return out


def explain(s: Situation, inst: Instance, verbose: bool) -> dict[str, Any]:
    """One instance's entry in ``svcs -x``: state, reason, log tail, impact (and with ``verbose`` the paths)."""
    f = inst.fmri
    text, paths = reason(s, inst)
    impacted = sorted(d for d in s.graph.all_dependents(f, groupings=_REQUIRED)
                      if s.instances[d].state not in RUNNING and s.instances[d].effective_enabled)
    log_path = inst.log.path if inst.log else None
    return {
        "fmri": f, "desc": inst.config.description, "state": inst.state.value,
        "nstate": inst.next_state.value if inst.next_state else None,
        "stime": iso(inst.stime), "stime_epoch": inst.stime, "reason": text,
        "log": log_path, "log_tail": tail(log_path, 20 if verbose else 8) if log_path else [],
        "impact": impacted, "paths": paths if verbose else [],
        "cases": [m.get("case") for m in inst.marks.values() if m.get("case")],
        "marks": inst.marks,
    }


def _marked(inst: Instance, kind: str, default: str) -> str:
    m = inst.marks.get(kind, {})
    text = m.get("reason") or inst.reason or default
    return text + (f" (fault case {m['case']})" if m.get("case") else "")


def reason(s: Situation, inst: Instance) -> tuple[str, list[list[str]]]:
    """Why the instance is where it is, and the dependency paths from it to each root cause."""
    st = inst.state
    if st == State.MAINTENANCE or inst.phase == Phase.STOPPING_MAINT:
        return _marked(inst, "maintenance", "In maintenance."), []
    if st == State.DEGRADED:
        return _marked(inst, "degraded", "Degraded."), []
    if st == State.DISABLED or not inst.effective_enabled:
        return s.disabled_reason(inst), []
    if st in RUNNING:
        return inst.reason or "Running.", []
    if inst.phase == Phase.STARTING:
        return "Start method is running.", []
    blockers = s.graph.blockers(inst.fmri, s.view)
    paths = s.graph.root_causes(inst.fmri, s.view)
    if not blockers:
        return inst.reason or "Offline.", paths
    for why, text in (("absent", "Dependency {} is absent."), ("missing", "Dependency {} does not exist."),
                      ("running", "Service {} is running, and this service excludes it.")):
        hit = next((b for b in blockers if b.why == why), None)
        if hit is not None:
            return text.format(hit.member), paths
    root = paths[0][-1] if paths else blockers[0].member
    return f"Service {root} is not running because {_why_root(s, root)}", paths


def _why_root(s: Situation, root: str) -> str:
    r = s.instances.get(root)
    if r is None:
        return "it is absent."
    if r.state == State.MAINTENANCE:
        text = r.marks.get("maintenance", {}).get("reason") or "it is in maintenance"
        return f"it is in maintenance: {text}"
    if not r.effective_enabled or r.state == State.DISABLED:
        return "it is disabled."
    if r.phase == Phase.STARTING:
        return "it is starting."
    return f"it is {r.state.value}."
