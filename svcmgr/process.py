"""The process layer's vocabulary: how a process ended, a spawned child, and running a short command. A leaf.

``svcmgr.reaper`` spawns and reaps the daemon's children; components that need to run
a short command (``keepalived --config-test``, ``haproxy -c``) are handed a
``CommandRunner`` instead of the reaper itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Child", "CommandRunner", "ExitStatus"]


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
