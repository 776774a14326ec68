"""The diagnosis engine with the shipped rules, a fixed service graph and an injected clock."""

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fault.cases import CaseEv, CaseState, CaseStore
from fault.diagnosis import Diagnosis
from fault.events import EreportError, detail_of, validate
from fault.knowledge import load_knowledge
from fault.rules import SHIPPED_RULES, load_rules
from fault.topology import StaticTopology, ViewTopology

KB, _ = load_knowledge()
RULES, _ = load_rules([SHIPPED_RULES], KB)
DB, APPS = "svc:/site/db:default", [f"svc:/site/app{i}:default" for i in (1, 2, 3)]
WEB = "svc:/site/web:default"


def make(deps=None, states=None, *, conn=None, skew=1.0, **kw) -> Diagnosis:
    topo = StaticTopology(deps if deps is not None else {a: [DB] for a in APPS}, states or {})
    return Diagnosis(RULES, CaseStore(conn), topo, node="n1", skew=skew, conn=conn, **kw)


def ev(cls, resource="", **payload):
    return validate(cls, resource=resource, payload=payload)


def kill(resource, pid=100, sig=9):
    return ev("ereport.svc.exit.signal", resource, pid=pid, signal=sig, core=False)


def exit_code(resource, code=1):
    return ev("ereport.svc.exit.code", resource, pid=7, code=code)


def cases(d, state=None):
    return [c for c in d.store.cases.values() if state is None or c.state == state]


def test_a_service_killed_again_and_again_is_one_flapping_case():
    d = make()
    out = []
    for i in range(6):
        out += d.feed(kill(DB, pid=100 + i), now=10.0 * i)
    assert [c.kind for c in out] == ["suspect"]
    (case,) = cases(d)
    assert case.cls == "fault.svc.flapping" and case.state == CaseState.SOLVED
    assert case.suspects[0].resource == DB and case.response == "degrade"
    assert case.ereport_count == 6
    assert "SIGKILL" in case.detail


def test_flapping_then_maintenance_is_still_one_case():
    d = make()
    for i in range(3):
        d.feed(kill(DB), now=float(i))
    out = d.feed(ev("ereport.svc.maintenance", DB, reason="Restarting too quickly"), now=5.0)
    assert [c.kind for c in out] == ["updated"]
    (case,) = cases(d)
    assert case.classes == ["fault.svc.flapping", "defect.svc.maintenance"]
    assert case.detail == "Restarting too quickly"


def test_maintenance_by_itself_is_a_defect_case():
    d = make()
    out = d.feed(ev("ereport.svc.maintenance", DB, reason="Start method failed repeatedly"), now=0.0)
    assert [c.kind for c in out] == ["suspect"]
    assert out[0].case.cls == "defect.svc.maintenance"


def test_a_database_crash_that_takes_three_dependents_down_is_one_case_naming_it():
    d = make()
    out = d.feed(kill(DB), now=0.0)
    assert out == []  # one crash of the database alone is no fault yet
    for i, a in enumerate(APPS):
        out += d.feed(exit_code(a), now=0.5 + i * 0.1)
    assert [c.kind for c in out] == ["suspect", "updated", "updated"]
    solved = cases(d, CaseState.SOLVED)
    assert len(solved) == 1
    case = solved[0]
    assert case.cls == "fault.svc.cascade"
    assert [(s.resource, s.certainty) for s in case.suspects] == [(DB, 100)]
    assert case.impacted == APPS
    assert {b["resource"] for b in case.ereports} == {DB, *APPS}
    # the victims got no engines of their own: their failures were symptoms
    assert not [k for k in d.engines if k[1] in APPS]


@pytest.mark.parametrize("extra", [{}, {"note": "x" * 200}, {"nested": {"a": [1]}}], ids=["small", "long", "nested"])
def test_a_cascade_case_quotes_what_its_suspect_reported_however_the_trail_kept_it(extra):
    # the trail keeps a small flat payload and makes its text when read, anything else as its text
    d = make()
    d.feed(ev("ereport.svc.exit.core", DB, pid=42, signal=9, core=True, **extra), now=0.0)
    d.feed(exit_code(APPS[0]), now=0.5)
    (case,) = cases(d, CaseState.SOLVED)
    assert case.detail == "a process (pid 42) died on SIGKILL (9) and dumped core"


