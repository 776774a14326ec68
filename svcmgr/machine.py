"""The instance lifecycle as one table: (phase, event) -> (next phase, action, effects). No I/O.

Phases refine SMF's states with the transitions in progress: ``starting`` shows as
``offline`` going ``online``; the ``stopping_*`` phases show as the current state
going to their target. The engine feeds events; the restarter carries out the
action (the job: start, stop, refresh, or evaluate again); the effects are what the
transition means to the rest (health probes, dependents, the announcement of a
stop), so that the engine never decides them by comparing phases. An event absent
from a phase's row is ignored in that phase.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from svcmgr.states import State

__all__ = ["ACTIVE", "RUNNING_PHASES", "STOPPING", "TABLE", "Action", "Effect", "Ev", "Phase", "Step", "display",
           "step", "stop_target", "transition"]


class Phase(StrEnum):
    UNINITIALIZED = "uninitialized"
    DISABLED = "disabled"
    OFFLINE = "offline"
    STARTING = "starting"
    ONLINE = "online"
    DEGRADED = "degraded"
    MAINTENANCE = "maintenance"
    STOPPING = "stopping"  # to offline (then starts again when its dependencies allow)
    STOPPING_DISABLE = "stopping_disable"
    STOPPING_MAINT = "stopping_maint"


class Ev(StrEnum):
    ENABLE = "enable"
    DISABLE = "disable"
    DEPS_MET = "deps_met"  # may start
    DEPS_LOST = "deps_lost"  # must stop (restart_on, exclusion, milestone)
    START_OK = "start_ok"
    START_FAILED = "start_failed"  # retry
    START_FATAL = "start_fatal"  # maintenance
    TEMP_DISABLE = "temp_disable"  # start method exited 101
    EXITED = "exited"  # all processes exited (not an error)
    FAILED = "failed"  # core dump, outside fatal signal, failed health probe
    TOO_QUICK = "too_quick"  # restart rate limit reached
    STOPPED = "stopped"  # the stop action completed
    RESTART = "restart"
    REFRESH = "refresh"
    CLEAR = "clear"
    MARK_MAINT = "mark_maint"
    MARK_DEGRADED = "mark_degraded"
    HEALTH_BAD = "health_bad"  # a probe asks to degrade
    HEALTH_OK = "health_ok"


class Action(StrEnum):
    NONE = "none"
    EVAL = "eval"  # reconsider: disabled? dependencies met?
    START = "start"
    STOP = "stop"
    REFRESH = "refresh"


class Effect(StrEnum):
    UP = "up"  # came up: health probes start, exclude_all dependents stop, dependents may start
    DOWN = "down"  # a running instance starts to stop: probes end, svc.stopping, restart_on dependents stop
    ABORT = "abort"  # a start is abandoned: probes end
    RELEASE = "release"  # dependents count it gone already (it is on its way to a stop target)


class Step(NamedTuple):
    """One cell of the table: the next phase (None: stay), the action, the effects."""

    next: Phase | None
    action: Action
    effects: frozenset[Effect] = frozenset()


#: Phases on the way to a stop target.
STOPPING = frozenset({Phase.STOPPING, Phase.STOPPING_DISABLE, Phase.STOPPING_MAINT})
#: Phases whose processes run or are starting.
ACTIVE = frozenset({Phase.STARTING, Phase.ONLINE, Phase.DEGRADED})
#: Phases in which the instance runs and dependents count it met.
RUNNING_PHASES = frozenset({Phase.ONLINE, Phase.DEGRADED})

P, E, A = Phase, Ev, Action
_DOWN = frozenset({Effect.DOWN, Effect.RELEASE})
_ABORT = frozenset({Effect.ABORT, Effect.RELEASE})
_RELEASE = frozenset({Effect.RELEASE})

_RUNNING_ROW = {
    E.EXITED: Step(P.STOPPING, A.STOP, _DOWN),
    E.FAILED: Step(P.STOPPING, A.STOP, _DOWN),
    E.TOO_QUICK: Step(P.STOPPING_MAINT, A.STOP, _DOWN),
    E.DISABLE: Step(P.STOPPING_DISABLE, A.STOP, _DOWN),
    E.RESTART: Step(P.STOPPING, A.STOP, _DOWN),
    E.REFRESH: Step(None, A.REFRESH),
    E.DEPS_LOST: Step(P.STOPPING, A.STOP, _DOWN),
    E.MARK_MAINT: Step(P.STOPPING_MAINT, A.STOP, _DOWN),
}

_STOPPING_ROW = {
    E.DISABLE: Step(P.STOPPING_DISABLE, A.NONE, _RELEASE),
    E.ENABLE: Step(P.STOPPING, A.NONE, _RELEASE),
    E.MARK_MAINT: Step(P.STOPPING_MAINT, A.NONE, _RELEASE),
    E.TOO_QUICK: Step(P.STOPPING_MAINT, A.NONE, _RELEASE),
}

#: phase -> event -> (next phase or None to stay, action, effects)
TABLE: dict[Phase, dict[Ev, Step]] = {
    P.UNINITIALIZED: {
        E.ENABLE: Step(P.OFFLINE, A.EVAL),
        E.DISABLE: Step(P.DISABLED, A.NONE),
        E.MARK_MAINT: Step(P.MAINTENANCE, A.NONE),
    },
    P.DISABLED: {
        E.ENABLE: Step(P.OFFLINE, A.EVAL),
        E.MARK_MAINT: Step(P.MAINTENANCE, A.NONE),
    },
    P.OFFLINE: {
        E.DEPS_MET: Step(P.STARTING, A.START),
        E.DISABLE: Step(P.DISABLED, A.NONE),
        E.ENABLE: Step(None, A.EVAL),
        E.MARK_MAINT: Step(P.MAINTENANCE, A.NONE),
        E.TOO_QUICK: Step(P.MAINTENANCE, A.NONE),
    },
    P.STARTING: {
        E.START_OK: Step(P.ONLINE, A.NONE, frozenset({Effect.UP})),
        E.START_FAILED: Step(P.STOPPING, A.STOP, _ABORT),
        E.START_FATAL: Step(P.STOPPING_MAINT, A.STOP, _ABORT),
        E.TEMP_DISABLE: Step(P.STOPPING_DISABLE, A.STOP, _ABORT),
        E.TOO_QUICK: Step(P.STOPPING_MAINT, A.STOP, _ABORT),
        E.DISABLE: Step(P.STOPPING_DISABLE, A.STOP, _ABORT),
        E.DEPS_LOST: Step(P.STOPPING, A.STOP, _ABORT),
        E.MARK_MAINT: Step(P.STOPPING_MAINT, A.STOP, _ABORT),
        E.RESTART: Step(P.STOPPING, A.STOP, _ABORT),
    },
    P.ONLINE: {
        **_RUNNING_ROW,
        E.MARK_DEGRADED: Step(P.DEGRADED, A.NONE),
        E.HEALTH_BAD: Step(P.DEGRADED, A.NONE),
    },
    P.DEGRADED: {
        **_RUNNING_ROW,
        E.CLEAR: Step(P.ONLINE, A.NONE),
        E.HEALTH_OK: Step(P.ONLINE, A.NONE),
    },
    P.STOPPING: {**_STOPPING_ROW, E.STOPPED: Step(P.OFFLINE, A.EVAL)},
    P.STOPPING_DISABLE: {**_STOPPING_ROW, E.STOPPED: Step(P.DISABLED, A.NONE)},
    P.STOPPING_MAINT: {
        **_STOPPING_ROW,
        E.ENABLE: Step(None, A.NONE),  # enabling does not clear maintenance
        E.CLEAR: Step(P.STOPPING, A.NONE, _RELEASE),  # cleared while stopping: come back once stopped
        E.STOPPED: Step(P.MAINTENANCE, A.NONE),
    },
    P.MAINTENANCE: {
        E.CLEAR: Step(P.OFFLINE, A.EVAL),
        E.DISABLE: Step(P.DISABLED, A.NONE),
    },
}


def step(phase: Phase, event: Ev) -> Step | None:
    """The table's cell, with the next phase filled in, or None when the event means nothing here."""
    hit = TABLE.get(phase, {}).get(event)
    if hit is None:
        return None
    return hit if hit.next is not None else hit._replace(next=phase)


