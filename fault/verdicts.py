"""Cases closed: an operator's verdict (fmadm repaired, replaced, acquit; svcadm clear) or the source's word.

Part of the diagnosis engine (``fault.diagnosis.Diagnosis`` mixes it in). A verdict
on some faulty suspects of a case marks them; once none is left faulty the case is
closed (repaired, acquitted, replaced), its responses undone and the case resolved.
The engines and open cases of a resource declared fixed start afresh. A rule whose
``resolve_when`` matches (an alert that ended) closes the case it opened on that
resource, and only that: a case opened by another rule, or by another source's
ereports, or one into which another diagnosis was folded, stays open (the source may
only take back what it said).
"""

from __future__ import annotations

from collections.abc import Callable

from fault.cases import VERDICT, Case, CaseEv, CaseState, CaseStore, Change
from fault.engines import Engines, Key
from fault.events import Ereport, class_matches, detail_of, owner
from fault.rules import Rule

__all__ = ["Verdicts"]


class Verdicts:
    """Closing cases (a part of ``Diagnosis``)."""

    # What this part uses of the diagnosis engine's state...
    store: CaseStore
    engines: Engines
    wall: Callable[[], float]
    #: resource -> the solved case that names it as a faulty suspect
    by_suspect: dict[str, str]
    #: (rule, resource) -> the case this engine's evidence goes to
    engine_case: dict[tuple[str, str], str]
    # ... and of its other parts:
    case_of: Callable[[Key], Case | None]
    discard: Callable[[Case], None]
    discard_open: Callable[[Key], None]

    def close(self, case: Case, ev: CaseEv, resources: list[str] | None, text: str) -> list[Change]:
        """An operator's (or a source's) verdict on some or all faulty suspects of a case."""
        verdict = VERDICT[ev]
        hit = [s for s in case.faulty if resources is None or s.resource in resources]
        if not hit or not case.active:
            return []
        now = self.wall()
        for s in hit:
            s.status = verdict
            if self.by_suspect.get(s.resource) == case.uuid:
                del self.by_suspect[s.resource]
            self.reset_resource(s.resource)
        if case.faulty:
            case.note("updated", f"{', '.join(s.resource for s in hit)} {verdict}: {text}", now)
            case.updated = now
            self.store.save(case)
            return [Change("updated", case, unretire=[s.resource for s in hit])]
        if case.state == CaseState.OPEN:
            ev = CaseEv.ACQUIT
        case.apply(ev, text, now)
        for key in [k for k, u in self.engine_case.items() if u == case.uuid]:
            del self.engine_case[key]
        out = [Change("repaired", case, unretire=case.affected)]
        case.apply(CaseEv.RESOLVE, "Every response to the case was undone.", now)
        self.store.save(case)
        out.append(Change("resolved", case))
        return out

    def on_cleared(self, fmri: str, case_uuid: str | None) -> list[Change]:
        """An operator cleared ``fmri`` (``svcadm clear``): the cases that name it as a suspect are repaired."""
        cases: list[Case] = []
        if case_uuid:
            c = self.store.get(case_uuid)
            if c is not None and c.active:
                cases.append(c)
        cases.extend(c for c in self.active_cases_for(fmri) if c not in cases)
        changes: list[Change] = []
        for c in cases:
            s = c.suspect(fmri)
            if s is None or s.status != "faulty":
                if fmri in c.impacted:
                    c.note("updated", f"impacted {fmri} cleared by an operator (svcadm clear)")
                    self.store.save(c)
                continue
            changes.extend(self.close(c, CaseEv.REPAIR, [fmri], f"{fmri} cleared by an operator (svcadm clear)"))
        if not changes:
            self.reset_resource(fmri)
        return changes

    def resolve_by_source(self, rule: Rule, e: Ereport) -> list[Change]:
        """``e`` says the condition ``rule`` diagnosed on its resource is over."""
        key = (rule.name, e.resource)
        c = self.case_of(key)
        if c is None:
            return []
        c.add_ereport(e.brief(), e)
        if not self._opened_by(c, rule, e):
            del self.engine_case[key]
            c.note("updated", f"{e.cls} on {e.resource} reports its condition over; the case stays open: that "
                              f"source did not open it alone (only an operator closes it)", self.wall())
            self.store.save(c)
            return []
        if c.state == CaseState.OPEN:
            self.discard(c)
            return []
        return self.close(c, CaseEv.REPAIR, [e.resource], f"its source reports the condition over ({detail_of(e)})")

    @staticmethod
    def _opened_by(case: Case, rule: Rule, e: Ereport) -> bool:
        """Whether ``case`` is ``rule``'s alone, opened by ereports of ``e``'s source."""
        if case.rule != rule.name or any(d.get("rule") != rule.name for d in case.diagnoses):
            return False
        first = next((b["class"] for b in case.ereports
                      if any(class_matches(p, b.get("class", "")) for p in rule.match)), None)
        return first is not None and owner(first) == owner(e.cls)

    def active_cases_for(self, resource: str) -> list[Case]:
        """Solved cases that name ``resource`` as a faulty suspect."""
        return [c for c in self.store.cases.values()
                if c.state == CaseState.SOLVED and any(s.resource == resource and s.status == "faulty"
                                                        for s in c.suspects)]

    def reset_resource(self, resource: str) -> None:
        """An operator declared ``resource`` fixed: its engines start afresh, its open cases go."""
        for key in [k for k in self.engines if k[1] == resource]:
            eng = self.engines.peek(key)
            if eng is not None:
                eng.reset()
            self.engines.drop(key)
            self.discard_open(key)
        for key in [k for k in self.engine_case if k[1] == resource]:
            c = self.case_of(key)
            if c is None or not c.active:
                del self.engine_case[key]
            elif c.state == CaseState.OPEN:
                self.discard(c)
