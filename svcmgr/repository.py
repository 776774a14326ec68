"""The repository: SQLite (WAL) holding configuration, snapshots and what operators set.

* ``services``: each imported service's manifest in normal form twice: the
  editing copy (``svccfg setprop`` changes it) and the running snapshot (what the
  daemon runs; ``svcadm refresh`` copies editing into running).
* ``instances``: persistent enable state (NULL: as the manifest says), the last
  state and the state it was going to, with its reason, persistent marks, and the
  contract the instance owns while it has processes (starting, running or stopping),
  so that a daemon restarted after ``kill -9`` adopts its services and finishes the
  stops it had begun.
* ``meta``: counters such as the next contract id.
* ``manifests`` and ``manifest_services``: what the boot's import (``svcmgrd --manifests``) remembers of
  each manifest file it imported, as SMF keeps each manifest's hash in the ``smf/manifest`` property
  group: its size, mtime, inode and a hash of its bytes, the format of svcmgr that read it, the
  warnings it gave, and each service it declares in normal form. A later boot takes a file whose bytes
  hash the same from the repository instead of reading it again (``svcmgr.bootimport``,
  ``svcmgr.manifestrecord``). Only a cache: a record missing or stale makes that file read anew.

Temporary settings (``-t``) are never written here: they end with the daemon. What an
operator sets (an import, an edit, a refresh, enable states and marks) is written
``durable`` (on disk before the reply, docs/durability.md); the daemon's own record of
states is written in batches (``save_instance`` then ``flush``) and, if a write fails (a
full disk), kept to be written again. The file itself is opened and checked by
``svcmgr.repofile``. Other packages keep their own tables in the same file through
``connection``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from svcmgr.db import transaction
from svcmgr.repofile import connect, keep_copy
from svcmgr.services import Unwritable

__all__ = ["InstanceRecord", "ManifestRecord", "Repository", "ServiceRecord", "normal_text"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS services (
    fmri TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    format TEXT NOT NULL,
    editing TEXT NOT NULL,
    running TEXT NOT NULL,
    imported REAL NOT NULL,
    refreshed REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    fmri TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    enabled INTEGER,
    state TEXT,
    stime REAL,
    reason TEXT,
    marks TEXT NOT NULL DEFAULT '{}',
    contract TEXT,
    next_state TEXT
);
CREATE TABLE IF NOT EXISTS manifests (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    hash TEXT NOT NULL,
    format TEXT NOT NULL,
    warnings TEXT NOT NULL,
    recorded REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS manifest_services (
    path TEXT NOT NULL,
    position INTEGER NOT NULL,
    fmri TEXT NOT NULL,
    normal TEXT NOT NULL,
    instances TEXT NOT NULL,
    PRIMARY KEY (path, position)
);
"""
#: Columns added since the first schema: (table, column, declaration), added to older repositories.
_ADDED = (("instances", "next_state", "TEXT"),)


@dataclass
class ServiceRecord:
    fmri: str
    source: str
    format: str
    editing: dict[str, Any]
    running: dict[str, Any]
    imported: float
    refreshed: float


@dataclass
class ManifestRecord:
    """What the boot's import remembers of one manifest file (``Repository.manifests``)."""

    path: str  # absolute, as the boot named it
    size: int
    mtime_ns: int
    inode: int
    hash: str  # of the file's bytes (``svcmgr.manifestrecord.digest``): what decides
    format: str  # the svcmgr that read it (``svcmgr.manifestrecord.FORMAT``)
    warnings: list[str]  # what reading it said, in order
    services: list[str]  # the FMRIs it declares, in its order
    #: each one's instance names in the file's order (the normal form stored is sorted)
    instances: list[list[str]]
    #: read back only: every one of those services is in the repository with its editing copy and its
    #: running snapshot both the normal form recorded (nothing changed them since the import)
    current: bool = False


def normal_text(data: dict[str, Any]) -> str:
    """A manifest's normal form as the repository stores it (the same data: the same text)."""
    return json.dumps(data, sort_keys=True)


@dataclass
class InstanceRecord:
    fmri: str
    service: str
    enabled: bool | None = None
    state: str | None = None
    stime: float | None = None
    reason: str | None = None
    marks: dict[str, Any] | None = None
    contract: dict[str, Any] | None = None
    next_state: str | None = None


