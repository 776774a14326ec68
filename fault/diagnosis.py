"""The diagnosis engine: ereports in, cases out. Synchronous, no I/O of its own but the case store.

For each ereport, in this order:

1. *Resolution*: a rule whose ``resolve_when`` matches the payload (an alert that
   ended) closes the case it opened on that resource, and only that: a case opened by
   another rule, or by another source's ereports, or one into which another diagnosis
   was folded, stays open (the source may only take back what it said).
2. *Graph-aware attribution* (a ``cascade`` rule): when a service fails within the
   rule's window after a service it depends on (directly or not) failed, or while
   that dependency is in maintenance or degraded, the failure is a symptom. The
   deepest such dependencies are the suspects (certainty split between them), and
   the ereport joins the one case that names them, listing the failed service as
   impacted; if there is no such case, one is opened and solved. A victim never
   gets a case of its own for that failure.
3. *The resource's own rules*: each feeds a SERD or threshold engine for the pair
   (rule, resource), collecting the evidence in an open case; when the engine fires
   the case is solved. *One cause, one case*: if the resource already is a suspect
   of a solved case, the new diagnosis (flapping, then maintenance) is folded into
   that case instead of opening another.

Time is the caller's monotonic clock, passed with each call: the arrival time of
the ereport. Ereports of a resource are remembered on arrival (``arrive``), so a
dependency whose ereport arrives up to ``skew`` seconds after its dependent's still
counts as having failed first. The result of every call is a list of ``Change``
records that the response agents carry out (retire, notify).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fault.cases import VERDICT, Case, CaseEv, CaseState, CaseStore, Change, Suspect
from fault.engines import Engines, Key
from fault.events import Ereport, class_matches, detail_of, owner
from fault.rules import Rule, RuleSet, human_duration, scheme_of
from fault.topology import Topology
from fault.trail import AGE as TRAIL_AGE
from fault.trail import Trail

__all__ = ["Diagnosis", "RuleStats"]

UNHEALTHY = ("maintenance", "degraded")


@dataclass
class RuleStats:
    received: int = 0
    accepted: int = 0
    attributed: int = 0
    opened: int = 0
    solved: int = 0
    folded: int = 0
    discarded: int = 0
    bad_value: int = 0
    time_ns: int = 0


class Diagnosis:
    def __init__(self, rules: RuleSet, store: CaseStore, topology: Topology, *, node: str = "",
                 skew: float = 1.0, conn: sqlite3.Connection | None = None, max_engines: int = 20_000,
                 max_resources: int = 20_000, max_active: int = 10_000,
                 wall: Callable[[], float] = time.time) -> None:
        self.rules = rules
        self.store = store
        self.topology = topology
        self.node = node
        self.skew = skew
        self.conn = conn
        self.wall = wall
        self.max_resources = max_resources
        self.max_active = max_active
        self.engines = Engines(conn, limit=max_engines, on_evict=self._evicted, wall=wall)
        #: (rule, resource) -> the case this engine's evidence goes to (open, or solved once fired)
        self.engine_case: dict[tuple[str, str], str] = {}
        #: resource -> the solved case that names it as a faulty suspect
        self.by_suspect: dict[str, str] = {}
        #: resource -> recent ereports: (arrival, brief, detail)
        self.trail = Trail(max_resources)
        self.stats: dict[str, RuleStats] = {r.name: RuleStats() for r in rules}
        self.counters = {"processed": 0, "unmatched": 0, "overflow": 0, "evicted": 0, "errors": 0}
        self._index()

    # ============================================================ setup
    def _index(self) -> None:
        """Rebuild the lookups from the cases in the store (after loading them)."""
        self.by_suspect.clear()
        self.engine_case.clear()
        for c in self.store.cases.values():
            if c.state == CaseState.SOLVED:
                for s in c.faulty:
                    self.by_suspect[s.resource] = c.uuid
            if c.active:
                for d in c.diagnoses or [{"rule": c.rule}]:
                    for s in c.suspects:
                        self.engine_case[(d["rule"], s.resource)] = c.uuid

    def set_rules(self, rules: RuleSet) -> None:
        """New rules (SIGHUP): engines of rules that are gone or changed are dropped."""
        old = self.rules
        self.rules = rules
        for r in rules:
            self.stats.setdefault(r.name, RuleStats())
        self.engines.keep_rules(old, rules)

    def load_engines(self, now: float) -> int:
        """Engines saved by ``save_engines`` (before a restart), on the clock of ``now``."""
        return self.engines.load(self.rules, now)

    def save_engines(self, now: float) -> None:
        self.engines.save(now)

    # ============================================================ arrival
    def arrive(self, e: Ereport, now: float) -> None:
        """Remember an ereport of its resource at its arrival (before any hold)."""
        if e.resource:
            self.trail.add(e.resource, now, e.brief(), detail_of(e))

    def feed(self, e: Ereport, now: float) -> list[Change]:
        """``arrive`` then ``process`` at once (no hold): the same work, its brief and detail made once."""
        brief, detail = e.brief(), detail_of(e)
        if e.resource:
            self.trail.add(e.resource, now, brief, detail)
        return self._process(e, now, brief, detail)

    # ============================================================ processing
    def process(self, e: Ereport, now: float) -> list[Change]:
        """Diagnose one ereport that arrived at ``now``."""
        return self._process(e, now, e.brief(), detail_of(e))

    def _process(self, e: Ereport, now: float, brief: dict[str, Any], detail: str) -> list[Change]:
        counters = self.counters
        counters["processed"] += 1
        resource = e.resource
        rules = self.rules.consumers(e.cls, scheme_of(resource))
        if not rules:
            counters["unmatched"] += 1
            return []
        changes: list[Change] = []
        own: list[tuple[Rule, RuleStats]] = []
        stats = self.stats
        clock = time.perf_counter_ns
        for r in rules:
            st = stats.get(r.name) or stats.setdefault(r.name, RuleStats())
            st.received += 1
            if r.resolve_when and r.resolves(e.payload):
                t0 = clock()
                changes.extend(self._resolve_by_source(r, e, detail))
                st.time_ns += clock() - t0
            else:
                own.append((r, st))
        for r, st in own:
            if r.kind == "cascade" and resource:
                t0 = clock()
                assert r.window is not None
                roots = self._roots(resource, now, r.window)
                if roots:
                    changes.extend(self._attribute(r, roots, e, brief, now))
                    st.attributed += 1
                    st.time_ns += clock() - t0
                    return changes
                st.time_ns += clock() - t0
                break
        for r, st in own:
            if r.kind != "cascade":
                t0 = clock()
                changes.extend(self._feed(r, st, e, brief, detail, now))
                st.time_ns += clock() - t0
        return changes

    # ------------------------------------------------------------ attribution
    def _roots(self, fmri: str, now: float, window: float) -> list[str]:
        """The deepest troubled dependencies of ``fmri`` (failed within the window, or in maintenance or
        degraded): the suspects of its failure."""
        deps = self.topology.dependencies(fmri)
        if not deps:
            return []
        lo, hi, heard, state = now - window, now + self.skew, self.trail.heard, self.topology.state
        troubled = [d for d in deps if heard(d, lo, hi) or state(d) in UNHEALTHY]
        if len(troubled) <= 1:
            return troubled
        deps_of, among = self.topology.dependencies, frozenset(troubled)
        return sorted(d for d in troubled if deps_of(d).isdisjoint(among))

    def _attribute(self, rule: Rule, roots: list[str], e: Ereport, brief: dict[str, Any],
                   now: float) -> list[Change]:
        case = None
        for root in roots:
            uid = self.by_suspect.get(root)
            c = self.store.get(uid) if uid else None
            if c is not None and c.state == CaseState.SOLVED:
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
        if self._full():
            return []
        case = Case.new(rule.name, rule.fault, rule.msgid, rule.severity, self.node, rule.response)
        certainty = _split(100, len(roots))
        case.suspects = [Suspect(rule.fault, r, c) for r, c in zip(roots, certainty, strict=True)]
        assert rule.window is not None
        for root in roots:
            for _, b, d in self.trail.between(root, now - rule.window, now + self.skew):
                case.add_ereport(b, d)
        case.add_ereport(brief)
        case.add_impacted(e.resource)
        case.window, case.fires_at = human_duration(rule.window), 1
        case.diagnoses.append(self._diagnosis(rule, roots[0]))
        self.store.add(case)
        self.stats[rule.name].opened += 1
        for root in roots:
            self.engine_case[(rule.name, root)] = case.uuid
        return [self._solve(case, rule, f"{', '.join(roots)} failed; {e.resource} failed after it "
                                        f"({e.cls})")]

    # ------------------------------------------------------------ own rules
    def _feed(self, rule: Rule, st: RuleStats, e: Ereport, brief: dict[str, Any], detail: str,
              now: float) -> list[Change]:
        key = (rule.name, e.resource)
        eng = None
        if rule.kind == "immediate":
            fired = True
        else:
            eng = self.engines.get(rule, key)
            if rule.kind == "serd":
                fired = eng.record(now)
            else:
                assert rule.bound is not None
                value = e.payload.get(rule.bound.field)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    st.bad_value += 1
                    return []
                fired = eng.record(float(value))
        st.accepted += 1
        if eng is not None and eng.fired and not fired:
            c = self._case_of(key)
            if c is not None and c.active:
                c.add_ereport(brief, detail)
                self.store.touch(c)
            return []
        target = self.solved_case_for(e.resource)
        open_case = self._case_of(key)
        if open_case is not None and open_case.state != CaseState.OPEN:
            open_case = None
        if target is not None and not fired:
            target.add_ereport(brief, detail)
            self.store.touch(target)
            return []
        if target is not None:  # the rule fired on a resource a solved case names: one cause, one case
            if open_case is not None:
                for b in open_case.ereports:
                    target.add_ereport(b)
                self._discard(open_case)
            target.add_ereport(brief, detail)
            self.engine_case[key] = target.uuid
            st.folded += 1
            if self._fold(target, rule, e.resource, detail):
                self.store.save(target)
                return [Change("updated", target)]
            self.store.touch(target)
            return []
        if open_case is None:
            open_case = self._open(rule, e.resource)
            if open_case is None:
                return []
            if fired:  # what the resource reported before (the start failures before a maintenance) is evidence
                for t, b, _ in self.trail.between(e.resource, now - TRAIL_AGE, now):
                    if t < now:
                        open_case.add_ereport(b)
        self.engine_case[key] = open_case.uuid
        if not fired:
            open_case.add_ereport(brief, detail)
            open_case.updated = self.wall()
            self.store.touch(open_case)
            return []
        open_case.window, open_case.fires_at = rule.window_text, rule.fires_at
        open_case.add_ereport(brief, detail)
        open_case.diagnoses.append(self._diagnosis(rule, e.resource))
        what = rule.describe_engine()
        return [self._solve(open_case, rule, f"{rule.fault} diagnosed on {e.resource or self.node} by rule "
                                             f"{rule.name} ({what}): {detail}")]

    def _open(self, rule: Rule, resource: str) -> Case | None:
        """A new open case of ``rule`` suspecting ``resource`` (None when too many cases are active)."""
        if self._full():
            return None
        case = Case.new(rule.name, rule.fault, rule.msgid, rule.severity, self.node, rule.response)
        case.suspects = [Suspect(rule.fault, resource, rule.certainty)]
        case.window, case.fires_at = rule.window_text, rule.fires_at
        self.store.add(case)
        self.stats[rule.name].opened += 1
        return case

    def _fold(self, case: Case, rule: Rule, resource: str, detail: str) -> bool:
        """Fold a diagnosis into an existing case; True when the case changed in a way worth telling."""
        new_class = rule.fault not in case.classes
        if new_class:
            case.diagnoses.append(self._diagnosis(rule, resource))
            case.note("updated", f"{rule.fault} diagnosed on {resource} by rule {rule.name}, folded into this "
                                 f"case: {detail}")
        escalated = case.escalate(rule.severity, rule.response)
        if new_class or escalated:
            case.updated = self.wall()
        return new_class or escalated

    def _diagnosis(self, rule: Rule, resource: str) -> dict[str, Any]:
        return {"time": self.wall(), "rule": rule.name, "fault": rule.fault, "msgid": rule.msgid,
                "severity": rule.severity, "resource": resource}

    def _solve(self, case: Case, rule: Rule, text: str) -> Change:
        if not case.diagnoses:
            case.diagnoses.append(self._diagnosis(rule, case.suspects[0].resource if case.suspects else ""))
        case.apply(CaseEv.SOLVE, text, self.wall())
        for s in case.faulty:
            self.by_suspect[s.resource] = case.uuid
        self.stats[rule.name].solved += 1
        self.store.save(case)
        return Change("suspect", case)

    def _full(self) -> bool:
        cases = self.store.cases  # fewer cases in all than the bound: the active ones need no count
        full = len(cases) >= self.max_active and sum(1 for c in cases.values() if c.active) >= self.max_active
        self.counters["overflow"] += full
        return full

    # ------------------------------------------------------------ lookups
    def _case_of(self, key: tuple[str, str]) -> Case | None:
        uid = self.engine_case.get(key)
        return self.store.get(uid) if uid else None

    def solved_case_for(self, resource: str) -> Case | None:
        """The solved case that names ``resource`` as a faulty suspect, if any."""
        uid = self.by_suspect.get(resource)
        c = self.store.get(uid) if uid else None
        return c if c is not None and c.state == CaseState.SOLVED else None

    def active_cases_for(self, resource: str) -> list[Case]:
        """Solved cases that name ``resource`` as a faulty suspect."""
        return [c for c in self.store.cases.values()
                if c.state == CaseState.SOLVED and any(s.resource == resource and s.status == "faulty"
                                                        for s in c.suspects)]

    # ------------------------------------------------------------ closing
    def _discard(self, case: Case) -> None:
        for key in [k for k, u in self.engine_case.items() if u == case.uuid]:
            del self.engine_case[key]
        self.store.discard(case)
        self.stats.setdefault(case.rule, RuleStats()).discarded += 1

    def _evicted(self, key: Key) -> None:
        self.counters["evicted"] += 1
        self._discard_open(key)

    def _discard_open(self, key: Key) -> None:
        c = self._case_of(key)
        if c is not None and c.state == CaseState.OPEN:
            self._discard(c)
        self.engine_case.pop(key, None)

    def _reset_resource(self, resource: str) -> None:
        """An operator declared ``resource`` fixed: its engines start afresh, its open cases go."""
        for key in [k for k in self.engines if k[1] == resource]:
            eng = self.engines.peek(key)
            if eng is not None:
                eng.reset()
            self.engines.drop(key)
            self._discard_open(key)
        for key in [k for k in self.engine_case if k[1] == resource]:
            c = self._case_of(key)
            if c is None or not c.active:
                del self.engine_case[key]
            elif c.state == CaseState.OPEN:
                self._discard(c)

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
            self._reset_resource(s.resource)
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

    def _resolve_by_source(self, rule: Rule, e: Ereport, detail: str) -> list[Change]:
        key = (rule.name, e.resource)
        c = self._case_of(key)
        if c is None:
            return []
        c.add_ereport(e.brief(), detail)
        if not self._opened_by(c, rule, e):
            del self.engine_case[key]
            c.note("updated", f"{e.cls} on {e.resource} reports its condition over; the case stays open: that "
                              f"source did not open it alone (only an operator closes it)", self.wall())
            self.store.save(c)
            return []
        if c.state == CaseState.OPEN:
            self._discard(c)
            return []
        return self.close(c, CaseEv.REPAIR, [e.resource], f"its source reports the condition over ({detail})")

    @staticmethod
    def _opened_by(case: Case, rule: Rule, e: Ereport) -> bool:
        """Whether ``case`` is ``rule``'s alone, opened by ereports of ``e``'s source."""
        if case.rule != rule.name or any(d.get("rule") != rule.name for d in case.diagnoses):
            return False
        first = next((b["class"] for b in case.ereports
                      if any(class_matches(p, b.get("class", "")) for p in rule.match)), None)
        return first is not None and owner(first) == owner(e.cls)

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
            self._reset_resource(fmri)
        return changes

    # ============================================================ housekeeping
    def gc(self, now: float) -> int:
        """Age SERD engines out; discard open cases whose evidence is all gone. Returns how many."""
        gone = 0
        for key in self.engines.gc(now):
            c = self._case_of(key)
            if c is not None and c.state == CaseState.OPEN:
                self._discard(c)
                gone += 1
            elif c is None or not c.active:
                self.engine_case.pop(key, None)
        self.trail.gc(now)
        return gone

    def statistics(self) -> dict[str, Any]:
        rules = []
        open_by_rule: dict[str, int] = {}
        for c in self.store.cases.values():
            if c.state == CaseState.OPEN:
                open_by_rule[c.rule] = open_by_rule.get(c.rule, 0) + 1
        for r in self.rules:
            st = self.stats.get(r.name, RuleStats())
            rules.append({"rule": r.name, "engine": r.describe_engine(), "received": st.received,
                          "accepted": st.accepted, "attributed": st.attributed, "open": open_by_rule.get(r.name, 0),
                          "opened": st.opened, "solved": st.solved, "folded": st.folded,
                          "discarded": st.discarded, "bad_value": st.bad_value, "time": st.time_ns / 1e9})
        return {"rules": rules, "engines": len(self.engines), "resources": len(self.trail),
                "unsaved": self.engines.unsaved + self.store.unsaved, **self.counters}

    def engine_list(self, now: float) -> list[dict[str, Any]]:
        return [{**self.engines.view(key, eng, now), "case": self.engine_case.get(key)}
                for key, eng in self.engines.items()]


def _split(total: int, n: int) -> list[int]:
    base, extra = divmod(total, n)
    return [base + (1 if i < extra else 0) for i in range(n)]
