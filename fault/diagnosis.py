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

import collections
import json
import signal
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fault.cases import VERDICT, Case, CaseEv, CaseState, CaseStore, Suspect
from fault.events import Ereport, class_matches, owner
from fault.rules import Rule, RuleSet, human_duration, scheme_of
from fault.serd import SerdEngine, ThresholdEngine
from svcmgr.db import transaction
from svcmgr.services import ServiceView

__all__ = ["Change", "Diagnosis", "StaticTopology", "Topology", "ViewTopology", "detail_of"]

#: Dependency groupings along which a failure propagates (exclude_all never does).
GROUPINGS = ("require_all", "require_any", "optional_all")
UNHEALTHY = ("maintenance", "degraded")
TRAIL_LEN = 16
TRAIL_AGE = 3600.0

SERD_SCHEMA = "CREATE TABLE IF NOT EXISTS fault_serd (name TEXT PRIMARY KEY, data TEXT NOT NULL);"


class Topology(Protocol):
    """What diagnosis needs to know about the service graph."""

    def dependencies(self, fmri: str) -> frozenset[str]:
        """Every instance ``fmri`` depends on, directly or not (``exclude_all`` edges excluded)."""
        ...

    def state(self, fmri: str) -> str | None: ...


class ViewTopology:
    """The daemon's services seen read-only (``svcmgr.services.ServiceView``)."""

    def __init__(self, view: ServiceView) -> None:
        self.view = view

    def dependencies(self, fmri: str) -> frozenset[str]:
        return self.view.closure(fmri, GROUPINGS) - {fmri}

    def state(self, fmri: str) -> str | None:
        inst = self.view.instance(fmri)
        return inst.state.value if inst is not None else None


class StaticTopology:
    """A fixed graph (direct dependencies) and states: for tests and the benchmark."""

    def __init__(self, deps: Mapping[str, Iterable[str]], states: dict[str, str] | None = None) -> None:
        self.deps = {k: tuple(v) for k, v in deps.items()}
        self.states = states if states is not None else {}
        self._cache: dict[str, frozenset[str]] = {}

    def dependencies(self, fmri: str) -> frozenset[str]:
        hit = self._cache.get(fmri)
        if hit is None:
            seen: set[str] = set()
            stack = list(self.deps.get(fmri, ()))
            while stack:
                d = stack.pop()
                if d not in seen and d != fmri:
                    seen.add(d)
                    stack.extend(self.deps.get(d, ()))
            hit = self._cache[fmri] = frozenset(seen)
        return hit

    def state(self, fmri: str) -> str | None:
        return self.states.get(fmri)


@dataclass
class Change:
    """One thing that happened to a case, for the response agents."""

    kind: str  # suspect | updated | repaired | resolved
    case: Case
    #: resources whose retire actions by this case are to be undone (kind repaired)
    unretire: list[str] = field(default_factory=list)
    #: the case as it was when the change happened (a repair is followed at once by its resolution)
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = self.data or self.case.event_data()

    @property
    def state(self) -> str:
        return str(self.data["state"])


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


_SIGNAMES = {int(s): s.name for s in signal.Signals}