_HOSTILE_VALUE = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                           st.text(max_size=40), st.lists(st.integers(), max_size=3))


@settings(max_examples=150, deadline=None)
@given(cls=st.sampled_from(["ereport.svc.exit.signal", "ereport.svc.exit.code", "ereport.svc.exit.core",
                            "ereport.kernel.oom", "ereport.app.x"]),
       payload=st.dictionaries(st.sampled_from(["pid", "signal", "code", "core", "reason", "comm", "value", "n"]),
                               _HOSTILE_VALUE, max_size=5))
def test_a_cascade_case_quotes_a_hostile_payload_as_its_ereport_describes_it(cls, payload):
    # whatever a sender put in the values (a string for a pid, a list for a reason, a bool for a signal), the
    # payload the trail kept in place of its text reads back as the ereport's own detail, and nothing raises
    try:
        suspect = validate(cls, resource=DB, payload=payload)
    except EreportError:
        return
    d = make()
    d.feed(suspect, now=0.0)
    d.feed(exit_code(APPS[0]), now=0.5)
    quoted = [c.detail for c in cases(d) if "fault.svc.cascade" in c.classes]
    text = detail_of(validate(cls, resource=DB, payload=payload))
    assert isinstance(text, str) and text
    assert quoted in ([], [text])  # a class that is no failure of a service makes no cascade


def test_victims_failing_again_and_the_suspect_flapping_fold_into_the_same_case():
    d = make()
    d.feed(kill(DB), now=0.0)
    for a in APPS:
        d.feed(exit_code(a), now=0.5)
    for t in (1.0, 2.0):
        d.feed(kill(DB), now=t)
        for a in APPS:
            d.feed(exit_code(a), now=t + 0.2)
    assert len(cases(d, CaseState.SOLVED)) == 1
    (case,) = cases(d, CaseState.SOLVED)
    assert case.classes == ["fault.svc.cascade", "fault.svc.flapping"]
    assert cases(d, CaseState.OPEN) == []


def test_a_dependency_reported_a_moment_late_still_counts_as_first():
    d = make(skew=1.0)
    app = exit_code(APPS[0])
    d.arrive(app, 10.0)  # the dependent's exit was reaped first ...
    d.arrive(kill(DB), 10.2)  # ... the database's a moment later
    out = d.process(app, 10.0)
    assert [c.kind for c in out] == ["suspect"]
    assert out[0].case.suspects[0].resource == DB


def test_the_deepest_troubled_dependency_is_the_suspect():
    deps = {WEB: [APPS[0]], APPS[0]: [DB]}
    d = make(deps)
    d.feed(kill(DB), now=0.0)
    d.feed(exit_code(APPS[0]), now=0.3)
    d.feed(exit_code(WEB), now=0.4)
    (case,) = cases(d, CaseState.SOLVED)
    assert [s.resource for s in case.suspects] == [DB]
    assert case.impacted == [APPS[0], WEB]


def test_two_failed_dependencies_share_the_certainty():
    a, b = "svc:/site/a:default", "svc:/site/b:default"
    d = make({WEB: [a, b]})
    d.feed(kill(a), now=0.0)
    d.feed(kill(b), now=0.1)
    d.feed(exit_code(WEB), now=0.5)
    (case,) = cases(d, CaseState.SOLVED)
    assert sorted((s.resource, s.certainty) for s in case.suspects) == [(a, 50), (b, 50)]


def test_a_dependency_in_maintenance_is_a_suspect_without_a_recent_ereport():
    d = make(states={DB: "maintenance"})
    out = d.feed(exit_code(APPS[0]), now=1000.0)
    assert out[0].case.suspects[0].resource == DB


def test_failures_outside_the_window_are_not_attributed():
    d = make()
    d.feed(kill(DB), now=0.0)
    out = d.feed(exit_code(APPS[0]), now=100.0)  # the cascade window is 30 s
    assert out == []
    assert [c.rule for c in cases(d)] == ["svc-flapping", "svc-flapping"]  # both collecting evidence, open
    assert all(c.state == CaseState.OPEN for c in cases(d))


