"""The start timing recorder: phases become ordered points, attempts become records, records persist."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from svcmgr.machine import Phase
from svcmgr.timings import POINTS, Recorder, StartRecord, TimingStore

P = Phase


@dataclass
class FakeInstance:
    fmri: str = "svc:/t/a:default"
    reason: str = ""
    stop_cause: str = "other"
    spawned_ns: int = 0
    ready_ns: int = 0


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000_000

    def __call__(self) -> int:
        return self.t

    def advance(self, seconds: float) -> int:
        self.t += int(seconds * 1e9)
        return self.t


def run(rec: Recorder, clock: Clock, inst: FakeInstance, steps: list[tuple[float, Phase]]) -> None:
    for dt, phase in steps:
        clock.advance(dt)
        rec.entered(inst, phase)


def test_a_start_records_every_point_in_order_and_its_durations():
    clock, inst = Clock(), FakeInstance()
    rec = Recorder(clock=clock)
    run(rec, clock, inst, [(0, P.OFFLINE), (0.5, P.STARTING)])
    inst.spawned_ns = clock.advance(0.01)
    inst.ready_ns = clock.advance(1.0)
    run(rec, clock, inst, [(0.001, P.ONLINE)])
    (r,) = rec.records()
    points = [r.queued, r.deps_met, r.spawned, r.ready, r.online]
    assert None not in points and points == sorted(points)
    d = r.durations(clock.t)
    assert abs(d["wait"] - 0.5) < 1e-9 and abs(d["start"] - 1.011) < 1e-9 and abs(d["method"] - 1.0) < 1e-9
    assert r.status == "online" and rec.last(inst.fmri, online=True) is r


def test_a_restart_closes_the_record_and_opens_the_next():
    clock, inst = Clock(), FakeInstance()
    rec = Recorder(clock=clock)
    run(rec, clock, inst, [(0, P.OFFLINE), (0.1, P.STARTING), (0.1, P.ONLINE)])
    inst.reason = "Restarting on request of an administrator."
    run(rec, clock, inst, [(5, P.STOPPING), (0.2, P.OFFLINE), (0.0, P.STARTING), (0.3, P.ONLINE)])
    first, second = rec.records()
    assert first.status == "stopped" and first.ended_in == "offline" and first.cause == "other"
    assert abs(first.durations(clock.t)["stopping"] - 0.2) < 1e-9 and first.reason.startswith("Restarting")
    assert second.status == "online" and second.queued == first.end


def test_failed_cancelled_and_repeated_phases():
    clock, inst = Clock(), FakeInstance()
    rec = Recorder(clock=clock)
    run(rec, clock, inst, [(0, P.OFFLINE), (0.1, P.OFFLINE), (0.1, P.STARTING), (0.2, P.STOPPING_MAINT),
                           (0.1, P.STOPPING_DISABLE), (0.1, P.MAINTENANCE)])
    run(rec, clock, inst, [(1, P.OFFLINE), (1, P.DISABLED)])
    failed, cancelled = rec.records()
    assert failed.status == "failed" and failed.ended_in == "maintenance"
    assert failed.queued is not None and failed.deps_met - failed.queued == 200_000_000  # queued once only
    assert cancelled.status == "cancelled" and cancelled.deps_met is None and cancelled.ended_in == "disabled"


def test_stale_restarter_stamps_are_not_taken():
    clock, inst = Clock(), FakeInstance(spawned_ns=5, ready_ns=6)  # from an earlier attempt
    rec = Recorder(clock=clock)
    run(rec, clock, inst, [(0, P.OFFLINE), (0.1, P.STARTING), (0.1, P.ONLINE)])
    (r,) = rec.records()
    assert r.spawned is None and r.ready is None and r.durations(clock.t)["method"] is None


def test_records_survive_a_restart_keep_the_last_n_and_an_adopted_start_keeps_counting(tmp_path):
    conn = sqlite3.connect(tmp_path / "repo.db", isolation_level=None)
    clock, inst = Clock(), FakeInstance()
    rec = Recorder(TimingStore(conn, keep=3), keep=3, clock=clock)
    for _ in range(5):
        run(rec, clock, inst, [(0, P.OFFLINE), (0.1, P.STARTING), (0.1, P.ONLINE), (1, P.STOPPING)])
    run(rec, clock, inst, [(0.1, P.OFFLINE), (0.1, P.STARTING), (0.1, P.ONLINE)])
    rec.flush()
    assert conn.execute("SELECT COUNT(*) FROM timing_starts").fetchone()[0] == 3

    again = Recorder(TimingStore(conn, keep=3), keep=3, clock=clock)
    assert again.boot.id == rec.boot.id + 1 and set(again.boots) == {rec.boot.id, again.boot.id}
    kept = again.records()
    assert [r.status for r in kept] == ["stopped", "stopped", "online"]
    assert [r.queued for r in kept] == [r.queued for r in rec.records()][-3:]
    run(again, clock, inst, [(2, P.STOPPING_DISABLE), (0.1, P.DISABLED)])
    assert kept[-1].status == "stopped" and kept[-1].ended_in == "disabled"
    assert abs(again.wall(kept[-1], "online") - again.wall(kept[-1], "end") + 2.1) < 1e-6
    again.forget([])
    assert again.records() == [] and conn.execute("SELECT COUNT(*) FROM timing_starts").fetchone()[0] == 0


def _durations_as_written_first(r: StartRecord, now: int) -> dict[str, float | None]:
    """``StartRecord.durations`` as it was first written (a closure and a generator per span)."""

    def span(a: int | None, *ends: int | None) -> float | None:
        if a is None:
            return None
        b = next((e for e in ends if e is not None), now)
        return max(0, b - a) / 1e9

    return {
        "wait": span(r.queued, r.deps_met, r.stop, r.end),
        "start": span(r.deps_met, r.online, r.stop, r.end),
        "method": span(r.spawned, r.ready, r.stop, r.end) if r.spawned is not None else None,
        "running": span(r.online, r.stop, r.end),
        "stopping": span(r.stop, r.end),
        "total": span(r.queued if r.queued is not None else r.deps_met, r.online, r.stop, r.end),
    }


@given(st.fixed_dictionaries({p: st.none() | st.integers(0, 10**12) for p in POINTS}), st.integers(0, 10**12))
def test_durations_are_those_of_every_set_of_points_in_any_order(points, now):
    r = StartRecord("svc:/t/a:default", 1, **points)
    assert r.durations(now) == _durations_as_written_first(r, now)
