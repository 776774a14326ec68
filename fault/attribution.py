"""Graph-aware attribution (a ``cascade`` rule): a service that fails after a dependency of it is a symptom.

Part of the diagnosis engine (``fault.diagnosis.Diagnosis`` mixes it in). When a
service fails within the rule's window after a service it depends on (directly or
not) failed, or while that dependency is in maintenance or degraded, the deepest
such dependencies are the suspects (certainty split between them). The ereport
joins the one solved case that names them, listing the failed service as impacted;
if there is none, one is opened and solved with what those dependencies reported in
the window. A victim never gets a case of its own for that failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fault.cases import Case, CaseState, CaseStore, Change, Suspect
from fault.events import Ereport, detail_of
from fault.rules import Rule, human_duration
from fault.topology import Topology
from fault.trail import Trail

__all__ = ["Attribution"]

#: looked up once (a member read from its enum class costs about 90 ns), for each failure of a victim
_SOLVED = CaseState.SOLVED


class Attribution:
    """Cascade rules (a part of ``Diagnosis``)."""

    # What this part uses of the diagnosis engine's state...
    store: CaseStore
    topology: Topology
    trail: Trail
    skew: float
    wall: Callable[[], float]
    #: resource -> the solved case that names it as a faulty suspect
    by_suspect: dict[str, str]
    #: (rule, resource) -> the case this engine's evidence goes to
    engine_case: dict[tuple[str, str], str]
    # ... and of its other parts:
    new_case: Callable[[Rule, list[Suspect]], Case | None]
    diagnosis: Callable[[Rule, str], dict[str, Any]]
    solve: Callable[[Case, Rule, str], Change]

    def roots(self, fmri: str, now: float, window: float) -> list[str]:
        """The deepest troubled dependencies of ``fmri`` (failed within the window, or in maintenance or
        degraded): the suspects of its failure."""
        deps = self.topology.dependencies(fmri)
        if not deps:
            return []
        troubled = self.trail.heard(deps, now - window, now + self.skew)  # a set of its own: added to in place
        troubled |= self.topology.unhealthy(deps)
        if len(troubled) <= 1:
            return list(troubled)
        deps_of = self.topology.dependencies
        deepest = []
        for d in troubled:  # a loop, not a generator: no frame of its own at each failure of a victim
            if deps_of(d).isdisjoint(troubled):
                deepest.append(d)
        deepest.sort()
        return deepest

    def attribute(self, rule: Rule, roots: list[str], e: Ereport, brief: dict[str, Any],
                  now: float) -> list[Change]:
        """``e`` (a failure of a dependent of ``roots``) joins the case that names them, or opens it."""
        case = None
        for root in roots:
            uid = self.by_suspect.get(root)
            c = self.store.get(uid) if uid else None
            if c is not None and c.state == _SOLVED:
                case = c
                break
        if case is not None:
            case.add_ereport(brief)
            if case.add_impacted(e.resource):
                case.note("updated", f"{e.resource} failed too ({e.cls}): impacted by {', '.join(roots)}")
            elif e.cls == "ereport.svc.maintenance":
                case.note("updated", f"impacted {e.resource} entered maintenance: {detail_of(e)}")
            else:
                self.store.touch(case)
                return []
            case.updated = self.wall()
            self.store.save(case)
            return [Change("updated", case)]
        certainty = _split(100, len(roots))
        case = self.new_case(rule, [Suspect(rule.fault, r, c) for r, c in zip(roots, certainty, strict=True)])
        if case is None:
            return []
        assert rule.window is not None
        for root in roots:
            for _, b, d in self.trail.between(root, now - rule.window, now + self.skew):
                case.add_ereport(b, d)
        case.add_ereport(brief)
        case.add_impacted(e.resource)
        case.window, case.fires_at = human_duration(rule.window), 1
        case.diagnoses.append(self.diagnosis(rule, roots[0]))
        for root in roots:
            self.engine_case[(rule.name, root)] = case.uuid
        return [self.solve(case, rule, f"{', '.join(roots)} failed; {e.resource} failed after it ({e.cls})")]


def _split(total: int, n: int) -> list[int]:
    base, extra = divmod(total, n)
    return [base + (1 if i < extra else 0) for i in range(n)]