class Repository:
    def __init__(self, path: str) -> None:
        """Open (or make) the repository; raises ``svcmgr.repofile.Damaged`` when it cannot be used."""
        self.path = path
        self.connection = connect(path, SCHEMA)
        # SQLite's page cache (2 MiB by default) grew with the number of instances; what is read
        # comes from the OS's page cache, and writes are batched
        self.connection.execute("PRAGMA cache_size=-256")
        for table, column, decl in _ADDED:
            have = {r[1] for r in self.connection.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        self._pending: dict[str, InstanceRecord] = {}
        self.writes = 0

    def keep_copy(self, *, check: bool = True) -> str | None:
        """Keep a copy of the repository as it is now, the way out if it is damaged later
        (``svcmgr.repofile``; ``check`` False: it was just checked, at open); None, or why it could not
        be kept."""
        try:
            keep_copy(self.connection, self.path, check=check)
        except (OSError, sqlite3.Error) as e:
            return str(e)
        return None

    def close(self) -> None:
        with contextlib.suppress(Unwritable):  # a full disk: what is pending is lost with the daemon
            self.flush()
        self.connection.close()

    def transaction(self, *, durable: bool = False) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self.connection, durable=durable)

    @contextlib.contextmanager
    def _operator(self) -> Iterator[sqlite3.Connection]:
        """A durable transaction for what an operator asked; Unwritable (nothing written) if it fails."""
        try:
            with self.transaction(durable=True) as c:
                yield c
        except sqlite3.Error as e:
            raise Unwritable(f"cannot write the repository {self.path}: {e}; nothing was changed") from e

    @contextlib.contextmanager
    def _batch(self) -> Iterator[sqlite3.Connection]:
        """A transaction of the daemon's own, not durable; Unwritable (nothing written) if it fails."""
        try:
            with self.transaction() as c:
                yield c
        except sqlite3.Error as e:
            raise Unwritable(f"cannot write the repository {self.path}: {e}") from e

    @property
    def pending(self) -> int:
        """How many instance records wait to be written."""
        return len(self._pending)

    # ------------------------------------------------------------ meta
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.connection.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.connection.execute("INSERT INTO meta(key, value) VALUES(?, ?) "
                                "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    def next_ctid(self, block: int = 1000) -> tuple[int, int]:
        """Reserve a block of contract ids: (first, last+1)."""
        with self.transaction() as c:
            row = c.execute("SELECT value FROM meta WHERE key='ctid'").fetchone()
            first = int(row[0]) if row else 1
            c.execute("INSERT INTO meta(key, value) VALUES('ctid', ?) "
                      "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (str(first + block),))
        return first, first + block

    # ------------------------------------------------------------ services
    def services(self) -> list[ServiceRecord]:
        rows = self.connection.execute(
            "SELECT fmri, source, format, editing, running, imported, refreshed FROM services ORDER BY fmri")
        return [ServiceRecord(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), r[5], r[6]) for r in rows]

    def service(self, fmri: str) -> ServiceRecord | None:
        r = self.connection.execute(
            "SELECT fmri, source, format, editing, running, imported, refreshed FROM services WHERE fmri=?",
            (fmri,)).fetchone()
        if r is None:
            return None
        return ServiceRecord(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), r[5], r[6])

    def import_services(self, items: list[tuple[str, str, str, dict[str, Any]]]) -> None:
        """Store (fmri, source, format, manifest) items in one transaction: all or none.

        An import sets both the editing copy and the running snapshot, as
        ``svccfg import`` refreshes what it imports.
        """
        self.import_normal([(fmri, source, fmt, normal_text(data)) for fmri, source, fmt, data in items])

    def import_normal(self, items: list[tuple[str, str, str, str]]) -> None:
        """``import_services`` of manifests already in their stored text (``normal_text``): an import that
        also takes their snapshots writes each text once."""
        now = time.time()
        with self._operator() as c:
            c.executemany(
                "INSERT INTO services(fmri, source, format, editing, running, imported, refreshed) "
                "VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(fmri) DO UPDATE SET source=excluded.source, "
                "format=excluded.format, editing=excluded.editing, running=excluded.running, "
                "imported=excluded.imported, refreshed=excluded.refreshed",
                [(fmri, source, fmt, text, text, now, now) for fmri, source, fmt, text in items])

    def set_editing(self, fmri: str, data: dict[str, Any]) -> None:
        with self._operator() as c:
            c.execute("UPDATE services SET editing=? WHERE fmri=?", (normal_text(data), fmri))

    def refresh(self, fmri: str) -> bool:
        """Copy the editing configuration into the running snapshot; True if it changed."""
        with self._operator() as c:
            r = c.execute("SELECT editing, running FROM services WHERE fmri=?", (fmri,)).fetchone()
            if r is None:
                return False
            c.execute("UPDATE services SET running=editing, refreshed=? WHERE fmri=?", (time.time(), fmri))
            return r[0] != r[1]

    def delete_service(self, fmri: str) -> None:
        with self._operator() as c:
            c.execute("DELETE FROM services WHERE fmri=?", (fmri,))
            c.execute("DELETE FROM instances WHERE service=?", (fmri,))

    # ------------------------------------------------------------ manifest files
    def manifests(self) -> dict[str, ManifestRecord]:
        """Every manifest file's record, by path, each with ``current`` set: whether each service it declares
        is still stored as that file gave it (not edited, refreshed, imported from elsewhere or deleted)."""
        out = {r[0]: ManifestRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), [], [], True)
               for r in self.connection.execute(
                   "SELECT path, size, mtime_ns, inode, hash, format, warnings FROM manifests")}
        for path, fmri, names, same in self.connection.execute(
                "SELECT m.path, m.fmri, m.instances, "
                "s.fmri IS NOT NULL AND s.editing = m.normal AND s.running = m.normal "
                "FROM manifest_services m LEFT JOIN services s ON s.fmri = m.fmri ORDER BY m.path, m.position"):
            rec = out.get(path)
            if rec is not None:
                rec.services.append(fmri)
                rec.instances.append(json.loads(names))
                rec.current = rec.current and bool(same)
        return out

    def record_manifests(self, items: list[tuple[ManifestRecord, list[dict[str, Any]]]]) -> None:
        """Keep these records, each with the normal form of every service its file declares (in order), in
        place of any earlier record of the same path. Written with the daemon's batches, not durable: a
        record lost with a crash only makes that file read anew, and one commit after the import it
        describes never outlives it."""
        if not items:
            return
        now = time.time()
        with self._batch() as c:
            c.executemany("DELETE FROM manifest_services WHERE path=?", [(r.path,) for r, _ in items])
            c.executemany(
                "INSERT INTO manifests(path, size, mtime_ns, inode, hash, format, warnings, recorded) "
                "VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET size=excluded.size, "
                "mtime_ns=excluded.mtime_ns, inode=excluded.inode, hash=excluded.hash, format=excluded.format, "
                "warnings=excluded.warnings, recorded=excluded.recorded",
                [(r.path, r.size, r.mtime_ns, r.inode, r.hash, r.format, json.dumps(r.warnings), now)
                 for r, _ in items])
            c.executemany("INSERT INTO manifest_services(path, position, fmri, normal, instances) "
                          "VALUES(?, ?, ?, ?, ?)",
                          [(r.path, i, f, normal_text(d), json.dumps(names)) for r, forms in items
                           for i, (f, d, names) in enumerate(zip(r.services, forms, r.instances, strict=True))])

    def forget_manifests(self, paths: list[str]) -> None:
        """Drop these files' records."""
        if not paths:
            return
        with self._batch() as c:
            c.executemany("DELETE FROM manifests WHERE path=?", [(p,) for p in paths])
            c.executemany("DELETE FROM manifest_services WHERE path=?", [(p,) for p in paths])

    # ------------------------------------------------------------ instances
    def instances(self) -> dict[str, InstanceRecord]:
        out = {}
        for r in self.connection.execute("SELECT fmri, service, enabled, state, stime, reason, marks, contract, "
                                         "next_state FROM instances"):
            out[r[0]] = InstanceRecord(r[0], r[1], None if r[2] is None else bool(r[2]), r[3], r[4], r[5],
                                       json.loads(r[6] or "{}"), json.loads(r[7]) if r[7] else None, r[8])
        out.update(self._pending)
        return out

    def save_instance(self, rec: InstanceRecord, *, now: bool = False) -> None:
        """Queue a record to be written with the next ``flush`` (or write it at once)."""
        self._pending[rec.fmri] = rec
        if now:
            self.flush()

    def flush(self, *, durable: bool = False) -> None:
        """Write the queued records in one transaction (``durable``: on disk before this returns, and every
        commit before it). When it cannot be written (a full disk) they stay queued, behind any record
        queued since, and Unwritable is raised."""
        if not self._pending:
            if durable:
                with self.transaction(durable=True):
                    pass  # what earlier commits wrote is on disk too
            return
        pending, self._pending = self._pending, {}
        try:
            rows = [(r.fmri, r.service, None if r.enabled is None else int(r.enabled), r.state, r.stime, r.reason,
                     json.dumps(r.marks) if r.marks else "{}",  # most have none: what json.dumps({}) gives
                     json.dumps(r.contract) if r.contract else None, r.next_state)
                    for r in pending.values()]
            with self.transaction(durable=durable) as c:
                c.executemany(
                    "INSERT INTO instances(fmri, service, enabled, state, stime, reason, marks, contract, "
                    "next_state) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(fmri) DO UPDATE SET "
                    "service=excluded.service, enabled=excluded.enabled, state=excluded.state, "
                    "stime=excluded.stime, reason=excluded.reason, marks=excluded.marks, "
                    "contract=excluded.contract, next_state=excluded.next_state", rows)
        except BaseException as e:
            self._pending = {**pending, **self._pending}
            if isinstance(e, sqlite3.Error):
                raise Unwritable(f"cannot write the repository {self.path}: {e}") from e
            raise
        self.writes += 1

    def delete_instances(self, fmris: list[str]) -> None:
        for f in fmris:
            self._pending.pop(f, None)
        with self._operator() as c:
            c.executemany("DELETE FROM instances WHERE fmri=?", [(f,) for f in fmris])
