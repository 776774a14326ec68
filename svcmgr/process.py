"""The process layer as the engine sees it, and its vocabulary. A leaf.

The engine decides; the process layer carries out: it starts an instance (running
its start method and waiting for readiness), stops it, refreshes it, probes its
health, adopts what an earlier daemon left running, and reports what happens to the
processes through two callbacks (``bind``): the contract emptied or a member died
(``on_contract``), a health probe's verdict changed (``on_health``). ``ProcessLayer``
is that interface: ``svcmgr.restarter.Restarter`` implements it with real processes,
``tests/fakes.FakeProcesses`` at once and in memory, so that the engine's decisions
are tested in milliseconds. ``ExitStatus`` says how a process ended, ``StartResult``
how a start went. Components that run a short command (``keepalived --config-test``)
get a ``CommandRunner``, not the reaper.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from svcmgr.policy import Outcome

if TYPE_CHECKING:
    from svcmgr.instance import Instance
    from svcmgr.logs import Opener
    from svcmgr.spec import InstanceConfig

__all__ = ["Child", "CommandRunner", "ContractReport", "ExitStatus", "HealthReport", "MembersReport", "ProcessLayer",
           "StartResult"]


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a process ended, from its raw wait status."""

    pid: int
    status: int

    @property
    def signalled(self) -> bool:
        return os.WIFSIGNALED(self.status)

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None

    @property
    def core(self) -> bool:
        return os.WIFSIGNALED(self.status) and os.WCOREDUMP(self.status)

    @property
    def code(self) -> int | None:
        return os.WEXITSTATUS(self.status) if os.WIFEXITED(self.status) else None

    def describe(self) -> str:
        if self.signalled:
            sig = self.signal or 0
            try:
                name = signal.Signals(sig).name
                text = signal.strsignal(sig) or name
            except ValueError:
                text = f"signal {sig}"
            return f"died on {text} ({sig}){', core dumped' if self.core else ''}"
        return f"exited with status {self.code}"


@dataclass(frozen=True, slots=True)
class Child:
    """A spawned child and the future of its end."""

    pid: int
    exited: asyncio.Future[ExitStatus]

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self.exited)


class CommandRunner(Protocol):
    """Run a short command, collecting its output; a None status if it timed out (it is killed)."""

    def __call__(self, argv: Sequence[str], *, timeout: float | None = None) -> Awaitable[
            tuple[ExitStatus | None, bytes]]: ...


@dataclass(frozen=True)
class StartResult:
    """How a start went: ``Outcome`` (or "timeout"), a detail for the log, the method's status and code."""

    outcome: Outcome | str
    detail: str
    status: ExitStatus | None = None
    code: int | None = None


#: (instance, "error" | "empty", detail, status): a member died of an error, or every process exited.
ContractReport = Callable[["Instance", str, str, "ExitStatus | None"], None]
#: (instance, ok, detail): a health probe's verdict changed.
HealthReport = Callable[["Instance", bool, str], None]
#: The processes of a running instance's contract changed (found by a scan): record them.
MembersReport = Callable[["Instance"], None]


class ProcessLayer(Protocol):
    """What the engine asks of its instances' processes. Every method is called on the loop."""

    #: opens an instance's log file off the event loop (the spawn helper), or None
    log_opener: Opener | None

    def bind(self, on_contract: ContractReport, on_health: HealthReport,
             on_members: MembersReport | None = None) -> None:
        """Where to report what happens to running instances (and, ``on_members``, to their processes)."""
        ...

    async def start(self, inst: Instance) -> StartResult:
        """Run the start method; return once the instance is ready, or failed to start."""
        ...

    async def stop(self, inst: Instance, *, immediate: bool = False, why: str = "") -> None:
        """Run the stop method (not when ``immediate``), then end every process of the instance."""
        ...

    async def refresh(self, inst: Instance) -> None: ...

    async def health_loop(self, inst: Instance) -> None:
        """Probe a running instance until cancelled, reporting verdicts through ``on_health``."""
        ...

    def adopt(self, inst: Instance, record: dict[str, Any]) -> bool:
        """Take over the contract an earlier daemon recorded; False when nothing of it lives."""
        ...

    def discard(self, record: dict[str, Any]) -> None:
        """Kill and remove what is left of a recorded contract no instance will adopt."""
        ...

    def sweep(self, instances: Iterable[Instance]) -> None:
        """After loading: remove the groups an earlier daemon left that none of these instances owns."""
        ...

    def refusals(self, config: InstanceConfig) -> list[tuple[str, str]]:
        """(key, why) for each resource control of a configuration this host cannot apply."""
        ...
