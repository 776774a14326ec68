"""The error log stays within its bound under a flood, drops the oldest, and counts every loss."""

import sqlite3
import sys
import tracemalloc

from fault.errlog import ErrorLog
from fault.events import validate


def _e(i: int):
    return validate("ereport.io.disk.error", resource="dev:///dev/sda", payload={"n": i})


def test_flood_of_100k_keeps_the_newest_within_the_bound(tmp_path):
    conn = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    log = ErrorLog(conn, max_entries=1000, max_pending=5000)
    tracemalloc.start()
    for i in range(100_000):
        log.append(_e(i))
        if log.pending >= 2000:
            log.flush()
    log.flush()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert log.count() == 1000
    rows = log.query(limit=5000)
    assert [r["payload"]["n"] for r in rows] == list(range(99_000, 100_000))
    st = log.statistics()
    assert st["received"] == 100_000 and st["dropped"] == 99_000
    assert peak < 20 * 1024 * 1024, f"peak {peak} bytes"


def test_pending_buffer_is_bounded_too(tmp_path):
    log = ErrorLog(sqlite3.connect(tmp_path / "r.db", isolation_level=None), max_entries=100_000, max_pending=100)
    for i in range(1000):
        log.append(_e(i))
    assert log.pending == 100
    assert log.counters["dropped"] == 900
    log.flush()
    assert [r["payload"]["n"] for r in log.query(limit=10)][-1] == 999


def test_counters_and_ids_survive_a_restart(tmp_path):
    path = tmp_path / "r.db"
    log = ErrorLog(sqlite3.connect(path, isolation_level=None), max_entries=10)
    for i in range(25):
        log.append(_e(i))
    log.flush()
    log.reject()
    log.flush()
    again = ErrorLog(sqlite3.connect(path, isolation_level=None), max_entries=10)
    assert again.counters["received"] == 25 and again.counters["dropped"] == 15
    assert again.next_id == 26


def test_queries_by_class_glob_time_and_ids(tmp_path):
    log = ErrorLog(sqlite3.connect(tmp_path / "r.db", isolation_level=None))
    a = log.append(validate("ereport.svc.exit.signal", resource="svc:/a:default", time_=1_700_000_000.0))
    log.append(validate("ereport.svc.exit.code", resource="svc:/a:default", time_=1_700_000_100.0))
    log.append(validate("ereport.io.disk.error", resource="dev:///dev/sda", time_=1_700_000_200.0))
    assert [r["class"] for r in log.query(cls="ereport.svc.*")] == ["ereport.svc.exit.signal",
                                                                     "ereport.svc.exit.code"]
    assert [r["class"] for r in log.query(since=1_700_000_150.0)] == ["ereport.io.disk.error"]
    assert [r["id"] for r in log.query(ids=[a])] == [a]


def test_retention_drops_old_entries(tmp_path):
    log = ErrorLog(sqlite3.connect(tmp_path / "r.db", isolation_level=None), retention=60)
    e = _e(1)
    e.received -= 3600
    log.append(e)
    log.append(_e(2))
    log.flush()
    assert log.expire() == 1
    assert [r["payload"]["n"] for r in log.query()] == [2]


def test_an_error_log_of_the_layout_before_opens_without_its_index_and_expires(tmp_path):
    """A log written before (with an index on received, kept up by every row) opens as it is, without the index."""
    conn = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    log = ErrorLog(conn, retention=60)
    old = _e(1)
    old.received -= 3600
    log.append(old)
    log.append(_e(2))
    log.flush()
    conn.execute("CREATE INDEX fault_errlog_received ON fault_errlog(received)")
    conn.close()
    conn = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    log = ErrorLog(conn, retention=60)
    indexes = "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='fault_errlog'"
    assert conn.execute(indexes).fetchall() == []
    assert [r["payload"]["n"] for r in log.query()] == [1, 2]
    log.append(_e(3))
    assert log.expire() == 1
    assert [r["payload"]["n"] for r in log.query()] == [2, 3]
    assert log.expire() == 0


def test_expiry_takes_the_rows_before_the_first_within_the_retention(tmp_path):
    log = ErrorLog(sqlite3.connect(tmp_path / "r.db", isolation_level=None), retention=60)
    ages = [7200, 3600, 0, 3600, 0]  # the clock went back once, after the third
    for i, age in enumerate(ages, 1):
        e = _e(i)
        e.received -= age
        log.append(e)
    log.flush()
    assert log.expire() == 2
    assert [r["payload"]["n"] for r in log.query()] == [3, 4, 5]
    assert log.expire() == 0


def test_a_waiting_ereport_is_kept_as_its_row_not_as_the_ereport(tmp_path):
    """What waits for the next flush is plain values: the ereport itself goes once diagnosed (a flood of them
    waiting would be scanned by every collection of the cyclic garbage collector)."""
    log = ErrorLog(sqlite3.connect(tmp_path / "r.db", isolation_level=None))
    e = _e(7)
    refs = sys.getrefcount(e)
    log.append(e)
    assert sys.getrefcount(e) == refs and log.pending == 1
    del e
    log.flush()
    assert [(r["id"], r["payload"]) for r in log.query()] == [(1, {"n": 7})]


