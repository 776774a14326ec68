"""The diagnosis engine: ereports in, cases out. Synchronous, no I/O of its own but the case store.

For each ereport, in this order:

1. *Resolution*: a rule whose ``resolve_when`` matches the payload (an alert that
   ended) closes the case it opened on that resource, and only that (``fault.verdicts``,
   with the operators' verdicts).
2. *Graph-aware attribution* (a ``cascade`` rule, ``fault.attribution``): a service's
   failure after a dependency's, or while the dependency is in maintenance or
   degraded, is a symptom: it joins the case of the deepest such dependencies.
3. *The resource's own rules* (this module): each feeds a SERD or threshold engine
   for the pair (rule, resource), collecting the evidence in an open case; when the
   engine fires the case is solved. *One cause, one case*: if the resource already is a suspect
   of a solved case, the new diagnosis (flapping, then maintenance) is folded into
   that case instead of opening another.

Time is the caller's monotonic clock, passed with each call: the arrival time of
the ereport. Ereports of a resource are remembered on arrival (``arrive``), so a
dependency whose ereport arrives up to ``skew`` seconds after its dependent's still
counts as having failed first. The result of every call is a list of ``Change``
records that the response agents carry out (retire, notify).
"""

from __future__ import annotations

import gc
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fault.attribution import Attribution
from fault.cases import ACTIVE, Case, CaseEv, CaseState, CaseStore, Change, Suspect
from fault.engines import Engines, Key
from fault.events import Ereport, detail_of
from fault.rules import Rule, RuleSet, scheme_of
from fault.topology import Topology
from fault.trail import AGE as TRAIL_AGE
from fault.trail import Trail
from fault.verdicts import Verdicts

__all__ = ["Diagnosis", "RuleStats"]

#: the states read at each ereport, looked up once (a member read from its enum class costs about 90 ns)
_OPEN, _SOLVED = CaseState.OPEN, CaseState.SOLVED
#: each rule's time (``RuleStats.time_ns``), read without a look-up in the ``time`` module
_clock = time.perf_counter_ns
#: the longest payload (its JSON) the trail keeps in place of its text (``_detail``): at most a few small fields
_LAZY_DETAIL = 96


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


#: the rules an ereport's (class, scheme) goes to, with their counters: all, whether any has ``resolve_when``, the
#: first cascade rule, the rules that are not cascades
Pair = tuple[Rule, RuleStats]
Plan = tuple[tuple[Pair, ...], bool, Pair | None, tuple[Pair, ...]]


