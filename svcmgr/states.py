"""The vocabulary of instance states, as SMF spells it. A leaf module."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ORDER", "RUNNING", "STA", "State"]


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
    "absent": "ABS",
    None: "-",
}

#: States in which an instance's processes run and dependents count it met.
RUNNING = frozenset({State.ONLINE, State.DEGRADED})

#: Sort rank of a state in ``svcs`` listings.
ORDER = {"disabled": 0, "online": 1, "degraded": 2, "offline": 3, "maintenance": 4, "uninitialized": 5, "absent": 6}
