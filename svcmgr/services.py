"""What a component may know of the services and ask of them: a read-only view and a few commands.

The fault manager, the VRRP and load-balancer agents, metrics and the MQTT bridge see
instances through ``ServiceView`` (state, configuration, dependencies, marks, processes)
and act only through ``ServiceCommands`` (mark, clear, import a manifest, resolve a
name, a stop gate). The engine implements both
(``svcmgr.facade``); a unit test implements them with a few dictionaries
(``tests/fakes.py``). Nothing here imports the engine, the restarter, the reaper or
the repository.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from svcmgr.api import ApiError
from svcmgr.spec import InstanceConfig, ServiceSpec
from svcmgr.states import State

__all__ = ["EngineError", "InstanceInfo", "ServiceCommands", "ServiceView", "Services", "StopGate", "Unwritable"]

#: A stop gate, called with an instance's FMRI just before a planned stop runs its stop method:
#: None (nothing to wait for), or an awaitable and the most seconds the stop waits for it.
StopGate = Callable[[str], "tuple[Awaitable[Any], float] | None"]


class EngineError(ApiError):
    """A request the engine refuses; the message says why, ``code`` is the exit status it means. On the
    control socket it is the reply's error, as any ``ApiError``."""


class Unwritable(EngineError):
    """What was asked could not be written to the repository (a full disk, an I/O error), so it was not done."""


class InstanceInfo(Protocol):
    """One instance, read-only."""

    @property
    def fmri(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def config(self) -> InstanceConfig: ...
    @property
    def state(self) -> State: ...
    @property
    def next_state(self) -> State | None: ...
    @property
    def reason(self) -> str: ...
    @property
    def stime(self) -> float: ...
    @property
    def effective_enabled(self) -> bool: ...
    @property
    def marks(self) -> Mapping[str, Mapping[str, Any]]: ...
    @property
    def pids(self) -> list[int]: ...
    @property
    def cgroup(self) -> str | None:
        """The instance's cgroup (its contract's), if it runs in one."""
        ...
    @property
    def has_processes(self) -> bool:
        """Whether a contract tracks processes of the instance (running, starting or stopping)."""
        ...
    @property
    def starts(self) -> int: ...
    @property
    def restarts(self) -> int: ...


class ServiceView(Protocol):
    """The instances and services, read-only."""

    def instance(self, fmri: str) -> InstanceInfo | None: ...

    def instances(self) -> Iterator[InstanceInfo]:
        """Every instance, in no particular order."""
        ...

    def specs(self) -> Mapping[str, ServiceSpec]:
        """Service FMRI -> its running manifest."""
        ...

    def closure(self, fmri: str, groupings: Iterable[str]) -> frozenset[str]:
        """``fmri`` and every instance it depends on through these groupings, directly or not."""
        ...

    def owner(self, pid: int, memcg: str | None = None) -> str | None:
        """The instance whose processes include ``pid`` (or whose cgroup is ``memcg``), or None."""
        ...


class ServiceCommands(Protocol):
    """What a component may ask. Each returns at once; the engine carries it out."""

    def mark(self, fmris: list[str], what: str, *, temporary: bool = False, immediate: bool = False,
             reason: str | None = None, by: str = "operator", case: str | None = None) -> list[str]:
        """Mark instances ``maintenance`` or ``degraded``; the FMRIs marked (or annotated with ``case``)."""
        ...

    def clear(self, fmris: list[str]) -> list[str]:
        """Take instances out of maintenance or degraded; the FMRIs cleared."""
        ...

    def import_manifest(self, path: str, environment: Mapping[str, str]) -> str | None:
        """Import the TOML manifest of a daemon a component runs as a service (keepalived, HAProxy) with
        these environment values, unless the same is imported already; the error, or None."""
        ...

    def resolve(self, pattern: str) -> str:
        """Exactly one instance named by an FMRI or abbreviation; raises EngineError."""
        ...

    def add_stop_gate(self, gate: StopGate) -> None:
        """Have every planned stop wait for ``gate`` (bounded) before its stop method."""
        ...


class Services(ServiceView, ServiceCommands, Protocol):
    """Both: what the daemon hands a component."""