def test_repair_closes_the_case_and_resets_its_engines():
    d = make()
    for t in range(3):
        d.feed(kill(DB), now=float(t))
    (case,) = cases(d)
    out = d.close(case, CaseEv.REPAIR, None, "fixed")
    assert [c.kind for c in out] == ["repaired", "resolved"]
    assert DB in out[0].unretire
    assert case.state == CaseState.RESOLVED and case.suspects[0].status == "repaired"
    assert d.solved_case_for(DB) is None
    new = []
    for t in range(3):
        new += d.feed(kill(DB), now=10.0 + t)
    assert [c.kind for c in new] == ["suspect"] and new[0].case.uuid != case.uuid


def test_svcadm_clear_of_a_suspect_repairs_but_of_a_victim_does_not():
    d = make()
    d.feed(kill(DB), now=0.0)
    d.feed(exit_code(APPS[0]), now=0.5)
    (case,) = cases(d, CaseState.SOLVED)
    assert d.on_cleared(APPS[0], case.uuid) == []
    assert case.state == CaseState.SOLVED
    assert "impacted svc:/site/app1:default cleared" in case.history[-1]["text"]
    out = d.on_cleared(DB, None)
    assert [c.kind for c in out] == ["repaired", "resolved"]
    assert d.on_cleared(DB, case.uuid) == []  # our own clear coming back: nothing, no loop


def test_an_alert_resolves_its_own_case():
    d = make()
    res = "alert:///HighLatency/host1"
    out = d.feed(ev("ereport.prometheus.HighLatency", res, status="firing", summary="HighLatency: slow"), 0.0)
    assert [c.kind for c in out] == ["suspect"]
    assert d.feed(ev("ereport.prometheus.HighLatency", res, status="firing"), 60.0) == []
    out = d.feed(ev("ereport.prometheus.HighLatency", res, status="resolved"), 120.0)
    assert [c.kind for c in out] == ["repaired", "resolved"]
    assert out[0].case.state == CaseState.RESOLVED


def test_an_alert_that_ends_does_not_close_a_case_it_did_not_open():
    d = make()
    for i in range(3):
        d.feed(kill(DB, pid=100 + i), now=float(i))
    (flapping,) = cases(d, CaseState.SOLVED)
    out = d.feed(ev("ereport.prometheus.DbDown", DB, status="firing"), 10.0)  # folded into the flapping case
    assert [c.kind for c in out] == ["updated"] and out[0].case is flapping
    assert d.feed(ev("ereport.prometheus.DbDown", DB, status="resolved"), 20.0) == []
    assert flapping.state == CaseState.SOLVED and flapping.suspects[0].status == "faulty"
    assert "the case stays open" in flapping.history[-1]["text"]
    # the alert's own case, opened by it alone, still closes when it ends
    res = "alert:///Other"
    d.feed(ev("ereport.prometheus.Other", res, status="firing"), 30.0)
    out = d.feed(ev("ereport.prometheus.Other", res, status="resolved"), 40.0)
    assert [c.kind for c in out] == ["repaired", "resolved"]


def test_threshold_rule_and_bad_values():
    d = make()
    disk = "dev:///dev/sdb"
    out = []
    for v in (0.9, 0.2, 0.8, 0.7):
        out += d.feed(ev("ereport.telemetry.disk.latency", disk, value=v), 0.0)
    assert out == []
    d.feed(ev("ereport.telemetry.disk.latency", disk, value="slow"), 0.0)
    assert d.stats["disk-latency"].bad_value == 1
    out = d.feed(ev("ereport.telemetry.disk.latency", disk, value=0.6), 0.0)
    assert [c.case.cls for c in out] == ["fault.io.disk.slow"]


def test_disk_serd_fires_at_exactly_the_fifth_error_in_ten_minutes_and_not_when_spread():
    d = make()
    disk = "dev:///dev/sda"
    got = [bool(d.feed(ev("ereport.io.disk.error", disk, sector=i), 60.0 * i)) for i in range(5)]
    assert got == [False, False, False, False, True]
    d2 = make()
    got = [bool(d2.feed(ev("ereport.io.disk.error", disk, sector=i), 200.0 * i)) for i in range(10)]
    assert not any(got)


