"""The error log: every ereport received, stored in the repository, bounded, counted.

Ereports get an id on arrival and wait in a bounded buffer that is written in one
transaction per batch (``flush``), so that a flood costs one write per batch, not
one per ereport. The table ``fault_errlog`` keeps at most ``max_entries`` rows and
none older than ``retention``; the oldest (the first to arrive) go first. Nothing here
can grow without bound: a buffer that fills faster than it is written loses its
oldest entries too.
Every loss is counted, and the counters are kept in the repository.
"""

from __future__ import annotations

import collections
import contextlib
import json
import operator
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from fault.events import Ereport
from svcmgr.db import transaction
from svcmgr.fmri import is_glob

__all__ = ["ErrorLog"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS fault_errlog (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    received REAL NOT NULL,
    class TEXT NOT NULL,
    node TEXT NOT NULL,
    resource TEXT NOT NULL,
    source TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fault_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
#: the index on ``received`` of the error logs written before (every row paid for it; ``expire`` needs none)
_OLD_INDEX = "DROP INDEX IF EXISTS fault_errlog_received"

_COUNTERS = ("received", "rejected", "stored", "dropped")
#: an ereport as a row of ``fault_errlog``
_ROW = operator.attrgetter("id", "time", "received", "cls", "node", "resource", "source", "payload_json")


def _any_glob(n: int) -> str:
    """``class GLOB ?`` ``n`` times, ORed as a balanced tree: one after another, 1,000 of them (fm.dump takes that
    many from any user) made an expression deeper than SQLite allows (``Expression tree is too large``)."""
    if n == 1:
        return "class GLOB ?"
    return f"({_any_glob(n // 2)} OR {_any_glob(n - n // 2)})"


def _readable(row: tuple[Any, ...]) -> bool:
    """Whether a row of ``fault_errlog`` (id, time, received, class, node, resource, source, ...) holds what the
    error log wrote there: SQLite keeps any value in any column, so a damaged one may hold text for a time."""
    return (type(row[1]) in (int, float) and type(row[2]) in (int, float)
            and all(type(v) is str for v in row[3:7]))


class ErrorLog:
    def __init__(self, conn: sqlite3.Connection | None, *, max_entries: int = 100_000,
                 retention: float = 30 * 86400.0, max_pending: int = 20_000) -> None:
        self.conn = conn
        self.max_entries = max_entries
        self.retention = retention
        self.max_pending = max_pending
        #: rows waiting to be written (``_ROW``: plain values, not the ereports, which the cyclic garbage collector
        #: would scan again and again while tens of thousands of them wait: about a fifth of a flood's time)
        self._pending: collections.deque[tuple[Any, ...]] = collections.deque()
        self.counters = dict.fromkeys(_COUNTERS, 0)
        self.next_id = 1
        self.flushes = 0
        if conn is not None:
            conn.executescript(SCHEMA)
            with contextlib.suppress(sqlite3.Error):  # a full disk: dropped the next time
                conn.execute(_OLD_INDEX)
            (top,) = conn.execute("SELECT coalesce(max(id), 0) FROM fault_errlog").fetchone()
            stored = dict(conn.execute("SELECT key, value FROM fault_meta WHERE key LIKE 'errlog.%'").fetchall())
            for k in _COUNTERS:
                try:
                    self.counters[k] = int(stored.get(f"errlog.{k}", 0))
                except ValueError:
                    self.counters[k] = 0
            self.next_id = max(int(top), int(stored.get("errlog.last_id", 0) or 0)) + 1

    # ------------------------------------------------------------ writing
    def append(self, e: Ereport) -> int:
        """Give the ereport its id and queue it for the next flush."""
        e.id = self.next_id
        self.next_id += 1
        self.counters["received"] += 1
        pending = self._pending
        pending.append(_ROW(e))
        if len(pending) > self.max_pending:
            pending.popleft()
            self.counters["dropped"] += 1
        return e.id

    def reject(self) -> None:
        self.counters["rejected"] += 1

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Write what waits, then drop rows beyond the bound. Returns how many were written."""
        if not self._pending:
            return 0
        batch = self._pending
        self._pending = collections.deque()
        if self.conn is None:
            self.counters["stored"] += len(batch)
            return len(batch)
        rows = list(batch)
        counters = dict(self.counters)
        try:
            with transaction(self.conn) as db:
                db.executemany("INSERT OR REPLACE INTO fault_errlog(id, time, received, class, node, resource, "
                               "source, payload) VALUES(?, ?, ?, ?, ?, ?, ?, ?)", rows)
                self.counters["stored"] += len(rows)
                cut = self.next_id - 1 - self.max_entries
                if cut > 0:
                    cur = db.execute("DELETE FROM fault_errlog WHERE id <= ?", (cut,))
                    self.counters["dropped"] += max(cur.rowcount, 0)
                self._save_counters(db)
        except sqlite3.Error:
            # Not written (a full disk): back in front of what waits, within the bound, for the next flush.
            self.counters.update(counters)
            batch.extend(self._pending)
            while len(batch) > self.max_pending:
                batch.popleft()
                self.counters["dropped"] += 1
            self._pending = batch
            raise
        self.flushes += 1
        return len(rows)

    def expire(self, now: float | None = None) -> int:
        """Drop rows older than the retention; returns how many."""
        if self.conn is None:
            return 0
        cutoff = (time.time() if now is None else now) - self.retention
        with transaction(self.conn) as db:
            # Rows are in the order they arrived (their ids), each with the clock at its arrival: the expired ones
            # come first, up to the first row within the retention (read in id order: no index to keep up per row).
            first = db.execute("SELECT id FROM fault_errlog WHERE received >= ? ORDER BY id LIMIT 1",
                               (cutoff,)).fetchone()
            cur = db.execute("DELETE FROM fault_errlog WHERE id < ? AND received < ?",
                             (first[0] if first else self.next_id, cutoff))
            n = max(cur.rowcount, 0)
            self.counters["dropped"] += n
            self._save_counters(db)
        return n

    def _save_counters(self, db: sqlite3.Connection) -> None:
        items = [(f"errlog.{k}", str(v)) for k, v in self.counters.items()]
        items.append(("errlog.last_id", str(self.next_id - 1)))
        db.executemany("INSERT INTO fault_meta(key, value) VALUES(?, ?) "
                       "ON CONFLICT(key) DO UPDATE SET value=excluded.value", items)

    # ------------------------------------------------------------ reading
    def query(self, *, since: float | None = None, until: float | None = None,
              cls: str | list[str] | None = None, ids: list[int] | None = None,
              resource: str | None = None, after: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Entries, oldest first (the last ``limit`` that match), at or after ``since``, at or before ``until``,
        logged after the entry ``after`` (an id). ``cls`` may be a glob (ereport.svc.*) or a list of them (any
        matches)."""
        self.flush()
        if ids is not None and not ids:
            return []
        out, _ = self._select(self._where(since, until, cls, ids, resource, after), None, limit)
        out.reverse()
        return out

    def pages(self, *, since: float | None = None, until: float | None = None, cls: list[str] | None = None,
              after: int | None = None, limit: int = 1000, page: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """What ``query`` gives, read ``page`` rows at a time, the newest page first (each page oldest first),
        so that a reader can let the event loop turn between pages: 100,000 rows read at once held it for a
        second. Rows written meanwhile are not among them (the first page is read below the newest id now)."""
        self.flush()
        where = self._where(since, until, cls, None, None, after)
        before = self.next_id
        while limit > 0 and before is not None:
            out, before = self._select(where, before, min(page, limit))
            out.reverse()
            limit -= len(out)
            yield out

    @staticmethod
    def _where(since: float | None, until: float | None, cls: str | list[str] | None, ids: list[int] | None,
               resource: str | None, after: int | None) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        if until is not None:
            where.append("time <= ?")
            args.append(until)
        if ids is not None:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        if after is not None:
            where.append("id > ?")
            args.append(after)
        if resource is not None:
            where.append("resource = ?")
            args.append(resource)
        if cls is not None:
            patterns = [cls] if isinstance(cls, str) else cls
            if patterns:
                names = [p for p in patterns if not is_glob(p)]
                globs = [p for p in patterns if is_glob(p)]
                terms = [f"class IN ({','.join('?' * len(names))})"] if names else []
                if globs:
                    terms.append(_any_glob(len(globs)))
                where.append(f"({' OR '.join(terms)})")
                args.extend(names + globs)
        return where, args

    def _select(self, where: tuple[list[str], list[Any]], before: int | None,
                limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """Up to ``limit`` rows that ``where`` selects below the id ``before``, newest first, and the lowest id
        read (None when fewer than ``limit`` rows were left: there is nothing below)."""
        if self.conn is None:
            return [], None
        terms, args = where
        if before is not None:
            terms = [*terms, "id < ?"]
            args = [*args, before]
        sql = "SELECT id, time, received, class, node, resource, source, payload FROM fault_errlog"
        if terms:
            sql += " WHERE " + " AND ".join(terms)
        sql += " ORDER BY id DESC LIMIT ?"
        out = []
        read, lowest = 0, None
        for r in self.conn.execute(sql, [*args, limit]):
            read += 1
            lowest = r[0]
            if not _readable(r):
                continue  # a damaged row (a time or a class of another type): nothing can show it
            try:
                payload = json.loads(r[7])
            except ValueError:
                payload = {}
            if type(payload) is not dict:
                payload = {}
            out.append({"id": r[0], "time": r[1], "received": r[2], "class": r[3], "node": r[4],
                        "resource": r[5], "source": r[6], "payload": payload})
        return out, lowest if read == limit else None

    def count(self) -> int:
        if self.conn is None:
            return 0
        (n,) = self.conn.execute("SELECT count(*) FROM fault_errlog").fetchone()
        return int(n) + len(self._pending)

    @property
    def last_id(self) -> int:
        """The id of the newest entry (0: none yet)."""
        return self.next_id - 1

    def statistics(self) -> dict[str, Any]:
        return {**self.counters, "pending": len(self._pending), "max_entries": self.max_entries,
                "retention": self.retention, "flushes": self.flushes}
