"""The instance lifecycle as one table: (phase, event) -> (next phase, action). No I/O.

Phases refine SMF's states with the transitions in progress: ``starting`` shows as
``offline`` going ``online``; the ``stopping_*`` phases show as the current state
going to their target. The engine feeds events; the restarter carries out actions.
An event absent from a phase's row is ignored in that phase.
"""

from __future__ import annotations

from enum import StrEnum

from svcmgr.states import State

__all__ = ["TABLE", "Action", "Ev", "Phase", "display", "transition"]


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


P, E, A = Phase, Ev, Action

_RUNNING_ROW = {
    E.EXITED: (P.STOPPING, A.STOP),
    E.FAILED: (P.STOPPING, A.STOP),
    E.TOO_QUICK: (P.STOPPING_MAINT, A.STOP),
    E.DISABLE: (P.STOPPING_DISABLE, A.STOP),
    E.RESTART: (P.STOPPING, A.STOP),
    E.REFRESH: (None, A.REFRESH),
    E.DEPS_LOST: (P.STOPPING, A.STOP),
    E.MARK_MAINT: (P.STOPPING_MAINT, A.STOP),
}

_STOPPING_ROW = {
    E.DISABLE: (P.STOPPING_DISABLE, A.NONE),
    E.ENABLE: (P.STOPPING, A.NONE),
    E.MARK_MAINT: (P.STOPPING_MAINT, A.NONE),
    E.TOO_QUICK: (P.STOPPING_MAINT, A.NONE),
}

#: phase -> event -> (next phase or None to stay, action)
TABLE: dict[Phase, dict[Ev, tuple[Phase | None, Action]]] = {
    P.UNINITIALIZED: {
        E.ENABLE: (P.OFFLINE, A.EVAL),
        E.DISABLE: (P.DISABLED, A.NONE),
        E.MARK_MAINT: (P.MAINTENANCE, A.NONE),
    },
    P.DISABLED: {
        E.ENABLE: (P.OFFLINE, A.EVAL),
        E.MARK_MAINT: (P.MAINTENANCE, A.NONE),
    },
    P.OFFLINE: {
        E.DEPS_MET: (P.STARTING, A.START),
        E.DISABLE: (P.DISABLED, A.NONE),
        E.ENABLE: (None, A.EVAL),
        E.MARK_MAINT: (P.MAINTENANCE, A.NONE),
        E.TOO_QUICK: (P.MAINTENANCE, A.NONE),
    },
    P.STARTING: {
        E.START_OK: (P.ONLINE, A.NONE),
        E.START_FAILED: (P.STOPPING, A.STOP),
        E.START_FATAL: (P.STOPPING_MAINT, A.STOP),
        E.TEMP_DISABLE: (P.STOPPING_DISABLE, A.STOP),
        E.TOO_QUICK: (P.STOPPING_MAINT, A.STOP),
        E.DISABLE: (P.STOPPING_DISABLE, A.STOP),
        E.DEPS_LOST: (P.STOPPING, A.STOP),
        E.MARK_MAINT: (P.STOPPING_MAINT, A.STOP),
        E.RESTART: (P.STOPPING, A.STOP),
    },
    P.ONLINE: {
        **_RUNNING_ROW,
        E.MARK_DEGRADED: (P.DEGRADED, A.NONE),
        E.HEALTH_BAD: (P.DEGRADED, A.NONE),
    },
    P.DEGRADED: {
        **_RUNNING_ROW,
        E.CLEAR: (P.ONLINE, A.NONE),
        E.HEALTH_OK: (P.ONLINE, A.NONE),
    },
    P.STOPPING: {**_STOPPING_ROW, E.STOPPED: (P.OFFLINE, A.EVAL)},
    P.STOPPING_DISABLE: {**_STOPPING_ROW, E.STOPPED: (P.DISABLED, A.NONE)},
    P.STOPPING_MAINT: {
        **_STOPPING_ROW,
        E.ENABLE: (None, A.NONE),  # enabling does not clear maintenance
        E.CLEAR: (P.STOPPING, A.NONE),  # cleared while stopping: come back once stopped

        E.STOPPED: (P.MAINTENANCE, A.NONE),
    },
    P.MAINTENANCE: {
        E.CLEAR: (P.OFFLINE, A.EVAL),
        E.DISABLE: (P.DISABLED, A.NONE),
    },
}


def transition(phase: Phase, event: Ev) -> tuple[Phase, Action] | None:
    """The next phase and the action, or None when the event means nothing in this phase."""
    row = TABLE.get(phase, {})
    hit = row.get(event)
    if hit is None:
        return None
    nxt, action = hit
    return (nxt if nxt is not None else phase), action


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


def display(phase: Phase, before: State) -> tuple[State, State | None]:
    """SMF's (state, next state) for a phase; ``before`` is the state a stop started from."""
    if phase in _STOP_TARGET:
        return before, _STOP_TARGET[phase]
    return _DISPLAY[phase]