def test_open_cases_whose_evidence_ages_out_are_discarded():
    d = make()
    d.feed(ev("ereport.io.disk.error", "dev:///dev/sda"), 0.0)
    assert len(cases(d, CaseState.OPEN)) == 1
    assert d.gc(100.0) == 0
    assert d.gc(700.0) == 1
    assert cases(d) == [] and len(d.engines) == 0


def test_unmatched_classes_are_counted_not_diagnosed():
    d = make()
    assert d.feed(ev("ereport.nobody.cares", "dev:///dev/sda"), 0.0) == []
    assert d.counters["unmatched"] == 1


def test_repeated_immediate_faults_on_one_resource_are_one_case():
    d = make()
    for t in range(5):
        d.feed(ev("ereport.kernel.oom", DB, pid=t, comm="kvdb"), float(t))
    assert len(cases(d)) == 1 and cases(d)[0].ereport_count == 5


def test_a_flood_of_distinct_resources_stays_bounded():
    d = make(max_engines=500, max_active=200)
    for i in range(20_000):
        d.feed(ev("ereport.io.disk.error", f"dev:///dev/x{i}"), float(i) * 0.001)
        d.feed(ev("ereport.kernel.oom", f"sw:///p{i}", pid=i), float(i) * 0.001)
    assert len(d.engines) <= 500
    assert sum(1 for c in cases(d) if c.active) <= 200
    assert len(d.trail) <= d.max_resources
    assert d.counters["evicted"] > 0 and d.counters["overflow"] > 0


def test_engines_and_cases_survive_a_restart(tmp_path):
    conn = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    d = make(conn=conn)
    for i in range(4):
        d.feed(ev("ereport.io.disk.error", "dev:///dev/sda"), 1000.0 + i)
    d.save_engines(1004.0)
    d.store.flush()
    conn2 = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    store = CaseStore(conn2)
    store.load()
    d2 = Diagnosis(RULES, store, StaticTopology({}), conn=conn2)
    assert d2.load_engines(50.0) == 1  # another clock: a new daemon
    out = d2.feed(ev("ereport.io.disk.error", "dev:///dev/sda"), 51.0)
    assert [c.kind for c in out] == ["suspect"]
    assert out[0].case.ereport_count == 5  # the open case kept its evidence too


@pytest.mark.parametrize("n", [0, 1])
def test_no_cascade_rule_means_no_attribution(n):
    from fault.rules import RuleSet

    rules = RuleSet([r for r in RULES if r.kind != "cascade"])
    d = Diagnosis(rules, CaseStore(None), StaticTopology({a: [DB] for a in APPS}))
    d.feed(kill(DB), 0.0)
    out = d.feed(exit_code(APPS[n]), 0.5)
    assert out == []
    assert {c.suspects[0].resource for c in cases(d)} == {DB, APPS[n]}


def test_a_kill_at_the_memory_limit_and_what_follows_is_one_case():
    d = make()
    d.feed(ev("ereport.svc.oom", WEB, pid=7, limit=32 << 20,
              summary="process 7 was killed by the kernel's OOM killer at the memory limit of 32 MiB"), 0.0)
    d.feed(kill(WEB, pid=7), 0.1)
    d.feed(ev("ereport.svc.maintenance", WEB, reason="Restarting too quickly"), 1.0)
    (c,) = cases(d)
    assert c.suspects[0].fault == "fault.svc.memory.limit" and c.msgid == "SVC-8000-8K"
    assert c.suspects[0].resource == WEB and c.ereport_count == 3


def test_the_view_topology_follows_a_new_graph():
    """Dependencies are remembered per closure the view gives: a new graph (a new closure) is read again."""
    class View:
        def __init__(self):
            self.graph = {"svc:/a:default": frozenset({"svc:/a:default", "svc:/db:default"})}

        def closure(self, fmri, groupings):
            return self.graph.get(fmri, frozenset({fmri}))

    view = View()
    topo = ViewTopology(view)
    assert topo.dependencies("svc:/a:default") == {"svc:/db:default"}
    assert topo.dependencies("svc:/a:default") is topo.dependencies("svc:/a:default")
    view.graph = {"svc:/a:default": frozenset({"svc:/a:default", "svc:/cache:default"})}
    assert topo.dependencies("svc:/a:default") == {"svc:/cache:default"}
    assert topo.dependencies("svc:/b:default") == frozenset()
