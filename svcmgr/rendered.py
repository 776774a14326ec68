"""Where a configuration a component renders for another daemon (keepalived, HAProxy) stands: applied,
or rejected with the stage that refused it and why, and how many checks, rejections and reloads."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from svcmgr.process import CommandRunner

__all__ = ["ConfigStatus", "Files", "apply_loop", "iso", "not_installed", "run_check"]

log = logging.getLogger("svcmgr.rendered")


def iso(t: float | None) -> str | None:
    return dt.datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds") if t else None


@dataclass
class ConfigStatus:
    status: str = "none"  # none | applied | rejected
    applied_at: float | None = None
    error: str | None = None
    stage: str | None = None  # validate | render | config-test
    rejected_at: float | None = None
    reloads: int = 0
    checks: int = 0
    rejections: int = 0
    _last: tuple[str, str] | None = None

    def applied(self, *, changed: bool, present: bool) -> None:
        """The running configuration is the wanted one (``changed``: just installed); ``present``: a file runs."""
        if not present:
            self.status = "none"
        elif changed or self.status != "applied":
            self.status = "applied"
            self.applied_at = time.time() if changed or self.applied_at is None else self.applied_at
            self.error = self.stage = None
            self._last = None

    def reject(self, stage: str, error: str) -> bool:
        """A configuration was refused; True when this refusal is new (not the same one again)."""
        self.status, self.error, self.stage, self.rejected_at = "rejected", error, stage, time.time()
        if self._last == (stage, error):
            return False
        self._last = (stage, error)
        self.rejections += 1
        return True

    def view(self, path: str, rejected_file: str) -> dict[str, Any]:
        return {"status": self.status, "path": path, "applied_at": iso(self.applied_at), "error": self.error,
                "stage": self.stage, "rejected_at": iso(self.rejected_at),
                "rejected_file": rejected_file if self.status == "rejected" and self.stage == "config-test" else None,
                "reloads": self.reloads, "checks": self.checks, "rejections": self.rejections}


@dataclass(frozen=True)
class Files:
    """Where a component keeps the configuration it renders for a daemon, under the daemon's state folders.
    A subclass names its folder (``FOLDER``), the file (``CONF``) and the daemon's pid file (``PID``)."""

    FOLDER: ClassVar[str] = ""
    CONF: ClassVar[str] = ""
    PID: ClassVar[str] = ""
    lib: str
    run: str

    @classmethod
    def for_paths(cls, lib: str, run: str) -> Any:
        return cls(os.path.join(lib, cls.FOLDER), os.path.join(run, cls.FOLDER))

    @property
    def conf(self) -> str:
        """The configuration the daemon reads: only ever a checked one."""
        return os.path.join(self.lib, self.CONF)

    @property
    def candidate(self) -> str:
        return os.path.join(self.lib, f"{self.CONF}.new")

    @property
    def rejected(self) -> str:
        return os.path.join(self.lib, f"{self.CONF}.rejected")

    @property
    def pidfile(self) -> str:
        return os.path.join(self.run, self.PID)


def not_installed(what: str, wanted: str, without: str) -> str:
    """Why a component stays idle: its daemon is not installed."""
    return f"{what} is not installed ({wanted} not found); the daemon runs without {without}"


async def run_check(run: CommandRunner, argv: list[str], timeout: float) -> tuple[bool, bytes]:
    """The daemon's own check of a candidate file (``keepalived --config-test``, ``haproxy -c``): (passed, output)."""
    try:
        status, out = await run(argv, timeout=timeout)
    except OSError as e:
        return False, str(e).encode()
    if status is None:
        return False, out + f"\n{os.path.basename(argv[0])} check timed out after {timeout:g}s".encode()
    return status.code == 0, out


async def apply_loop(wake: asyncio.Event, apply: Callable[[], Awaitable[Any]], what: str) -> None:
    """Apply the configuration each time ``wake`` is set (a burst of imports settles into one render)."""
    while True:
        await wake.wait()
        await asyncio.sleep(0.05)
        wake.clear()
        try:
            await apply()
        except Exception:
            log.exception("applying the %s configuration failed", what)
