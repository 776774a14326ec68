"""The lifecycle table, checked exhaustively without processes."""

import itertools

import pytest

from svcmgr.machine import TABLE, Action, Effect, Ev, Phase, display, step, stop_target, transition
from svcmgr.states import State

STOPPING = {Phase.STOPPING, Phase.STOPPING_DISABLE, Phase.STOPPING_MAINT}


@pytest.mark.parametrize("phase,event", list(itertools.product(Phase, Ev)))
def test_every_pair_is_defined_or_ignored(phase, event):
    t = transition(phase, event)
    if t is None:
        assert event not in TABLE.get(phase, {})
        return
    nxt, action = t
    assert isinstance(nxt, Phase) and isinstance(action, Action)
    if action == Action.START:
        assert (phase, event) == (Phase.OFFLINE, Ev.DEPS_MET)
    if action == Action.STOP:
        assert phase in (Phase.STARTING, Phase.ONLINE, Phase.DEGRADED)
        assert nxt in STOPPING


def test_every_phase_is_reachable():
    seen = {Phase.UNINITIALIZED}
    frontier = [Phase.UNINITIALIZED]
    while frontier:
        p = frontier.pop()
        for ev in Ev:
            t = transition(p, ev)
            if t and t[0] not in seen:
                seen.add(t[0])
                frontier.append(t[0])
    assert seen == set(Phase)


@pytest.mark.parametrize("phase", sorted(STOPPING))
def test_stopping_always_ends(phase):
    nxt, _ = transition(phase, Ev.STOPPED)
    assert nxt == {Phase.STOPPING: Phase.OFFLINE, Phase.STOPPING_DISABLE: Phase.DISABLED,
                   Phase.STOPPING_MAINT: Phase.MAINTENANCE}[phase]


def test_only_clear_or_disable_leave_maintenance():
    leaving = {ev for ev in Ev if (t := transition(Phase.MAINTENANCE, ev)) and t[0] != Phase.MAINTENANCE}
    assert leaving == {Ev.CLEAR, Ev.DISABLE}


def test_clear_while_stopping_for_maintenance_comes_back():
    assert transition(Phase.STOPPING_MAINT, Ev.CLEAR) == (Phase.STOPPING, Action.NONE)


def test_enable_does_not_clear_maintenance():

    assert transition(Phase.MAINTENANCE, Ev.ENABLE) is None
    assert transition(Phase.STOPPING_MAINT, Ev.ENABLE)[0] == Phase.STOPPING_MAINT


def test_restart_only_acts_on_running_instances():
    for p in Phase:
        t = transition(p, Ev.RESTART)
        if p in (Phase.ONLINE, Phase.DEGRADED, Phase.STARTING):
            assert t is not None and t[1] == Action.STOP
        else:
            assert t is None


def test_failures_while_running_restart_through_offline():
    assert transition(Phase.ONLINE, Ev.FAILED) == (Phase.STOPPING, Action.STOP)
    assert transition(Phase.STOPPING, Ev.STOPPED) == (Phase.OFFLINE, Action.EVAL)
    assert transition(Phase.ONLINE, Ev.TOO_QUICK) == (Phase.STOPPING_MAINT, Action.STOP)


def test_disable_while_starting_stops_the_start():
    assert transition(Phase.STARTING, Ev.DISABLE) == (Phase.STOPPING_DISABLE, Action.STOP)


def test_degraded_clears_back_to_online():
    assert transition(Phase.DEGRADED, Ev.CLEAR) == (Phase.ONLINE, Action.NONE)
    assert transition(Phase.ONLINE, Ev.CLEAR) is None


@pytest.mark.parametrize("phase", list(Phase))
def test_display_names_smf_states(phase):
    state, nstate = display(phase, State.ONLINE)
    assert isinstance(state, State)
    if phase == Phase.STARTING:
        assert (state, nstate) == (State.OFFLINE, State.ONLINE)
    elif phase in STOPPING:
        assert state == State.ONLINE and nstate is not None
    else:
        assert nstate is None and state.value == phase.value


@pytest.mark.parametrize("phase,event", list(itertools.product(Phase, Ev)))
def test_effects_are_in_the_table_and_follow_from_its_cells(phase, event):
    s = step(phase, event)
    if s is None:
        return
    running = phase in (Phase.ONLINE, Phase.DEGRADED)
    assert (Effect.DOWN in s.effects) == (running and s.next in STOPPING), "a running instance announces its stop"
    assert (Effect.ABORT in s.effects) == (phase == Phase.STARTING and s.next in STOPPING)
    assert (Effect.UP in s.effects) == ((phase, event) == (Phase.STARTING, Ev.START_OK))
    if s.next in STOPPING and s.next != phase:
        assert Effect.RELEASE in s.effects, "dependents let go of an instance on its way to a stop"
    if Effect.RELEASE in s.effects:
        assert s.next in STOPPING


@pytest.mark.parametrize("phase", list(Phase))
def test_stop_targets_are_the_display_of_stopping_phases(phase):
    target = stop_target(phase)
    assert target == (display(phase, State.ONLINE)[1] if phase in STOPPING else None)
