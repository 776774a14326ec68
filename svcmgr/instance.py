"""The live record of one instance, shared by the engine (policy) and the restarter (execution)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from svcmgr.contract import Contract
from svcmgr.logs import InstanceLog
from svcmgr.machine import Phase
from svcmgr.policy import RestartHistory
from svcmgr.spec import InstanceConfig
from svcmgr.states import State

__all__ = ["Instance"]


@dataclass(eq=False, slots=True)
class Instance:
    fmri: str
    config: InstanceConfig
    history: RestartHistory
    phase: Phase = Phase.UNINITIALIZED
    state: State = State.UNINITIALIZED
    next_state: State | None = None
    stime: float = field(default_factory=time.time)
    reason: str = ""
    #: Persistent enable set by an operator (None: as the manifest says).
    enabled_set: bool | None = None
    #: Temporary enable override (``-t``); lost when the daemon stops.
    enabled_temp: bool | None = None
    #: Why an operator disabled it (``svcadm disable -c``, SMF's general_ovr/comment); lost with the daemon
    #: and cleared by an enable.
    comment: str = ""
    #: Marks: "maintenance" / "degraded" -> {reason, by, temporary, ...}
    marks: dict[str, dict[str, Any]] = field(default_factory=dict)
    contract: Contract | None = None
    log: InstanceLog | None = None
    job: asyncio.Task[None] | None = None
    health: asyncio.Task[None] | None = None
    start_failures: int = 0
    last_exit: str = ""
    last_start: float = 0.0  # monotonic: the start method's last spawn (the child throttle counts from it)
    stop_cause: str = "other"  # error | other | refresh
    stop_planned: bool = False  # asked for (disable, restart, a dependency): stop gates run first
    stopping: bool = False
    monitoring: bool = False
    ready: asyncio.Event | None = None
    #: set when one of its processes is reaped, while a stop waits for its contract to empty (made by
    #: that wait: an Event is 700 bytes, and most instances are not stopping)
    reaped: asyncio.Event | None = None
    status_text: str = ""
    starts: int = 0
    restarts: int = 0
    #: CLOCK_MONOTONIC ns when the restarter spawned the start method and when readiness passed
    #: (read by the timing recorder, svcmgr.timings).
    spawned_ns: int = 0
    ready_ns: int = 0
    #: its service's FMRI (a refresh gives it a new config, never another service): read at every
    #: record of its state and every evaluation of a dependent during a boot
    service: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.service = str(self.config.fmri.service_fmri)

    def note_reaped(self) -> None:
        """One of its processes was reaped: wake a stop waiting for the contract to empty."""
        if self.reaped is not None:
            self.reaped.set()

    @property
    def enabled(self) -> bool:
        """The persistent enable state."""
        return self.config.enabled if self.enabled_set is None else self.enabled_set

    @property
    def effective_enabled(self) -> bool:
        return self.enabled if self.enabled_temp is None else self.enabled_temp

    def set_enabled(self, on: bool, *, temporary: bool) -> None:
        """An operator's enable or disable: until the daemon stops (``temporary``), or stored, which ends a
        temporary one."""
        if temporary:
            self.enabled_temp = on
        else:
            self.enabled_set = on
            self.enabled_temp = None

    @property
    def pids(self) -> list[int]:
        return sorted(self.contract.members) if self.contract is not None else []

    @property
    def cgroup(self) -> str | None:
        return self.contract.cgroup if self.contract is not None else None

    @property
    def has_processes(self) -> bool:
        return self.contract is not None
