"""The case lifecycle table and the case store in SQLite."""

import json
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


def _brief(i):
    return {"id": i, "class": "ereport.svc.exit.signal", "time": 1_700_000_000.0 + i, "resource": "svc:/s:default"}


def _solved(n_ereports):
    c = Case.new("r", "fault.x.y", "SVC-8000-3Q", "major", "n", "degrade")
    c.suspects.append(Suspect("fault.x.y", "svc:/s:default", 100))
    for i in range(n_ereports):
        c.add_ereport(_brief(i), f"detail {i}")
    c.apply(CaseEv.SOLVE, "solved", 1_700_000_100.0)
    return c


def test_a_flush_appends_the_new_ereports_and_rewrites_only_the_case_row(tmp_path):
    conn = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    store = CaseStore(conn)
    c = _solved(3)
    store.add(c)
    store.save(c)
    written: list[str] = []
    conn.set_trace_callback(written.append)
    for i in range(3, 150):  # past MAX_EREPORTS: only the count and the detail change then
        c.add_ereport(_brief(i), f"detail {i}")
        store.touch(c)
        store.flush()
    conn.set_trace_callback(None)
    appended = [w for w in written if w.startswith("INSERT OR REPLACE INTO fault_case_ereports")]
    assert len(appended) == 100 - 3  # a row for each flush with a new ereport, none written again
    assert _ereport_rows(conn) == [3] + [1] * 97
    (blob,) = conn.execute("SELECT data FROM fault_cases WHERE uuid=?", (c.uuid,)).fetchone()
    assert "ereports" not in json.loads(blob)
    again = CaseStore(sqlite3.connect(tmp_path / "r.db", isolation_level=None)).load()
    assert [x.to_dict() for x in again] == [c.to_dict()]
    assert again[0].ereport_count == 150 and len(again[0].ereports) == 100 and again[0].detail == "detail 149"


def test_discarded_and_trimmed_cases_leave_no_ereport_rows(tmp_path):
    conn = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    store = CaseStore(conn, keep_closed=1)
    cases = [_solved(5) for _ in range(3)]
    for c in cases:
        store.add(c)
        store.save(c)
    store.discard(cases[0])
    for c in cases[1:]:
        c.apply(CaseEv.REPAIR, "repaired")
        c.apply(CaseEv.RESOLVE, "resolved")
        store.save(c)
    kept = {u for (u,) in conn.execute("SELECT DISTINCT uuid FROM fault_case_ereports")}
    assert kept == {u for (u,) in conn.execute("SELECT uuid FROM fault_cases")} and len(kept) == 1
    (closed,) = store.query(include_closed=True)
    assert len(closed.ereports) == 5 and closed.state == CaseState.RESOLVED


def _ereport_rows(conn):
    """How many ereports each row of fault_case_ereports holds, from the largest."""
    return sorted((len(json.loads(d)) for (d,) in conn.execute("SELECT data FROM fault_case_ereports")), reverse=True)