class Diagnosis(Attribution, Verdicts):
    """The diagnosis engine, its parts mixed in: ``Attribution`` (cascade rules), ``Verdicts`` (closing)."""

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
        #: resource -> recent ereports: (arrival, brief, detail of a service's)
        self.trail = Trail(max_resources)
        self.stats: dict[str, RuleStats] = {r.name: RuleStats() for r in rules}
        self.counters = {"processed": 0, "unmatched": 0, "overflow": 0, "evicted": 0, "errors": 0}
        #: (class, scheme) -> what diagnoses it (``_plan``), made at its first ereport, again after new rules
        self._plans: dict[tuple[str, str], Plan] = {}
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
        self._plans.clear()
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
        """Remember an ereport of its resource at its arrival (before any hold). The trail keeps the detail of a
        service's ereport only: attribution quotes what the suspects of a cascade (service instances, the
        graph's) reported; other resources' ereports are looked back on for their briefs alone, and their
        detail is made only if a case reads it."""
        resource = e.resource
        if resource:
            self.trail.add(resource, now, e.brief(), _detail(e) if resource.startswith("svc:") else "")

    def feed(self, e: Ereport, now: float) -> list[Change]:
        """``arrive`` then ``process`` at once (no hold): the same work, its brief made once (and only when something
        keeps it: an ereport of the node itself that no rule consumes needs none)."""
        resource = e.resource
        if not resource:
            return self._process(e, now, None)
        brief = e.brief()
        self.trail.add(resource, now, brief, _detail(e) if resource.startswith("svc:") else "")
        return self._process(e, now, brief)

    # ============================================================ processing
    def process(self, e: Ereport, now: float) -> list[Change]:
        """Diagnose one ereport that arrived at ``now``."""
        return self._process(e, now, None)

    def _plan(self, key: tuple[str, str]) -> Plan:
        """The rules that consume ``key``'s ereports, each with its counters: all of them, whether any may
        resolve, the first cascade rule and the others (what ``_process`` does when none resolves)."""
        stats = self.stats
        pairs = tuple((r, stats.setdefault(r.name, RuleStats())) for r in self.rules.consumers(*key))
        if len(self._plans) >= 4096:  # classes or schemes made up by a source: start afresh
            self._plans.clear()
        plan = self._plans[key] = (pairs, any(r.resolve_when for r, _ in pairs), *_split_cascade(pairs))
        return plan

    def _process(self, e: Ereport, now: float, brief: dict[str, Any] | None) -> list[Change]:
        """Diagnose ``e`` (``brief``: its brief, if made already). Each rule's time is counted from one clock read
        to the next: the rules run one after the other."""
        counters = self.counters
        counters["processed"] += 1
        resource = e.resource
        key = (e.cls, scheme_of(resource))
        pairs, resolving, cascade, others = self._plans.get(key) or self._plan(key)
        if not pairs:
            counters["unmatched"] += 1
            return []
        if brief is None:
            brief = e.brief()
        changes: list[Change] = []
        clock = _clock
        if resolving:
            own: list[Pair] = []
            for r, st in pairs:
                st.received += 1
                if r.resolve_when and r.resolves(e.payload):
                    t0 = clock()
                    changes.extend(self.resolve_by_source(r, e))
                    st.time_ns += clock() - t0
                else:
                    own.append((r, st))
            cascade, others = _split_cascade(tuple(own))
        else:
            for _, st in pairs:
                st.received += 1
        t0 = clock()
        if cascade is not None and resource:
            r, st = cascade
            assert r.window is not None
            roots = self.roots(resource, now, r.window)
            if roots:
                changes += self.attribute(r, roots, e, brief, now)
                st.attributed += 1
                st.time_ns += clock() - t0
                return changes
            t1 = clock()
            st.time_ns += t1 - t0
            t0 = t1
        for r, st in others:
            changes += self._feed(r, st, e, brief, now)
            t1 = clock()
            st.time_ns += t1 - t0
            t0 = t1
        return changes

    # ------------------------------------------------------------ own rules
    def _feed(self, rule: Rule, st: RuleStats, e: Ereport, brief: dict[str, Any], now: float) -> list[Change]:
        key = (rule.name, e.resource)
        eng = None
        kind = rule.kind
        if kind == "immediate":
            fired = True
        else:
            eng = self.engines.get(rule, key)
            if kind == "serd":
                fired = not eng.fired and eng.record(now)  # a fired engine takes no event (``record``)
            else:
                assert rule.bound is not None
                value = e.payload.get(rule.bound.field)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    st.bad_value += 1
                    return []
                fired = eng.record(float(value))
        st.accepted += 1
        open_case = self.case_of(key)
        if eng is not None and eng.fired and not fired:
            if open_case is not None and open_case.state in ACTIVE:
                open_case.add_ereport(brief, e)
                self.store.touch(open_case)
            return []
        target = self.solved_case_for(e.resource)
        if open_case is not None and open_case.state != _OPEN:
            open_case = None
        if target is not None and not fired:
            target.add_ereport(brief, e)
            self.store.touch(target)
            return []
        if target is not None:  # the rule fired on a resource a solved case names: one cause, one case
            if open_case is not None:
                for b in open_case.ereports:
                    target.add_ereport(b)
                self.discard(open_case)
            target.add_ereport(brief, e)
            self.engine_case[key] = target.uuid
            st.folded += 1
            if self._fold(target, rule, e):
                self.store.save(target)
                return [Change("updated", target)]
            self.store.touch(target)
            return []
        if open_case is None:
            open_case = self.new_case(rule, [Suspect(rule.fault, e.resource, rule.certainty)])
            if open_case is None:
                return []
            if fired:  # what the resource reported before (the start failures before a maintenance) is evidence
                for t, b in self.trail.briefs(e.resource, now - TRAIL_AGE, now):
                    if t < now:
                        open_case.add_ereport(b)
        self.engine_case[key] = open_case.uuid
        if not fired:
            open_case.add_ereport(brief, e)
            open_case.updated = self.wall()
            self.store.touch(open_case)
            return []
        open_case.window, open_case.fires_at = rule.window_text, rule.fires_at
        open_case.add_ereport(brief, e)
        open_case.diagnoses.append(self.diagnosis(rule, e.resource))
        what = rule.describe_engine()
        return [self.solve(open_case, rule, f"{rule.fault} diagnosed on {e.resource or self.node} by rule "
                                             f"{rule.name} ({what}): {detail_of(e)}")]

    def new_case(self, rule: Rule, suspects: list[Suspect]) -> Case | None:
        """A new open case of ``rule`` naming ``suspects`` (None when too many cases are active)."""
        if self.full():
            return None
        case = Case.new(rule.name, rule.fault, rule.msgid, rule.severity, self.node, rule.response)
        case.suspects = suspects
        case.window, case.fires_at = rule.window_text, rule.fires_at
        self.store.add(case)
        self.stats[rule.name].opened += 1
        return case

    def _fold(self, case: Case, rule: Rule, e: Ereport) -> bool:
        """Fold a diagnosis (``rule`` fired on ``e``) into an existing case; True when the case changed in a way
        worth telling."""
        new_class = rule.fault not in case.classes
        if new_class:
            case.diagnoses.append(self.diagnosis(rule, e.resource))
            case.note("updated", f"{rule.fault} diagnosed on {e.resource} by rule {rule.name}, folded into this "
                                 f"case: {detail_of(e)}")
        escalated = case.escalate(rule.severity, rule.response)
        if new_class or escalated:
            case.updated = self.wall()
        return new_class or escalated

    def diagnosis(self, rule: Rule, resource: str) -> dict[str, Any]:
        return {"time": self.wall(), "rule": rule.name, "fault": rule.fault, "msgid": rule.msgid,
                "severity": rule.severity, "resource": resource}

    def solve(self, case: Case, rule: Rule, text: str) -> Change:
        if not case.diagnoses:
            case.diagnoses.append(self.diagnosis(rule, case.suspects[0].resource if case.suspects else ""))
        case.apply(CaseEv.SOLVE, text, self.wall())
        for s in case.faulty:
            self.by_suspect[s.resource] = case.uuid
        self.stats[rule.name].solved += 1
        self.store.save(case)
        return Change("suspect", case)

    def full(self) -> bool:
        cases = self.store.cases  # fewer cases in all than the bound: the active ones need no count
        full = len(cases) >= self.max_active and sum(1 for c in cases.values() if c.active) >= self.max_active
        self.counters["overflow"] += full
        return full

    # ------------------------------------------------------------ lookups
    def case_of(self, key: tuple[str, str]) -> Case | None:
        uid = self.engine_case.get(key)
        return self.store.get(uid) if uid else None

    def solved_case_for(self, resource: str) -> Case | None:
        """The solved case that names ``resource`` as a faulty suspect, if any."""
        uid = self.by_suspect.get(resource)
        c = self.store.get(uid) if uid else None
        return c if c is not None and c.state == _SOLVED else None

    # ------------------------------------------------------------ closing
    def discard(self, case: Case) -> None:
        for key in [k for k, u in self.engine_case.items() if u == case.uuid]:
            del self.engine_case[key]
        self.store.discard(case)
        self.stats.setdefault(case.rule, RuleStats()).discarded += 1

    def _evicted(self, key: Key) -> None:
        self.counters["evicted"] += 1
        self.discard_open(key)

    def discard_open(self, key: Key) -> None:
        c = self.case_of(key)
        if c is not None and c.state == CaseState.OPEN:
            self.discard(c)
        self.engine_case.pop(key, None)

    # ============================================================ housekeeping
    def gc(self, now: float) -> int:
        """Age SERD engines out; discard open cases whose evidence is all gone. Returns how many."""
        gone = 0
        for key in self.engines.gc(now):
            c = self.case_of(key)
            if c is not None and c.state == CaseState.OPEN:
                self.discard(c)
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


def _detail(e: Ereport) -> str | dict[str, Any]:
    """What the trail keeps as the detail of a service's ereport: its payload, whose text is made only if a case
    quotes it (rarely: a new cascade case; ``detail_of`` costs about a microsecond at every failure of a service),
    when that payload is small (``_LAZY_DETAIL``, as its stored form: a process's exit is about 50 characters) and
    not a container the cyclic garbage collector tracks (nested tables or lists, which the trail holds none of);
    else the text itself."""
    payload = e.payload
    if len(e.payload_json) > _LAZY_DETAIL or gc.is_tracked(payload):
        return detail_of(e)
    return payload


def _split_cascade(pairs: tuple[Pair, ...]) -> tuple[Pair | None, tuple[Pair, ...]]:
    """The first cascade rule of ``pairs`` (or None), and the rules that are not cascades, in order."""
    return (next((p for p in pairs if p[0].kind == "cascade"), None),
            tuple(p for p in pairs if p[0].kind != "cascade"))