def _filled(tmp_path, n: int, max_entries: int) -> tuple[sqlite3.Connection, ErrorLog]:
    """An error log in a new file holding ``n`` ereports, written."""
    conn = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    log = ErrorLog(conn, max_entries=max_entries)
    for i in range(n):
        log.append(_e(i))
    log.flush()
    return conn, log


def test_damaged_rows_are_left_out_of_what_is_read(tmp_path):
    conn, log = _filled(tmp_path, 5, 1000)
    conn.execute("UPDATE fault_errlog SET time='noon' WHERE id=1")
    conn.execute("UPDATE fault_errlog SET class=x'41' WHERE id=2")
    conn.execute("UPDATE fault_errlog SET source=x'ff' WHERE id=3")
    conn.execute("UPDATE fault_errlog SET payload='[1]' WHERE id=4")
    rows = log.query()
    assert [r["id"] for r in rows] == [4, 5] and rows[0]["payload"] == {}
    assert [r["id"] for r in log.query(ids=[1, 2, 3, 5])] == [5]


def test_a_thousand_classes_and_globs_are_one_query(tmp_path):
    """fm.dump takes 1,000 class patterns from any user: ORed one after another they made an expression deeper
    than SQLite's 1,000 (``Expression tree is too large``, an internal error with a traceback in the daemon's
    log). Names are one ``IN``, globs a balanced tree."""
    log = ErrorLog(sqlite3.connect(tmp_path / "r.db", isolation_level=None))
    a = log.append(validate("ereport.svc.exit.signal", resource="svc:/a:default"))
    b = log.append(validate("ereport.io.disk.error", resource="dev:///dev/sda"))
    log.append(validate("ereport.app.other", resource="svc:/a:default"))
    names = [f"ereport.x.n{i}" for i in range(2000)] + ["ereport.io.disk.error"]
    globs = [f"ereport.[x]{i}.*" for i in range(2000)] + ["ereport.svc.*"]
    for cls, found in ((names, [b]), (globs, [a]), (names + globs, [a, b]), (globs[:999] + names[-1:], [b])):
        assert [r["id"] for r in log.query(cls=cls, since=0.0, after=0)] == found


def test_pages_read_what_a_query_reads_a_page_at_a_time(tmp_path):
    """fm.dump reads the error log a page at a time, the event loop turning between pages: the pages, newest
    first, make the entries one query gives (damaged rows left out), and what arrives meanwhile is not among them."""
    conn, log = _filled(tmp_path, 2500, 10_000)
    conn.execute("UPDATE fault_errlog SET time='noon' WHERE id IN (1000, 2000)")
    want = log.query(limit=5000)[-2300:]
    pages = log.pages(limit=2300, page=1000)
    first = next(pages)
    assert [r["id"] for r in first] == [i for i in range(1501, 2501) if i != 2000]
    log.append(_e(9999))  # while the reader lets others run
    log.flush()
    rest = list(pages)
    assert len(rest) == 2 and all(len(p) <= 1000 for p in rest)
    assert [r for p in reversed([first, *rest]) for r in p] == want
    assert [r["id"] for r in next(log.pages(cls=["ereport.io.*"], after=2400, page=50))] == list(range(2452, 2502))


async def test_fm_dump_turns_the_loop_between_pages_and_gives_other_users_at_most_their_share(tmp_path):
    """A reply of 100,000 entries held the event loop for seconds, restarts and every other request waiting behind
    it; it is read a page at a time now, and a caller other than root gets at most ``MAX_DUMP_USER`` entries."""
    import asyncio
    from types import SimpleNamespace

    from fault.operations import DUMP_PAGE, MAX_DUMP_USER, Operations
    from svcmgr.api import Caller

    log = ErrorLog(sqlite3.connect(tmp_path / "r.db", isolation_level=None), max_entries=100_000)
    n = MAX_DUMP_USER + 2 * DUMP_PAGE
    for i in range(n):
        log.append(validate("ereport.svc.exit.signal", resource="svc:/site/a:default", payload={"n": i}))
    log.flush()
    parts = SimpleNamespace(errlog=log, services=SimpleNamespace(instance=lambda fmri: None))
    turns = 0

    async def other() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other())
    await asyncio.sleep(0)
    root = await Operations.op_dump(parts, Caller(1, 0, 0, frozenset({0}), True), {"errlog": True, "limit": 10 * n})
    task.cancel()
    assert [e["payload"]["n"] for e in root["entries"]] == list(range(n)) and not root["more"]
    assert turns >= n // DUMP_PAGE  # the other task ran between the pages
    user = await Operations.op_dump(parts, Caller(1, 65534, 65534, frozenset({65534}), False),
                                    {"errlog": True, "limit": 10 * n})
    assert (len(user["entries"]), user["more"], user["limit"]) == (MAX_DUMP_USER, True, MAX_DUMP_USER)
    assert user["entries"][-1]["payload"]["n"] == n - 1 and user["last"] == root["last"] == n


def test_fmdump_says_how_a_user_other_than_root_sees_older_records():
    from fault.cli.fmdump import only_last

    assert only_last(10000, 10000) == "only the last 10000 records are shown (--last N for more)"
    assert only_last(1, 1) == "only the last record is shown (--last N for more)"
    assert only_last(50000, 10000) == ("only the last 10000 records are shown (at most 10000 a request for a user "
                                        "other than root: -t/-T for older ones)")