def _old_layout(path, cases):
    """A repository as svcmgrd wrote it before layout 2 (main at 776d820): each case's ereports in its row."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript("""
        CREATE TABLE fault_cases (uuid TEXT PRIMARY KEY, state TEXT NOT NULL, class TEXT NOT NULL,
            msgid TEXT NOT NULL, severity TEXT NOT NULL, opened REAL NOT NULL, updated REAL, closed REAL,
            data TEXT NOT NULL);
        CREATE INDEX fault_cases_state ON fault_cases(state);
        CREATE TABLE fault_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);""")
    for c in cases:
        conn.execute("INSERT INTO fault_cases VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (c.uuid, str(c.state), c.cls, c.msgid, c.severity, c.opened, c.updated, c.closed,
                      json.dumps(c.to_dict(), separators=(",", ":"))))
    conn.close()


def test_a_repository_of_the_layout_before_is_moved_to_ereport_rows_and_reads_the_same(tmp_path):
    open_case, closed = _solved(4), _solved(2)
    closed.apply(CaseEv.REPAIR, "repaired")
    closed.apply(CaseEv.RESOLVE, "resolved")
    _old_layout(tmp_path / "r.db", [open_case, closed])
    conn = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    store = CaseStore(conn)
    assert conn.execute("SELECT value FROM fault_meta WHERE key='cases.layout'").fetchone() == ("2",)
    assert all("ereports" not in json.loads(b) for (b,) in conn.execute("SELECT data FROM fault_cases"))
    assert _ereport_rows(conn) == [4, 2]  # one row each, all its ereports
    (loaded,) = store.load()
    assert loaded.to_dict() == open_case.to_dict()
    assert [c.to_dict() for c in store.query(include_closed=True)] == [open_case.to_dict(), closed.to_dict()]
    loaded.add_ereport(_brief(4), "more")
    store.touch(loaded)
    store.flush()
    assert CaseStore(conn).load()[0].ereports == [_brief(i) for i in range(5)]


def test_a_case_row_still_holding_its_ereports_is_read_as_it_is_and_moved_when_written(tmp_path):
    """The move is skipped when the repository cannot be written (a full disk): such rows are read as they are."""
    c = _solved(3)
    _old_layout(tmp_path / "r.db", [c])
    conn = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    conn.execute("CREATE TABLE fault_case_ereports (uuid TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, "
                 "PRIMARY KEY (uuid, seq)) WITHOUT ROWID")
    conn.execute("INSERT INTO fault_meta VALUES('cases.layout', '2')")  # as if moved, but this row was not
    store = CaseStore(conn)
    (loaded,) = store.load()
    assert loaded.to_dict() == c.to_dict()
    loaded.add_ereport(_brief(3), "more")
    store.touch(loaded)
    store.flush()  # written in the new layout: its ereports in a row
    assert _ereport_rows(conn) == [4]
    assert CaseStore(conn).load()[0].ereports == [_brief(i) for i in range(4)]


@pytest.mark.parametrize(("member", "value"), [
    ("impacted", 5), ("impacted", [5]), ("history", 5), ("history", [{"time": "noon", "event": "solved", "text": ""}]),
    ("suspects", [{"fault": "x", "resource": "svc:/a:b", "certainty": "all", "status": "faulty"}]),
    ("suspects", [5]), ("retired", []), ("retired", {"svc:/a:b": 5}), ("severity", 5), ("opened", "noon"),
    ("solved", "noon"), ("ereport_count", "many"), ("diagnoses", [{"fault": 1}]), ("state", "bogus"), ("uuid", 5),
])
def test_a_damaged_case_row_is_left_out_and_the_others_load_and_show(tmp_path, caplog, member, value):
    from fault.knowledge import load_knowledge
    from fault.views import case_view, log_records

    conn = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    store = CaseStore(conn)
    good, bad = _solved(2), _solved(1)
    for c in (good, bad):
        store.add(c)
        store.save(c)
    d = {**bad.to_dict(), member: value}
    conn.execute("UPDATE fault_cases SET data=? WHERE uuid=?", (json.dumps(d), bad.uuid))
    conn.execute("INSERT INTO fault_case_ereports(uuid, seq, data) VALUES(?, 99, ?)",
                 (good.uuid, json.dumps([1, "x", None, {"id": "7"}, _brief(2)])))
    again = CaseStore(sqlite3.connect(tmp_path / "r.db", isolation_level=None))
    loaded = again.load()
    assert [c.uuid for c in loaded] == [good.uuid]
    assert loaded[0].ereports == [_brief(0), _brief(1), _brief(2)]  # what is not an ereport's brief is left out
    assert f"a case in the repository cannot be read and is left out: {d['uuid'] if member != 'uuid' else ''}" \
        in caplog.text and member in caplog.text
    kb, _ = load_knowledge()
    assert case_view(loaded[0], kb, lambda f, s: [])["uuid"] == good.uuid
    assert {r["uuid"] for r in log_records(again.query(include_closed=True))} == {good.uuid}
