"""Fault cases: their lifecycle as one table, and their persistence in the repository.

A case gathers the evidence of one problem. It is *open* while a rule collects
evidence (a SERD engine that has not fired yet), *solved* once diagnosed (it then
names its suspects, each with a certainty, and the impacted resources), and is
closed by an operator as *repaired*, *acquitted* or *replaced* (or by its source,
as when Alertmanager reports an alert resolved), then *resolved* once the response
agents have undone what they did. An open case whose evidence ages out is
discarded. Each suspect carries its own status (faulty, repaired, acquitted,
replaced), as fmd's suspect flags do.

Cases live in the table ``fault_cases`` of the daemon's SQLite repository: a
solved case is written at once, so it survives ``kill -9``; the others with the next
``flush`` (every 250 ms in the daemon). A case's row holds the case without the
ereports that convicted it: those are rows of ``fault_case_ereports``, each the
ereports the case gained since its last write (a JSON list), appended, so a flush
writes what changed (the case's own fields and its new ereports), not every case
whole again. A repository written before
that layout (each case's ereports inside its row) is moved to it when the store opens.
"""

from __future__ import annotations

import contextlib
import json
import operator
import sqlite3
import time
import uuid as uuid_mod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fault.caserows import _EREPORTS_OF, SCHEMA, _encode, check_stored, migrate, stored_brief, unreadable
from fault.events import Ereport, detail_of
from svcmgr.db import transaction

__all__ = [
    "ACTIVE",
    "CLOSING",
    "SEVERITY_ORDER",
    "Case",
    "CaseEv",
    "CaseState",
    "CaseStore",
    "Change",
    "Suspect",
    "transaction",
    "transition",
]

SEVERITY_ORDER = {"minor": 1, "major": 2, "critical": 3}
#: a brief's ereport id (a case's check for one it keeps already: no list, no comprehension's frame)
_ID = operator.itemgetter("id")
RESPONSE_ORDER = {"none": 0, "degrade": 1, "maintenance": 2}
MAX_EREPORTS = 100
MAX_HISTORY = 200


class CaseState(StrEnum):
    OPEN = "open"
    SOLVED = "solved"
    REPAIRED = "repaired"
    ACQUITTED = "acquitted"
    REPLACED = "replaced"
    RESOLVED = "resolved"


class CaseEv(StrEnum):
    EVIDENCE = "evidence"
    SOLVE = "solve"
    REPAIR = "repair"
    ACQUIT = "acquit"
    REPLACE = "replace"
    RESOLVE = "resolve"


S, E = CaseState, CaseEv
#: state -> event -> next state; an event missing from a row is refused in that state.
TABLE: dict[CaseState, dict[CaseEv, CaseState]] = {
    S.OPEN: {E.EVIDENCE: S.OPEN, E.SOLVE: S.SOLVED, E.ACQUIT: S.ACQUITTED},
    S.SOLVED: {E.EVIDENCE: S.SOLVED, E.REPAIR: S.REPAIRED, E.ACQUIT: S.ACQUITTED, E.REPLACE: S.REPLACED},
    S.REPAIRED: {E.RESOLVE: S.RESOLVED},
    S.ACQUITTED: {E.RESOLVE: S.RESOLVED},
    S.REPLACED: {E.RESOLVE: S.RESOLVED},
    S.RESOLVED: {},
}
#: Cases that still hold a problem (fmadm faulty lists the solved ones).
ACTIVE = (S.OPEN, S.SOLVED)
#: Cases an operator closed whose responses are being undone.
CLOSING = (S.REPAIRED, S.ACQUITTED, S.REPLACED)
#: The suspect status an operator's verdict gives.
VERDICT = {E.REPAIR: "repaired", E.ACQUIT: "acquitted", E.REPLACE: "replaced"}


def transition(state: CaseState, ev: CaseEv) -> CaseState | None:
    return TABLE[state].get(ev)


@dataclass
class Suspect:
    fault: str
    resource: str
    certainty: int
    status: str = "faulty"  # faulty | repaired | acquitted | replaced


class _Detail:
    """``Case.detail``, the most telling text of the case's last ereport (``fault.events.detail_of``), made when
    something reads it (``fmadm faulty``, the case's row when written): a case may gain thousands of ereports
    between two writes, and only the last one's text is kept. Until then the case holds that ereport; every
    case that gains one is written within the next flush (250 ms), which reads its detail and lets the
    ereport go. Set to a string, or to an ereport (by ``add_ereport``)."""

    def __get__(self, case: Case | None, owner: type | None = None) -> str:
        if case is None:
            return ""  # the dataclass field's default
        d = case.__dict__["_detail"]
        if type(d) is not str:
            d = case.__dict__["_detail"] = detail_of(d)
        return d

    def __set__(self, case: Case, value: str | Ereport) -> None:
        case.__dict__["_detail"] = value


