"""Start and stop timings of every instance, on monotonic nanosecond clocks, kept in the repository.

The engine tells the recorder each phase an instance enters (``Recorder.entered``, one
call); the restarter stamps the instance when it spawns the start method and when the
readiness check passes. The recorder turns these into one record per start attempt:

    queued    enabled and wanted: waiting for its dependencies (phase offline)
    deps_met  the dependencies are met, the start begins (phase starting)
    spawned   the start method's process exists (none for ``:true`` starts: milestones)
    ready     the readiness check passed
    online    the instance is online
    stop      a stop began (after a start, or instead of one: a failed start)
    end       the stop finished, or the attempt ended before a start (disabled, maintenance)

Points are ``CLOCK_MONOTONIC`` nanoseconds, comparable across daemon restarts within one
boot of the machine. Each daemon run is a *boot* of svcmgr with an anchor (monotonic and
wall clock read together), so that records can be placed on a wall-clock axis too. The
last ``KEEP`` records of each instance survive a daemon restart in two tables of the
repository's file (``timing_boots``, ``timing_starts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any, Protocol

from svcmgr.db import transaction
from svcmgr.machine import Phase

__all__ = ["KEEP", "POINTS", "Boot", "Recorder", "StartRecord", "Timed", "TimingStore", "machine_boot"]

log = logging.getLogger("svcmgr.timings")

#: Records kept per instance (in memory and in the repository).
KEEP = 20
#: Boots (daemon runs) kept when no record refers to them any more.
KEEP_BOOTS = 10
#: Longest reason text kept with a stop.
MAX_REASON = 300
#: Seconds finished records wait before they are written (a boot writes them in one transaction).
FLUSH_DELAY = 0.5
POINTS = ("queued", "deps_met", "spawned", "ready", "online", "stop", "end")

SCHEMA = """
CREATE TABLE IF NOT EXISTS timing_boots (
    id INTEGER PRIMARY KEY,
    machine TEXT NOT NULL,
    mono_ns INTEGER NOT NULL,
    wall_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS timing_starts (
    id INTEGER PRIMARY KEY,
    fmri TEXT NOT NULL,
    boot INTEGER NOT NULL,
    queued INTEGER, deps_met INTEGER, spawned INTEGER, ready INTEGER, online INTEGER,
    stop INTEGER, "end" INTEGER,
    cause TEXT, ended_in TEXT, reason TEXT
);
CREATE INDEX IF NOT EXISTS timing_starts_fmri ON timing_starts(fmri, id);
"""


class Timed(Protocol):
    """What the recorder reads from an instance."""

    fmri: str
    reason: str
    stop_cause: str
    spawned_ns: int
    ready_ns: int


@dataclass(frozen=True)
class Boot:
    """One daemon run: its clocks read together at its start."""

    id: int
    machine: str
    mono_ns: int
    wall_ns: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "started": self.wall_ns / 1e9}


@dataclass(slots=True)
class StartRecord:
    """One start attempt of one instance and the stop that ended it."""

    fmri: str
    boot: int
    queued: int | None = None
    deps_met: int | None = None
    spawned: int | None = None
    ready: int | None = None
    online: int | None = None
    stop: int | None = None
    end: int | None = None
    cause: str | None = None  # why it stopped: error | other | refresh
    ended_in: str | None = None  # the phase it stopped into: offline | disabled | maintenance
    reason: str | None = None
    id: int | None = None

    @property
    def status(self) -> str:
        """waiting | starting | online | stopping | stopped | failed | cancelled | lost."""
        if self.ended_in == "lost":
            return "lost"
        if self.online is not None:
            return "stopped" if self.end is not None else "stopping" if self.stop is not None else "online"
        if self.deps_met is not None:
            return "failed" if self.stop is not None or self.end is not None else "starting"
        return "cancelled" if self.end is not None else "waiting"

    def durations(self, now: int) -> dict[str, float | None]:
        """Seconds: waiting for dependencies, starting, in the start method (spawn to ready),
        running (online to stop), stopping; a phase still going counts up to ``now``. (Read by the metrics at
        every state change an instance makes: a plain function of the points, no closure to make.)"""
        stop, end = self.stop, self.end
        return {
            "wait": _span(self.queued, now, self.deps_met, stop, end),
            "start": _span(self.deps_met, now, self.online, stop, end),
            "method": _span(self.spawned, now, self.ready, stop, end),
            "running": _span(self.online, now, stop, end),
            "stopping": _span(stop, now, end),
            "total": _span(self.queued if self.queued is not None else self.deps_met, now, self.online, stop, end),
        }

    def to_dict(self, boot: Boot | None, now: int) -> dict[str, Any]:
        """JSON: points as nanoseconds since the start of the record's boot (``at``), the boot's wall
        clock start (``boot_started``), and the durations in seconds."""
        base = boot.mono_ns if boot is not None else 0
        at = {p: (v - base if v is not None else None) for p in POINTS for v in (getattr(self, p),)}
        return {"fmri": self.fmri, "id": self.id, "boot": self.boot, "status": self.status,
                "cause": self.cause, "ended_in": self.ended_in, "reason": self.reason,
                "boot_started": boot.wall_ns / 1e9 if boot is not None else None,
                "at": at, **self.durations(now)}


def _span(a: int | None, now: int, *ends: int | None) -> float | None:
    """Seconds from ``a`` to the first of ``ends`` that is set (``now`` if none is); None without ``a``."""
    if a is None:
        return None
    for b in ends:
        if b is not None:
            return max(0, b - a) / 1e9
    return max(0, now - a) / 1e9


_COLUMNS = [f.name for f in fields(StartRecord) if f.name != "id"]

#: The point each phase marks in the current attempt; phases absent here mark nothing.
_MARKS: dict[Phase, str] = {
    Phase.OFFLINE: "queued",
    Phase.STARTING: "deps_met",
    Phase.ONLINE: "online",
    Phase.STOPPING: "stop",
    Phase.STOPPING_DISABLE: "stop",
    Phase.STOPPING_MAINT: "stop",
    Phase.DISABLED: "end",
    Phase.MAINTENANCE: "end",
}
#: The state a stopping phase leads to.
_STOP_TARGET = {Phase.STOPPING: "offline", Phase.STOPPING_DISABLE: "disabled", Phase.STOPPING_MAINT: "maintenance"}


def machine_boot() -> str:
    """This boot of the machine (the kernel's boot id)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


class TimingStore:
    """The records in the repository's SQLite file: written in batches, pruned to ``keep`` per instance."""

    def __init__(self, conn: sqlite3.Connection, *, keep: int = KEEP) -> None:
        self.conn = conn
        self.keep = keep
        conn.executescript(SCHEMA)
        self.writes = 0

    def new_boot(self, mono_ns: int, wall_ns: int, machine: str) -> Boot:
        with transaction(self.conn) as c:
            cur = c.execute("INSERT INTO timing_boots(machine, mono_ns, wall_ns) VALUES(?, ?, ?)",
                            (machine, mono_ns, wall_ns))
            boot = Boot(int(cur.lastrowid or 0), machine, mono_ns, wall_ns)
            c.execute("DELETE FROM timing_boots WHERE id < ? AND id NOT IN (SELECT boot FROM timing_starts)",
                      (boot.id - KEEP_BOOTS + 1,))
        return boot

    def boots(self) -> dict[int, Boot]:
        return {r[0]: Boot(*r) for r in self.conn.execute(
            "SELECT id, machine, mono_ns, wall_ns FROM timing_boots ORDER BY id")}

    def load(self) -> list[StartRecord]:
        """Every kept record, oldest first."""
        cols = ", ".join(f'"{c}"' for c in _COLUMNS)
        rows = self.conn.execute(f"SELECT id, {cols} FROM timing_starts ORDER BY id")
        return [StartRecord(**dict(zip(_COLUMNS, r[1:], strict=True)), id=r[0]) for r in rows]

    def save(self, records: Iterable[StartRecord], prune: Iterable[str] = ()) -> None:
        """Insert new records and update those written before; for the instances in ``prune``, keep
        only their last ``keep`` records."""
        cols = ", ".join(f'"{c}"' for c in _COLUMNS)
        marks = ", ".join("?" * len(_COLUMNS))
        sets = ", ".join(f'"{c}"=?' for c in _COLUMNS)
        with transaction(self.conn) as c:
            for r in records:
                values = [getattr(r, name) for name in _COLUMNS]
                if r.id is None:
                    r.id = c.execute(f"INSERT INTO timing_starts({cols}) VALUES({marks})", values).lastrowid
                else:
                    c.execute(f"UPDATE timing_starts SET {sets} WHERE id=?", [*values, r.id])
            for f in prune:
                c.execute("DELETE FROM timing_starts WHERE fmri=? AND id NOT IN "
                          "(SELECT id FROM timing_starts WHERE fmri=? ORDER BY id DESC LIMIT ?)",
                          (f, f, self.keep))
        self.writes += 1

    def forget(self, fmris: Iterable[str]) -> None:
        with transaction(self.conn) as c:
            c.executemany("DELETE FROM timing_starts WHERE fmri=?", [(f,) for f in fmris])


class Recorder:
    """The current attempt of each instance and its last ``keep`` records; persisted through a store."""

    def __init__(self, store: TimingStore | None = None, *, keep: int = KEEP,
                 clock: Callable[[], int] = time.monotonic_ns,
                 wall: Callable[[], int] = time.time_ns) -> None:
        self.store = store
        self.keep = keep
        self.clock = clock
        self.current: dict[str, StartRecord] = {}
        #: fmri -> its last ``keep`` records, oldest first (a list: an empty deque is 600 bytes per instance)
        self.recent: dict[str, list[StartRecord]] = {}
        self.boots: dict[int, Boot] = {}
        self._dirty: dict[int, StartRecord] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        mono, now = clock(), wall()
        machine = machine_boot()
        if store is None:
            self.boot = Boot(0, machine, mono, now)
        else:
            self.boots = store.boots()
            self.boot = store.new_boot(mono, now, machine)
            for r in store.load():
                self._remember(r)
                same_machine = self.boots.get(r.boot, self.boot).machine == machine
                if r.end is None and same_machine:
                    self.current[r.fmri] = r  # left running by an earlier daemon (adopted): its stop counts
                elif r.end is None and r.ended_in != "lost":
                    r.ended_in = "lost"  # the machine rebooted: its end was not seen
                    self._changed(r)
        self.boots[self.boot.id] = self.boot

    # ------------------------------------------------------------ the hook
    def entered(self, inst: Timed, phase: Phase) -> None:
        """``inst`` entered ``phase`` now: mark the point it stands for in the current attempt."""
        mark = _MARKS.get(phase)
        if mark is None:
            return
        now = self.clock()
        f = inst.fmri
        rec = self.current.get(f)
        if mark == "queued":
            if rec is not None and rec.deps_met is None and rec.stop is None and rec.end is None:
                return  # queued already
            if rec is not None:
                self._finish(rec, now, phase)
            self._open(f, queued=now)
        elif mark == "deps_met":
            if rec is None or rec.deps_met is not None:
                rec = self._open(f)
            rec.deps_met = now
        elif mark == "online":
            if rec is not None and rec.deps_met is not None and rec.online is None:
                self._stamp(rec, inst)
                rec.online = now
                self._changed(rec)
        elif mark == "stop":
            if rec is not None and rec.stop is None and rec.end is None:
                self._stamp(rec, inst)
                rec.stop, rec.cause, rec.ended_in = now, inst.stop_cause, _STOP_TARGET[phase]
                rec.reason = (inst.reason or "")[:MAX_REASON] or None
                self._changed(rec)
        elif rec is not None:  # end
            if rec.stop is None:
                rec.reason = (inst.reason or "")[:MAX_REASON] or None
            self._finish(rec, now, phase)

    @staticmethod
    def _stamp(rec: StartRecord, inst: Timed) -> None:
        """The restarter's stamps, when they belong to this attempt."""
        assert rec.deps_met is not None or rec.queued is not None
        since = rec.deps_met if rec.deps_met is not None else rec.queued or 0
        if inst.spawned_ns and inst.spawned_ns >= since:
            rec.spawned = inst.spawned_ns
        if inst.ready_ns and inst.ready_ns >= since:
            rec.ready = inst.ready_ns

    def _open(self, fmri: str, **points: int) -> StartRecord:
        rec = StartRecord(fmri, self.boot.id, **points)
        self.current[fmri] = rec
        self._remember(rec)
        return rec

    def _finish(self, rec: StartRecord, now: int, phase: Phase) -> None:
        rec.end = now
        rec.ended_in = phase.value if phase in (Phase.DISABLED, Phase.MAINTENANCE) else "offline"
        if self.current.get(rec.fmri) is rec:
            del self.current[rec.fmri]
        self._changed(rec)

    def _remember(self, rec: StartRecord) -> None:
        q = self.recent.setdefault(rec.fmri, [])
        q.append(rec)
        if len(q) > self.keep:
            del q[:-self.keep]

    def _changed(self, rec: StartRecord) -> None:
        if self.store is None:
            return
        self._dirty[id(rec)] = rec
        if self._flush_handle is None:
            with contextlib.suppress(RuntimeError):  # no loop (a test): written on flush()
                self._flush_handle = asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        """Write the records changed since the last flush."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self.store is None or not self._dirty:
            return
        dirty, self._dirty = list(self._dirty.values()), {}
        full = {r.fmri for r in dirty if len(self.recent.get(r.fmri, ())) >= self.keep}
        try:
            self.store.save(dirty, prune=full)
        except sqlite3.Error as e:
            # Not written (a full disk): kept for the next flush, which a later change schedules.
            self._dirty = {**{id(r): r for r in dirty}, **self._dirty}
            log.error("cannot write start timings to the repository: %s; %d records wait", e, len(self._dirty))

    def forget(self, keep_only: Iterable[str]) -> None:
        """Drop the records of instances that no longer exist."""
        keep = set(keep_only)
        gone = [f for f in self.recent if f not in keep]
        for f in gone:
            self.recent.pop(f, None)
            self.current.pop(f, None)
        if gone and self.store is not None:
            self.store.forget(gone)

    # ------------------------------------------------------------ reading
    def records(self, fmris: Iterable[str] | None = None) -> list[StartRecord]:
        """Kept records (of the named instances), oldest first within each instance."""
        names = self.recent if fmris is None else [f for f in fmris if f in self.recent]
        return [r for f in names for r in self.recent[f]]

    def last(self, fmri: str, *, online: bool = False) -> StartRecord | None:
        """The latest record of an instance (the latest that reached online, with ``online``)."""
        for r in reversed(self.recent.get(fmri, ())):
            if not online or r.online is not None:
                return r
        return None

    def wall(self, rec: StartRecord, point: str) -> float | None:
        """A point of a record on the wall clock (seconds since the epoch), or None."""
        v = getattr(rec, point)
        b = self.boots.get(rec.boot)
        return None if v is None or b is None else (b.wall_ns + v - b.mono_ns) / 1e9

    def to_dict(self, rec: StartRecord, now: int | None = None) -> dict[str, Any]:
        return rec.to_dict(self.boots.get(rec.boot), self.clock() if now is None else now)
