"""Why an instance is not running, as ``svcs -x`` says it, reasoned the way illumos' explain.c does.

Every instance gets its *causes*: itself when it is running, uninitialized, disabled,
in maintenance or in transition; for an offline instance, the causes of each member
that keeps one of its dependency groups unmet (a ``require_all`` member not running,
every member of an unmet ``require_any``, an enabled ``optional_all`` member that is
neither running nor in maintenance, a running ``exclude_all`` member), followed down
the graph. The *root causes* are what ``svcs -x`` lists without operands: instances in
maintenance, enabled instances that are disabled or in transition, offline instances
with absent dependencies, and every cause of an offline instance, ordered by how many
instances each keeps from running (its *impact*, the offline instances whose causes
lead to it), the largest first.

It reads the engine through ``Situation``: the instances, the dependency graph, the
state dependency evaluation sees (``view``) and why an instance is disabled.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from svcmgr.fmri import RESTARTER, PathFMRI, parse_any
from svcmgr.graph import Graph
from svcmgr.instance import Instance
from svcmgr.logs import tail
from svcmgr.machine import Phase
from svcmgr.spec import Dependency
from svcmgr.states import RUNNING, State

__all__ = ["Analysis", "Situation", "explain", "iso"]

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


class Analysis:
    """explain.c's ``determine_causes`` over the whole graph at once, and each root cause's impact."""

    def __init__(self, s: Situation) -> None:
        self.s = s
        #: fmri -> {cause: the next instance on the way to it (None: itself)}, in the order found
        self.causes: dict[str, dict[str, str | None]] = {}
        #: fmri -> its absent dependencies (members, or missing files)
        self.absent: dict[str, list[str]] = {}
        #: fmri -> the offline instances that wait on it directly
        self.waiting: dict[str, list[str]] = {}
        self.roots: list[str] = []
        self._active: set[str] = set()
        self._impact: dict[str, list[str]] = {}
        for f in sorted(s.instances):
            self._determine(f)

    # ------------------------------------------------------------ causes
    def _enabled(self, f: str) -> bool:
        v = self.s.view(f)
        return bool(v and v[1])

    def _root(self, f: str) -> None:
        if f not in self.roots:
            self.roots.append(f)

    def _determine(self, f: str) -> bool:
        """Fill in the causes of ``f``; False when a dependency cycle runs through it."""
        if f in self._active:
            return False
        if f in self.causes:
            return True
        mine = self.causes[f] = {}
        self.absent[f] = []
        inst = self.s.instances[f]
        st = inst.state
        if st in RUNNING or st == State.UNINITIALIZED:
            mine[f] = None  # a running instance may be what an exclude_all dependent waits on
            return True
        if st == State.MAINTENANCE or (st == State.DISABLED and self._enabled(f)) or (
                st != State.DISABLED and inst.next_state is not None):
            mine[f] = None
            self._root(f)
            return True
        if st == State.DISABLED:
            mine[f] = None
            return True
        self._active.add(f)
        for d in self.s.graph.deps.get(f, []):
            if not (self._path_group(f, d) if d.type == "path" else self._group(f, d)):
                mine.setdefault(f, None)
                break
        self._active.discard(f)
        if not mine:
            mine[f] = None  # absent dependencies, or nothing found: the instance explains itself
            self._root(f)
        return True

    def _add(self, dst: str, src: str) -> bool:
        """``src`` keeps ``dst`` offline: its causes become ``dst``'s."""
        if not self._determine(src):
            return False
        waiting = self.waiting.setdefault(src, [])
        if dst not in waiting:
            waiting.append(dst)
        for cause in self.causes[src]:
            if cause not in self.causes[dst]:
                self.causes[dst][cause] = src
                self._root(cause)
        return True

    def _running(self, f: str) -> bool:
        return self.s.instances[f].state in RUNNING

    def _group(self, f: str, d: Dependency) -> bool:
        members = self.s.graph.members(d)
        if d.grouping == "require_any" and any(
                self._running(i) for _, insts in members for i in insts or ()):
            return True
        for declared, insts in members:
            if insts is None:
                if d.grouping in ("require_all", "require_any"):
                    self.absent[f].append(declared)
                continue
            if d.grouping == "require_all":
                blocking = [] if any(self._running(i) for i in insts) else insts
            elif d.grouping == "require_any":
                blocking = [i for i in insts if not self._running(i)]
            elif d.grouping == "optional_all":
                blocking = [i for i in insts if self._enabled(i) and not self._running(i)
                            and self.s.instances[i].state != State.MAINTENANCE]
            else:  # exclude_all: a running member keeps it offline
                blocking = [i for i in insts if self._running(i)]
            for i in blocking:
                if not self._add(f, i):
                    return False
        return True

    def _path_group(self, f: str, d: Dependency) -> bool:
        present = {t: _exists(t) for t in d.fmris}
        if d.grouping in ("require_all", "optional_all"):
            self.absent[f].extend(t for t, ok in present.items() if not ok)
        elif d.grouping == "require_any" and not any(present.values()):
            self.absent[f].extend(present)
        elif d.grouping == "exclude_all":
            self.absent[f].extend(t for t, ok in present.items() if ok)
        return True

    # ------------------------------------------------------------ impact
    def impact(self, f: str) -> list[str]:
        """The offline instances ``f`` keeps from running, directly or through others."""
        if f in self._impact:
            return self._impact[f]
        out: list[str] = []
        self._impact[f] = out  # a cycle ends here
        for d in self.waiting.get(f, []):
            for g in [d, *self.impact(d)]:
                if g not in out:
                    out.append(g)
        return out

    def troubled(self) -> list[str]:
        """``svcs -x`` without operands: the root causes, the largest impact first."""
        return sorted(self.roots, key=lambda f: -len(self.impact(f)))

    def path(self, f: str, cause: str) -> list[str]:
        """The dependency path from ``f`` to one of its causes (``svcs -xv``)."""
        out = [f]
        hop = self.causes[f].get(cause)
        while hop is not None and hop not in out:
            out.append(hop)
            if hop == cause:
                break
            hop = self.causes.get(hop, {}).get(cause)
        return out


