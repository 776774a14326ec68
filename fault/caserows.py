"""A fault case's rows in the repository: the tables, the move from the layout before 2, and what a row read back
must hold.

``fault_cases`` holds each case (its JSON, without the ereports that convicted it), ``fault_case_ereports``
those ereports (JSON lists, appended), ``fault_meta`` the layout. SQLite keeps any value in any column and a
repository may be damaged: a case whose row does not hold what a case holds is left out when read, and said once
in the daemon's log with its uuid and the member (``unreadable``), rather than taking the fault manager down.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import Iterable
from typing import Any

from fault.events import json_encoder
from svcmgr.db import transaction

__all__ = ["LAYOUT", "LAYOUT_KEY", "SCHEMA", "check_stored", "migrate", "stored_brief", "unreadable"]

log = logging.getLogger("fault.cases")

SCHEMA = """
CREATE TABLE IF NOT EXISTS fault_cases (
    uuid TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    class TEXT NOT NULL,
    msgid TEXT NOT NULL,
    severity TEXT NOT NULL,
    opened REAL NOT NULL,
    updated REAL,
    closed REAL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fault_cases_state ON fault_cases(state);
CREATE TABLE IF NOT EXISTS fault_case_ereports (
    uuid TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (uuid, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fault_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: ``fault_meta`` key: 2 once the cases' ereports are rows of ``fault_case_ereports`` (``seq``: the index of the
#: row's first ereport in the case's list; ``data``: a JSON list of ereports)
LAYOUT_KEY, LAYOUT = "cases.layout", "2"
_encode = json_encoder()
#: the rows of the ereports of the cases a query selects, in order (``{cases}``: a SELECT of uuids)
_EREPORTS_OF = "SELECT uuid, data FROM fault_case_ereports WHERE uuid IN ({cases}) ORDER BY uuid, seq"


def migrate(conn: sqlite3.Connection) -> None:
    """Move the ereports kept inside each case's row (the layout before 2) to rows of their own. A
    repository that cannot be written now (a full disk) is read as it is, and moved the next time."""
    done = conn.execute("SELECT 1 FROM fault_meta WHERE key=? AND value=?", (LAYOUT_KEY, LAYOUT)).fetchone()
    if done:
        return
    with contextlib.suppress(sqlite3.Error), transaction(conn) as db:
        for uuid, blob in db.execute("SELECT uuid, data FROM fault_cases").fetchall():
            try:
                d = json.loads(blob)
                kept = d.pop("ereports", None) or []
            except (ValueError, TypeError, AttributeError):
                continue  # unreadable: skipped by every reader, as before
            if kept:
                db.execute("INSERT OR REPLACE INTO fault_case_ereports(uuid, seq, data) VALUES(?, 0, ?)",
                           (uuid, _encode(kept)))
            db.execute("UPDATE fault_cases SET data=? WHERE uuid=?", (_encode(d), uuid))
        db.execute("INSERT OR REPLACE INTO fault_meta(key, value) VALUES(?, ?)", (LAYOUT_KEY, LAYOUT))


_NUMBER = (int, float)
_TIME = (int, float, type(None))
#: the type of each member of a stored case (``Case.to_dict``), and of the members of each entry of its lists: a
#: row holding another is damaged, and is skipped as one that is not JSON is
_STORED: dict[str, Any] = {
    "uuid": str, "state": str, "rule": str, "cls": str, "msgid": str, "severity": str, "node": str, "response": str,
    "suspects": list, "impacted": list, "ereports": list, "ereport_count": int, "diagnoses": list, "retired": dict,
    "history": list, "detail": str, "window": str, "fires_at": int, "opened": _NUMBER, "solved": _TIME,
    "updated": _TIME, "closed": _TIME}
_ENTRIES: dict[str, Any] = {
    "suspects": {"fault": str, "resource": str, "certainty": int, "status": str},
    "impacted": str, "diagnoses": {"fault": str}, "history": {"time": _NUMBER, "event": str, "text": str}}
#: an ereport's brief (``Ereport.brief``) as a case keeps it: one that is not is left out when read
_BRIEF = {"id": int, "class": str, "time": _NUMBER}


def _entry_ok(entry: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(entry, dict) and all(isinstance(entry.get(k), t) for k, t in want.items())
    return isinstance(entry, want)


def stored_brief(entry: Any) -> bool:
    """Whether ``entry``, read from the repository, is an ereport's brief (``Ereport.brief``)."""
    return _entry_ok(entry, _BRIEF)


def check_stored(d: Any, states: Iterable[str]) -> None:
    """ValueError naming the first member of a stored case (its row's JSON) that is not what a case holds
    (``states``: those a case may be in)."""
    if not isinstance(d, dict):
        raise ValueError(f"expected a table, got {type(d).__name__}")
    for k, v in d.items():
        want = _STORED.get(k)
        if want is not None and not isinstance(v, want):
            raise ValueError(f"{k}: {type(v).__name__} is not what a case holds there")
        entries = _ENTRIES.get(k)
        if entries is not None:
            bad = next((i for i, x in enumerate(v) if not _entry_ok(x, entries)), None)
            if bad is not None:
                raise ValueError(f"{k}[{bad}]: not what a case holds there")
    if not all(isinstance(x, str) for x in (d.get("retired") or {}).values()):
        raise ValueError("retired: expected what was done to each resource")
    if d.get("state") not in set(states):
        raise ValueError(f"state: {d.get('state')!r} is not a case's state")


def unreadable(blob: str, err: Exception, said: set[str]) -> None:
    """Say once (``said``: the rows said so far) in the daemon's log which case's row is damaged, and how."""
    if blob in said:
        return
    said.add(blob)
    with contextlib.suppress(ValueError, AttributeError):
        blob = json.loads(blob).get("uuid") or blob
    log.warning("fault: a case in the repository cannot be read and is left out: %.80s: %s", blob, err)
