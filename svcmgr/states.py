"""The vocabulary of instance states, as SMF spells it. A leaf module."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RUNNING", "STA", "State", "state_order"]


class State(StrEnum):
    UNINITIALIZED = "uninitialized"
    OFFLINE = "offline"
    ONLINE = "online"
    DEGRADED = "degraded"
    MAINTENANCE = "maintenance"
    DISABLED = "disabled"

    def __str__(self) -> str:
        return self.value


#: SMF's abbreviations for the STA and NSTA columns.
STA: dict[str | None, str] = {
    "uninitialized": "UN",
    "offline": "OFF",
    "online": "ON",
    "degraded": "DGD",
    "maintenance": "MNT",
    "disabled": "DIS",
    None: "-",
}

#: States in which an instance's processes run and dependents count it met.
RUNNING = frozenset({State.ONLINE, State.DEGRADED})

_ORDER = {
    "disabled": 0,
    "online": 1,
    "degraded": 2,
    "offline": 3,
    "maintenance": 4,
    "uninitialized": 5,
}


def state_order(state: str) -> int:
    """Sort rank of a state in ``svcs`` listings."""
    return _ORDER.get(state, 9)