@dataclass
class Case:
    uuid: str
    state: CaseState
    rule: str
    cls: str
    msgid: str
    severity: str
    node: str
    response: str = "none"
    suspects: list[Suspect] = field(default_factory=list)
    impacted: list[str] = field(default_factory=list)
    ereports: list[dict[str, Any]] = field(default_factory=list)
    ereport_count: int = 0
    diagnoses: list[dict[str, Any]] = field(default_factory=list)
    retired: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    detail: _Detail = _Detail()
    window: str = "-"
    fires_at: int = 1
    opened: float = field(default_factory=time.time)
    solved: float | None = None
    updated: float | None = None
    closed: float | None = None

    @classmethod
    def new(cls, rule: str, fault: str, msgid: str, severity: str, node: str, response: str) -> Case:
        return cls(str(uuid_mod.uuid4()), CaseState.OPEN, rule, fault, msgid, severity, node, response)

    # ------------------------------------------------------------ lifecycle
    def apply(self, ev: CaseEv, text: str = "", now: float | None = None) -> bool:
        """Move along the lifecycle table; False (and no change) when ``ev`` means nothing here."""
        nxt = transition(self.state, ev)
        if nxt is None:
            return False
        now = time.time() if now is None else now
        if nxt != self.state:
            self.state = nxt
            if nxt == CaseState.SOLVED:
                self.solved = now
            elif nxt in CLOSING or nxt == CaseState.RESOLVED:
                self.closed = self.closed or now
            if text:
                self.note(str(nxt), text, now)
        self.updated = now
        return True

    def note(self, event: str, text: str, now: float | None = None) -> None:
        self.history.append({"time": time.time() if now is None else now, "event": event, "text": text})
        if len(self.history) > MAX_HISTORY:
            del self.history[1:len(self.history) - MAX_HISTORY + 1]

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    # ------------------------------------------------------------ evidence
    def add_ereport(self, brief: dict[str, Any], detail: str | Ereport = "") -> None:
        """One more ereport (its brief), and the case's detail from it (its text, or the ereport to make it
        from when read) unless it has none."""
        self.ereport_count += 1
        kept = self.ereports
        if len(kept) < MAX_EREPORTS:
            bid = brief["id"]
            if not bid or bid not in map(_ID, kept[-8:]):
                kept.append(brief)
        if detail:
            self.__dict__["_detail"] = detail  # what ``self.detail = detail`` does, without a call per ereport

    def add_impacted(self, fmri: str) -> bool:
        """List ``fmri`` as impacted, unless it is already or is a suspect; True when it was added."""
        impacted = self.impacted
        # A set beside the list: a cascade may impact every service, and each of their failures asks. It is (the
        # list, the set, the list's length), made again if the list is another or its length changed since.
        known = self.__dict__.get("_impacted_set")
        if known is None or known[0] is not impacted or known[2] != len(impacted):
            known = self.__dict__["_impacted_set"] = (impacted, set(impacted), len(impacted))
        if fmri in known[1]:
            return False
        for s in self.suspects:
            if s.resource == fmri:
                return False
        impacted.append(fmri)
        known[1].add(fmri)
        self.__dict__["_impacted_set"] = (impacted, known[1], len(impacted))
        return True

    def escalate(self, severity: str, response: str) -> bool:
        changed = False
        if SEVERITY_ORDER.get(severity, 0) > SEVERITY_ORDER.get(self.severity, 0):
            self.severity = severity
            changed = True
        if RESPONSE_ORDER.get(response, 0) > RESPONSE_ORDER.get(self.response, 0):
            self.response = response
            changed = True
        return changed

    def suspect(self, resource: str) -> Suspect | None:
        return next((s for s in self.suspects if s.resource == resource), None)

    @property
    def faulty(self) -> list[Suspect]:
        return [s for s in self.suspects if s.status == "faulty"]

    @property
    def affected(self) -> list[str]:
        out = [s.resource for s in self.suspects]
        out.extend(f for f in self.impacted if f not in out)
        return out

    @property
    def classes(self) -> list[str]:
        out = [self.cls]
        out.extend(d["fault"] for d in self.diagnoses if d["fault"] not in out)
        return out

    # ------------------------------------------------------------ views
    def to_dict(self) -> dict[str, Any]:
        """The case as stored (shallow: for JSON at once, not to keep)."""
        d = dict(zip(_FIELDS, _values(self), strict=True))
        d["state"] = str(self.state)
        d["suspects"] = [vars(s) for s in self.suspects]
        return d

    def event_data(self) -> dict[str, Any]:
        """The payload of the case's list.* events on the bus."""
        return {"uuid": self.uuid, "class": self.cls, "classes": self.classes, "severity": self.severity,
                "msgid": self.msgid, "state": str(self.state), "rule": self.rule,
                "suspects": [dict(vars(s)) for s in self.suspects], "impacted": list(self.impacted),
                "affected": self.affected, "retired": dict(self.retired), "ereports": self.ereport_count,
                "time": self.solved or self.opened, "node": self.node}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Case:
        """The case a row holds; ValueError (``check_stored``) or TypeError, KeyError for a damaged one."""
        check_stored(d, CaseState)
        d = dict(d)
        if "ereports" in d:  # a row of the layout before 2, holding them
            d["ereports"] = [x for x in d["ereports"] if stored_brief(x)]
        d["state"] = CaseState(d["state"])
        d["suspects"] = [Suspect(**s) for s in d.get("suspects", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


#: a case's fields, and a getter of their values in that order (``to_dict``: one call, not a ``getattr`` each)
_FIELDS = tuple(Case.__dataclass_fields__)
_values = operator.attrgetter(*_FIELDS)


class CaseStore:
    """Cases in memory (every case not yet resolved) and in ``fault_cases`` (all, closed ones bounded)."""

    def __init__(self, conn: sqlite3.Connection | None, *, keep_closed: int = 1000) -> None:
        self.conn = conn
        self.keep_closed = keep_closed
        self.cases: dict[str, Case] = {}
        self._dirty: dict[str, Case] = {}
        #: uuid -> how many of the case's ereports are rows already (only new ones are appended)
        self._stored: dict[str, int] = {}
        #: the rows found damaged (``caserows.unreadable``), each said once
        self._damaged: set[str] = set()
        self.writes = 0
        if conn is not None:
            conn.executescript(SCHEMA)
            migrate(conn)

    def _read(self, rows: list[tuple[str]], cases: str, args: tuple[Any, ...]) -> list[tuple[Case, int]]:
        """Cases from their rows' ``data`` with their ereports (the rows of ``_EREPORTS_OF`` the same
        selection, ``cases`` with ``args``), each with how many of its ereports are in rows (0 for a row of
        the layout before 2, which holds them); a case that cannot be read is skipped."""
        assert self.conn is not None
        kept: dict[str, list[dict[str, Any]]] = {}
        for uuid, blob in self.conn.execute(_EREPORTS_OF.format(cases=cases), args):
            with contextlib.suppress(ValueError):
                chunk = json.loads(blob)
                if isinstance(chunk, list):
                    kept.setdefault(uuid, []).extend(x for x in chunk if stored_brief(x))
        out = []
        for (blob,) in rows:
            try:
                d = json.loads(blob)
                c = Case.from_dict(d)
            except (ValueError, TypeError, KeyError) as e:
                unreadable(blob, e, self._damaged)
                continue
            if "ereports" in d:
                out.append((c, 0))
            else:
                c.ereports = kept.get(c.uuid, [])
                out.append((c, len(c.ereports)))
        return out

    def load(self) -> list[Case]:
        """Every case that is not resolved, from the repository."""
        if self.conn is None:
            return []
        rows = self.conn.execute("SELECT data FROM fault_cases WHERE state != 'resolved' ORDER BY opened").fetchall()
        out = []
        for c, stored in self._read(rows, "SELECT uuid FROM fault_cases WHERE state != 'resolved'", ()):
            self.cases[c.uuid] = c
            self._stored[c.uuid] = stored
            out.append(c)
        return out

    def add(self, case: Case) -> None:
        self.cases[case.uuid] = case

    def get(self, uuid: str) -> Case | None:
        return self.cases.get(uuid)

    def touch(self, case: Case) -> None:
        """Write this case with the next ``flush``."""
        self._dirty[case.uuid] = case

    def save(self, case: Case) -> None:
        """Write this case now (others waiting keep waiting for the next ``flush``). If it cannot be written
        (a full disk), it waits with them: the next ``flush`` tries again, and says why it cannot."""
        self._dirty.pop(case.uuid, None)
        try:
            self._write({case.uuid: case})
        except sqlite3.Error:
            self._dirty[case.uuid] = case

    def discard(self, case: Case) -> None:
        self.cases.pop(case.uuid, None)
        self._dirty.pop(case.uuid, None)
        self._stored.pop(case.uuid, None)
        if self.conn is not None:
            with transaction(self.conn) as db:
                db.execute("DELETE FROM fault_case_ereports WHERE uuid=?", (case.uuid,))
                db.execute("DELETE FROM fault_cases WHERE uuid=?", (case.uuid,))

    @property
    def unsaved(self) -> int:
        return len(self._dirty)

    def flush(self) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        try:
            self._write(dirty)
        except sqlite3.Error:
            self._dirty = {**dirty, **self._dirty}  # not written (a full disk): the next flush tries again
            raise

    def _write(self, cases: dict[str, Case]) -> None:
        """The cases' own fields (their row, rewritten) and the ereports they gained (rows appended)."""
        rows, appended, stored = [], [], {}
        for u, c in cases.items():
            d = c.to_dict()
            kept = d.pop("ereports")
            start = self._stored.get(u, 0)
            if start < len(kept):
                appended.append((u, start, _encode(kept[start:])))
            stored[u] = len(kept)
            rows.append((c.uuid, str(c.state), c.cls, c.msgid, c.severity, c.opened, c.updated, c.closed, _encode(d)))
            if c.state == CaseState.RESOLVED:
                self.cases.pop(u, None)
        if self.conn is None or not rows:
            return
        with transaction(self.conn) as db:
            db.executemany(
                "INSERT INTO fault_cases(uuid, state, class, msgid, severity, opened, updated, closed, data) "
                "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(uuid) DO UPDATE SET state=excluded.state, "
                "class=excluded.class, msgid=excluded.msgid, severity=excluded.severity, "
                "updated=excluded.updated, closed=excluded.closed, data=excluded.data", rows)
            db.executemany("INSERT OR REPLACE INTO fault_case_ereports(uuid, seq, data) VALUES(?, ?, ?)", appended)
            if any(r[1] == "resolved" for r in rows):
                old = "SELECT uuid FROM fault_cases WHERE state='resolved' ORDER BY closed DESC LIMIT -1 OFFSET ?"
                db.execute(f"DELETE FROM fault_case_ereports WHERE uuid IN ({old})", (self.keep_closed,))
                db.execute(f"DELETE FROM fault_cases WHERE uuid IN ({old})", (self.keep_closed,))
        for u, n in stored.items():
            if u in self.cases:
                self._stored[u] = n
            else:  # resolved: no longer in memory, never written again
                self._stored.pop(u, None)
        self.writes += 1

    # ------------------------------------------------------------ queries
    def query(self, *, include_closed: bool = False, uuid: str | None = None,
              limit: int = 10_000) -> list[Case]:
        """Cases, oldest first: every one in memory, plus resolved ones from the repository."""
        found: dict[str, Case] = {u: c for u, c in self.cases.items()}
        if include_closed and self.conn is not None:
            closed = "SELECT uuid FROM fault_cases WHERE state='resolved' ORDER BY opened DESC LIMIT ?"
            rows = self.conn.execute(f"SELECT data FROM fault_cases WHERE uuid IN ({closed})", (limit,)).fetchall()
            for c, _ in self._read(rows, closed, (limit,)):
                found.setdefault(c.uuid, c)
        out = sorted(found.values(), key=lambda c: c.solved or c.opened)
        if uuid is not None:
            out = [c for c in out if c.uuid == uuid or c.uuid.startswith(uuid)]
        return out[-limit:]

    def find(self, uuid: str) -> Case | None:
        """A case by UUID (or a unique prefix of at least 8 characters), resolved ones included."""
        if uuid in self.cases:
            return self.cases[uuid]
        hits = [c for c in self.query(include_closed=True) if c.uuid == uuid
                or (len(uuid) >= 8 and c.uuid.startswith(uuid))]
        return hits[0] if len(hits) == 1 else None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cases.values():
            out[str(c.state)] = out.get(str(c.state), 0) + 1
        if self.conn is not None:
            (n,) = self.conn.execute("SELECT count(*) FROM fault_cases WHERE state='resolved'").fetchone()
            out["resolved"] = n
        return out


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
