"""SERD and threshold engines follow fmd's semantics; time is injected, nothing sleeps."""

import pytest

from fault.serd import Bound, SerdEngine, ThresholdEngine


def test_fires_at_the_n_plus_1th_event_within_t():
    e = SerdEngine("disk", 3, 10.0)
    assert [e.record(t) for t in (0.0, 1.0, 2.0)] == [False, False, False]
    assert e.record(3.0) is True
    assert e.fired and e.count == 4


def test_does_not_fire_when_spread_beyond_t():
    e = SerdEngine("disk", 3, 10.0)
    fired = [e.record(t) for t in (0.0, 5.0, 10.5, 16.0, 21.0, 27.0)]
    assert not any(fired)
    # events older than newest - T were dropped: only those within 10 s of 27.0 remain
    assert e.times() == [21.0, 27.0]


def test_newest_minus_oldest_equal_to_t_still_fires():
    e = SerdEngine("x", 1, 5.0)
    e.record(0.0)
    assert e.record(5.0) is True


def test_stays_fired_and_takes_no_more_events_until_reset():
    e = SerdEngine("x", 1, 5.0)
    e.record(0.0)
    assert e.record(1.0)
    assert e.record(2.0) is False and e.record(3.0) is False
    assert e.count == 2 and e.fired
    e.reset()
    assert not e.fired and e.count == 0 and e.empty
    assert e.record(10.0) is False
    assert e.record(11.0) is True


def test_n_zero_fires_on_the_first_event():
    e = SerdEngine("x", 0, 1.0)
    assert e.record(100.0) is True


def test_gc_ages_events_out_without_firing():
    e = SerdEngine("x", 2, 10.0)
    e.record(0.0)
    e.record(1.0)
    e.gc(10.5)
    assert e.times() == [1.0]
    e.gc(100.0)
    assert e.empty


def test_engine_holds_at_most_n_plus_1_events():
    e = SerdEngine("x", 2, 1.0)
    for t in range(0, 100, 2):
        e.record(float(t))
    assert e.count <= 3


def test_state_survives_a_restart_on_another_clock():
    e = SerdEngine("x", 2, 60.0)
    e.record(1000.0)
    e.record(1010.0)
    state = e.to_state(mono_to_wall=5000.0)  # wall = mono + 5000
    assert state["times"] == [6000.0, 6010.0]
    f = SerdEngine("x", 2, 60.0)
    f.load_state(state, wall_to_mono=-5900.0)  # the new daemon's monotonic clock
    assert f.times() == [100.0, 110.0]
    assert f.record(111.0) is True


@pytest.mark.parametrize(("n", "t"), [(-1, 1.0), (1, 0.0), (1, -5.0)])
def test_bad_parameters_are_refused(n, t):
    with pytest.raises(ValueError, match="SERD engine"):
        SerdEngine("x", n, t)


def test_threshold_needs_consecutive_breaches():
    e = ThresholdEngine("lat", Bound("value", above=0.5, count=3))
    assert [e.record(v) for v in (0.6, 0.7, 0.1, 0.8, 0.9)] == [False] * 5
    assert e.record(1.0) is True
    assert e.record(2.0) is False  # fired: stays so until reset
    e.reset()
    assert e.empty


def test_threshold_below_and_above():
    b = Bound("free", above=90.0, below=10.0)
    assert b.breached(5.0) and b.breached(95.0) and not b.breached(50.0)
    assert "free > 90" in b.describe() and "free < 10" in b.describe()