def transition(phase: Phase, event: Ev) -> tuple[Phase, Action] | None:
    """The next phase and the action, or None when the event means nothing in this phase."""
    s = step(phase, event)
    return None if s is None else (s.next or phase, s.action)


_DISPLAY: dict[Phase, tuple[State, State | None]] = {
    P.UNINITIALIZED: (State.UNINITIALIZED, None),
    P.DISABLED: (State.DISABLED, None),
    P.OFFLINE: (State.OFFLINE, None),
    P.STARTING: (State.OFFLINE, State.ONLINE),
    P.ONLINE: (State.ONLINE, None),
    P.DEGRADED: (State.DEGRADED, None),
    P.MAINTENANCE: (State.MAINTENANCE, None),
}

_STOP_TARGET = {
    P.STOPPING: State.OFFLINE,
    P.STOPPING_DISABLE: State.DISABLED,
    P.STOPPING_MAINT: State.MAINTENANCE,
}


def stop_target(phase: Phase) -> State | None:
    """The state a stopping phase goes to, or None for any other phase."""
    return _STOP_TARGET.get(phase)


def display(phase: Phase, before: State) -> tuple[State, State | None]:
    """SMF's (state, next state) for a phase; ``before`` is the state a stop started from."""
    if phase in _STOP_TARGET:
        return before, _STOP_TARGET[phase]
    return _DISPLAY[phase]