def _exists(target: str) -> bool:
    p = parse_any(target)
    return isinstance(p, PathFMRI) and os.path.exists(p.path)


# ---------------------------------------------------------------- what is said

def summary(s: Situation, a: Analysis, f: str) -> str:
    """What ``svcs -x`` says of a cause after its FMRI (explain.c's ``determine_summary``)."""
    inst = s.instances[f]
    st = inst.state
    if st in RUNNING:
        return "is running."
    if st == State.UNINITIALIZED:
        return "is uninitialized."
    if st == State.DISABLED:
        return "is temporarily disabled." if inst.enabled else "is disabled."
    if st == State.OFFLINE:
        if a.absent.get(f):
            return "has missing dependencies."
        return "is starting." if inst.next_state == State.ONLINE else "is offline."
    if st == State.MAINTENANCE:
        mark = inst.marks.get("maintenance", {})
        text = mark.get("reason") or inst.reason
        if mark.get("by") == "operator":
            return "was taken down for maintenance by an administrator."
        for start, said in (("Completes a dependency cycle", "completed a dependency cycle."),
                            ("Restarting too quickly", "was restarting too quickly.")):
            if text.startswith(start):
                return said
        if "method" in text.lower():
            return ("is not running because a method failed repeatedly." if "repeatedly" in text
                    else "is not running because a method failed.")
        return "requires maintenance."
    return "is in an invalid state."


def _marked(inst: Instance, kind: str, default: str) -> str:
    m = inst.marks.get(kind, {})
    text = m.get("reason") or inst.reason or default
    return text + (f" (fault case {m['case']})" if m.get("case") else "")


def reasons(s: Situation, a: Analysis, inst: Instance) -> list[dict[str, Any]]:
    """Each ``Reason:`` of an instance (``text``; for a dependency, the ``cause`` and its ``path``)."""
    f, st = inst.fmri, inst.state
    if st == State.ONLINE:
        return []
    if st == State.UNINITIALIZED:
        return [{"text": f"Restarter {RESTARTER} has not initialized service state."}]
    if st == State.MAINTENANCE or inst.phase == Phase.STOPPING_MAINT:
        return [{"text": _marked(inst, "maintenance", "In maintenance.")}]
    if st == State.DEGRADED:
        return [{"text": _marked(inst, "degraded", "Degraded by an administrator.")}]
    if st == State.DISABLED or not inst.effective_enabled:
        text = s.disabled_reason(inst)
        if inst.comment:
            text = f"{text.rstrip('.')}: {inst.comment}"
        return [{"text": text}]
    if inst.next_state == State.ONLINE or inst.phase == Phase.STARTING:
        return [{"text": "Start method is running."}]
    if inst.next_state is not None:
        return [{"text": f"Transitioning to state {inst.next_state.value}."}]
    out: list[dict[str, Any]] = [{"text": f"Dependency {t} is absent."} for t in a.absent.get(f, [])]
    for cause in a.causes.get(f, {}):
        if cause == f:
            continue
        said = "is running." if s.instances[cause].state in RUNNING else summary(s, a, cause)
        out.append({"text": f"Service {cause} {said}", "cause": cause, "summary": said,
                    "path": a.path(f, cause)})
    return out or [{"text": inst.reason if inst.reason else "Unknown."}]


def explain(s: Situation, a: Analysis, inst: Instance, verbose: bool) -> dict[str, Any]:
    """One instance's entry in ``svcs -x``: state, reasons, log (and its tail), impact."""
    f = inst.fmri
    said = reasons(s, a, inst)
    log_path = inst.log.path if inst.log else None
    return {
        "fmri": f, "desc": inst.config.description, "state": inst.state.value,
        "nstate": inst.next_state.value if inst.next_state else None,
        "stime": iso(inst.stime), "stime_epoch": inst.stime,
        "reason": said[0]["text"] if said else "Running.", "reasons": said,
        "log": log_path, "log_tail": tail(log_path, 20 if verbose else 8) if log_path else [],
        "impact": a.impact(f), "paths": [r["path"] for r in said if r.get("path")] if verbose else [],
        "cases": [m.get("case") for m in inst.marks.values() if m.get("case")],
        "marks": inst.marks,
    }
