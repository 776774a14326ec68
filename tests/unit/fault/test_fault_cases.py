"""The case lifecycle table and the case store in SQLite."""

import sqlite3

import pytest

from fault.cases import TABLE, Case, CaseEv, CaseState, CaseStore, Suspect, transition


def test_lifecycle_table_is_total_and_ends_in_resolved():
    for state in CaseState:
        for ev in CaseEv:
            nxt = transition(state, ev)
            assert nxt is None or nxt in CaseState
    # From every state there is a way to resolved, and nothing leaves resolved.
    for state in CaseState:
        seen, todo = {state}, [state]
        while todo:
            s = todo.pop()
            for nxt in TABLE[s].values():
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert CaseState.RESOLVED in seen
    assert TABLE[CaseState.RESOLVED] == {}


@pytest.mark.parametrize(("path", "end"), [
    ([CaseEv.SOLVE, CaseEv.REPAIR, CaseEv.RESOLVE], CaseState.RESOLVED),
    ([CaseEv.SOLVE, CaseEv.ACQUIT], CaseState.ACQUITTED),
    ([CaseEv.SOLVE, CaseEv.REPLACE, CaseEv.RESOLVE], CaseState.RESOLVED),
    ([CaseEv.EVIDENCE, CaseEv.ACQUIT, CaseEv.RESOLVE], CaseState.RESOLVED),
])
def test_paths(path, end):
    c = Case.new("r", "fault.x.y", "SVC-8000-3Q", "major", "n", "none")
    for ev in path:
        assert c.apply(ev, f"{ev}")
    assert c.state == end


def test_refused_transitions_change_nothing():
    c = Case.new("r", "fault.x.y", "SVC-8000-3Q", "major", "n", "none")
    assert not c.apply(CaseEv.REPAIR)
    assert not c.apply(CaseEv.RESOLVE)
    assert c.state == CaseState.OPEN


def test_store_round_trip_and_closed_cases_bounded(tmp_path):
    conn = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    store = CaseStore(conn, keep_closed=2)
    made = []
    for i in range(5):
        c = Case.new("r", "fault.x.y", "SVC-8000-3Q", "major", "n", "degrade")
        c.suspects.append(Suspect("fault.x.y", f"svc:/s{i}:default", 100))
        c.add_ereport({"id": i, "class": "ereport.a.b", "time": 1.0, "resource": ""}, "detail")
        c.apply(CaseEv.SOLVE, "solved")
        store.add(c)
        store.save(c)
        made.append(c)
    for c in made[:4]:
        c.apply(CaseEv.REPAIR, "repaired")
        c.apply(CaseEv.RESOLVE, "resolved")
        store.save(c)
    assert list(store.cases) == [made[4].uuid]
    again = CaseStore(sqlite3.connect(tmp_path / "r.db", isolation_level=None), keep_closed=2)
    loaded = again.load()
    assert [c.uuid for c in loaded] == [made[4].uuid]
    c = loaded[0]
    assert c.state == CaseState.SOLVED and c.suspects[0].resource == "svc:/s4:default"
    assert c.ereports[0]["id"] == 4 and c.detail == "detail"
    assert again.counts() == {"solved": 1, "resolved": 2}
    assert again.find(made[3].uuid[:8]) is not None
    assert again.find(made[0].uuid) is None  # beyond keep_closed