def detail_of(e: Ereport) -> str:
    """The most telling text of an ereport, for case descriptions."""
    p = e.payload
    for k in ("reason", "summary", "detail", "line", "message"):
        v = p.get(k)
        if isinstance(v, str) and v:
            return v[:300]
    if e.cls.startswith("ereport.svc.exit."):
        pid = p.get("pid")
        who = f"a process (pid {pid})" if isinstance(pid, int) else "a process"
        sig = p.get("signal")
        if isinstance(sig, int) and sig:
            core = " and dumped core" if p.get("core") else ""
            return f"{who} died on {_SIGNAMES.get(sig, f'signal {sig}')} ({sig}){core}"
        code = p.get("code")
        if isinstance(code, int):
            return f"{who} exited with status {code}"
    if e.cls == "ereport.kernel.oom":
        return f"process {p.get('pid', '?')} ({p.get('comm', '?')}) killed, {p.get('anon_rss_kb', '?')} kB resident"
    if "value" in p:
        return f"{e.cls} value {p['value']}"
    return e.cls


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
        self.max_engines = max_engines
        self.max_resources = max_resources
        self.max_active = max_active
        self.engines: collections.OrderedDict[tuple[str, str], SerdEngine | ThresholdEngine] = \
            collections.OrderedDict()
        #: (rule, resource) -> the case this engine's evidence goes to (open, or solved once fired)
        self.engine_case: dict[tuple[str, str], str] = {}
        #: resource -> the solved case that names it as a faulty suspect
        self.by_suspect: dict[str, str] = {}
        #: resource -> recent ereports: (arrival, brief, detail)
        self.trail: collections.OrderedDict[str, collections.deque[tuple[float, dict[str, Any], str]]] = \
            collections.OrderedDict()
        self.stats: dict[str, RuleStats] = {r.name: RuleStats() for r in rules}
        self.counters = {"processed": 0, "unmatched": 0, "overflow": 0, "evicted": 0, "errors": 0}
        self._dirty_engines: set[tuple[str, str]] = set()
        if conn is not None:
            conn.executescript(SERD_SCHEMA)
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
        old = self.rules.by_name
        self.rules = rules
        for r in rules:
            self.stats.setdefault(r.name, RuleStats())
        for key in list(self.engines):
            new = rules.by_name.get(key[0])
            if new is None or old.get(key[0]) != new:
                del self.engines[key]

    def load_engines(self, now: float) -> int:
        """Engines saved by ``save_engines`` (before a restart), on the clock of ``now``."""
        if self.conn is None:
            return 0
        wall_to_mono = now - self.wall()
        n = 0
        for name, blob in self.conn.execute("SELECT name, data FROM fault_serd"):
            rule_name, _, resource = name.partition("|")
            rule = self.rules.by_name.get(rule_name)
            if rule is None or rule.kind not in ("serd", "threshold"):
                continue
            try:
                state = json.loads(blob)
            except ValueError:
                continue
            eng = self._make_engine(rule, resource)
            eng.load_state(state, wall_to_mono)
            self.engines[(rule_name, resource)] = eng
            n += 1
        return n

    def save_engines(self, now: float) -> None:
        if self.conn is None or not self._dirty_engines:
            return
        dirty, self._dirty_engines = self._dirty_engines, set()
        mono_to_wall = self.wall() - now
        put, drop = [], []
        for key in dirty:
            eng = self.engines.get(key)
            name = f"{key[0]}|{key[1]}"
            if eng is None or eng.empty:
                drop.append((name,))
            else:
                put.append((name, json.dumps(eng.to_state(mono_to_wall))))
        with transaction(self.conn) as db:
            db.executemany("DELETE FROM fault_serd WHERE name=?", drop)
            db.executemany("INSERT INTO fault_serd(name, data) VALUES(?, ?) "
                           "ON CONFLICT(name) DO UPDATE SET data=excluded.data", put)

    # ============================================================ arrival
    def arrive(self, e: Ereport, now: float) -> None:
        """Remember an ereport of its resource at its arrival (before any hold)."""
        if not e.resource:
            return
        tr = self.trail.get(e.resource)
        if tr is None:
            tr = self.trail[e.resource] = collections.deque(maxlen=TRAIL_LEN)
            if len(self.trail) > self.max_resources:
                self.trail.popitem(last=False)
        else:
            self.trail.move_to_end(e.resource)
        tr.append((now, e.brief(), detail_of(e)))

    def feed(self, e: Ereport, now: float) -> list[Change]:
        """``arrive`` then ``process`` at once (no hold)."""
        self.arrive(e, now)
        return self.process(e, now)

    # ============================================================ processing
    def process(self, e: Ereport, now: float) -> list[Change]:
        """Diagnose one ereport that arrived at ``now``."""
        self.counters["processed"] += 1
        rules = self.rules.consumers(e.cls, scheme_of(e.resource))
        if not rules:
            self.counters["unmatched"] += 1
            return []
        changes: list[Change] = []
        own: list[Rule] = []
        brief = e.brief()
        detail = detail_of(e)
        for r in rules:
            st = self.stats.setdefault(r.name, RuleStats())
            st.received += 1
            if r.resolves(e.payload):
                t0 = time.perf_counter_ns()
                changes.extend(self._resolve_by_source(r, e, detail))
                st.time_ns += time.perf_counter_ns() - t0
            else:
                own.append(r)
        for r in own:
            if r.kind == "cascade" and e.resource:
                t0 = time.perf_counter_ns()
                assert r.window is not None
                roots = self._roots(e.resource, now, r.window)
                if roots:
                    changes.extend(self._attribute(r, roots, e, brief, now))
                    st = self.stats[r.name]
                    st.attributed += 1
                    st.time_ns += time.perf_counter_ns() - t0
                    return changes
                self.stats[r.name].time_ns += time.perf_counter_ns() - t0
                break
        for r in own:
            if r.kind == "cascade":
                continue
            t0 = time.perf_counter_ns()
            changes.extend(self._feed(r, e, brief, detail, now))
            self.stats[r.name].time_ns += time.perf_counter_ns() - t0
        return changes

    # ------------------------------------------------------------ attribution
    def _troubled(self, fmri: str, now: float, window: float) -> bool:
        tr = self.trail.get(fmri)
        if tr:
            lo, hi = now - window, now + self.skew
            for t, _, _ in reversed(tr):
                if lo <= t <= hi:
                    return True
                if t < lo:
                    break
        return self.topology.state(fmri) in UNHEALTHY

    def _roots(self, fmri: str, now: float, window: float) -> list[str]:
        """The deepest troubled dependencies of ``fmri``: the suspects of its failure."""
        deps = self.topology.dependencies(fmri)
        if not deps:
            return []
        troubled = {d for d in deps if self._troubled(d, now, window)}
        if not troubled:
            return []
        return sorted(d for d in troubled if not (self.topology.dependencies(d) & troubled))

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
            for t, b, d in self.trail.get(root, ()):
                if now - rule.window <= t <= now + self.skew:
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
    def _make_engine(self, rule: Rule, resource: str) -> SerdEngine | ThresholdEngine:
        if rule.kind == "serd":
            assert rule.n is not None and rule.t is not None
            return SerdEngine(f"{rule.name}|{resource}", rule.n, rule.t)
        assert rule.bound is not None
        return ThresholdEngine(f"{rule.name}|{resource}", rule.bound)

    def _engine(self, rule: Rule, key: tuple[str, str]) -> SerdEngine | ThresholdEngine:
        eng = self.engines.get(key)
        if eng is None:
            eng = self.engines[key] = self._make_engine(rule, key[1])
            if len(self.engines) > self.max_engines:
                self._evict()
        else:
            self.engines.move_to_end(key)
        return eng

    def _evict(self) -> None:
        for key, eng in self.engines.items():
            if not eng.fired:
                del self.engines[key]
                self._dirty_engines.add(key)
                self.counters["evicted"] += 1
                self._discard_open(key)
                return

    def _feed(self, rule: Rule, e: Ereport, brief: dict[str, Any], detail: str, now: float) -> list[Change]:
        st = self.stats[rule.name]
        key = (rule.name, e.resource)
        eng = None
        if rule.kind == "immediate":
            fired = True
        else:
            eng = self._engine(rule, key)
            if rule.kind == "serd":
                fired = eng.record(now)
            else:
                assert rule.bound is not None
                value = e.payload.get(rule.bound.field)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    st.bad_value += 1
                    return []
                fired = eng.record(float(value))
            self._dirty_engines.add(key)
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
        if not fired:
            if target is not None:
                target.add_ereport(brief, detail)
                self.store.touch(target)
                return []
            if open_case is None:
                if self._full():
                    return []
                open_case = Case.new(rule.name, rule.fault, rule.msgid, rule.severity, self.node, rule.response)
                open_case.suspects = [Suspect(rule.fault, e.resource, rule.certainty)]
                open_case.window, open_case.fires_at = rule.window_text, rule.fires_at
                self.store.add(open_case)
                self.engine_case[key] = open_case.uuid
                st.opened += 1
            open_case.add_ereport(brief, detail)
            open_case.updated = self.wall()
            self.store.touch(open_case)
            return []
        # the rule fired
        if target is not None:
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
            if self._full():
                return []
            open_case = Case.new(rule.name, rule.fault, rule.msgid, rule.severity, self.node, rule.response)
            open_case.suspects = [Suspect(rule.fault, e.resource, rule.certainty)]
            # what the resource reported before (the start failures before a maintenance) is evidence too
            for t, b, _ in self.trail.get(e.resource, ()):
                if now - TRAIL_AGE <= t < now:
                    open_case.add_ereport(b)
            self.store.add(open_case)
            st.opened += 1
        open_case.window, open_case.fires_at = rule.window_text, rule.fires_at
        open_case.add_ereport(brief, detail)
        open_case.diagnoses.append(self._diagnosis(rule, e.resource))
        self.engine_case[key] = open_case.uuid
        what = rule.describe_engine()
        return [self._solve(open_case, rule, f"{rule.fault} diagnosed on {e.resource or self.node} by rule "
                                             f"{rule.name} ({what}): {detail}")]

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
        if sum(1 for c in self.store.cases.values() if c.active) >= self.max_active:
            self.counters["overflow"] += 1
            return True
        return False

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

    def _discard_open(self, key: tuple[str, str]) -> None:
        c = self._case_of(key)
        if c is not None and c.state == CaseState.OPEN:
            self._discard(c)
        self.engine_case.pop(key, None)

    def _reset_resource(self, resource: str) -> None:
        """An operator declared ``resource`` fixed: its engines start afresh, its open cases go."""
        for key in [k for k in self.engines if k[1] == resource]:
            self.engines[key].reset()
            del self.engines[key]
            self._dirty_engines.add(key)
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
        for key in list(self.engines):
            eng = self.engines[key]
            if eng.fired:
                continue
            eng.gc(now)
            if eng.empty:
                del self.engines[key]
                self._dirty_engines.add(key)
                c = self._case_of(key)
                if c is not None and c.state == CaseState.OPEN:
                    self._discard(c)
                    gone += 1
                elif c is None or not c.active:
                    self.engine_case.pop(key, None)
        for res in list(self.trail):
            tr = self.trail[res]
            if not tr or tr[-1][0] < now - TRAIL_AGE:
                del self.trail[res]
            else:
                break
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
                "unsaved": len(self._dirty_engines) + self.store.unsaved, **self.counters}

    def engine_list(self, now: float) -> list[dict[str, Any]]:
        out = []
        for (rule, resource), eng in self.engines.items():
            item = {"rule": rule, "resource": resource, "count": eng.count, "fired": eng.fired,
                    "recorded": eng.recorded, "case": self.engine_case.get((rule, resource))}
            if isinstance(eng, SerdEngine):
                times = eng.times()
                item.update({"n": eng.n, "t": eng.t, "oldest": (now - times[0]) if times else None})
            else:
                item.update({"bound": eng.bound.describe(), "last": eng.last})
            out.append(item)
        return out


def _split(total: int, n: int) -> list[int]:
    base, extra = divmod(total, n)
    return [base + (1 if i < extra else 0) for i in range(n)]
