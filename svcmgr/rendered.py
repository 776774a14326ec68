"""The pieces of a configuration a component renders for another daemon (keepalived, HAProxy).

``Templates`` renders a package's jinja2 templates so that every value printed is one
plain token; ``Files`` names where the daemon's files live; ``run_check`` runs the
daemon's own check of a candidate and ``check_output`` trims what it said;
``signal_daemon`` asks the daemon to reload; ``ConfigStatus`` is where the
configuration stands: applied, or rejected with the stage that refused it and why,
and how many checks, rejections and reloads. ``svcmgr.daemonagent`` puts them
together into the render, check, apply and reload cycle.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import jinja2

from svcmgr.files import read_pid

if TYPE_CHECKING:
    from svcmgr.process import CommandRunner

__all__ = ["ConfigStatus", "Files", "RenderError", "Templates", "apply_loop", "check_output", "iso", "not_installed",
           "run_check", "signal_daemon"]

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


class RenderError(ValueError):
    """A value that cannot be written into a daemon's configuration safely."""


class Templates:
    """A package's jinja2 templates (``<package>/templates``), StrictUndefined, where every value printed
    must be one plain token (``token``): even a value that slipped past validation cannot carry the
    daemon's syntax. ``conf`` and ``allowed`` name the file and the characters in a refusal."""

    def __init__(self, package: str, conf: str, daemon: str, token: re.Pattern[str], allowed: str) -> None:
        self.package, self.conf, self.daemon, self.token, self.allowed = package, conf, daemon, token, allowed
        self._env: jinja2.Environment | None = None

    def _finalize(self, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise RenderError(f"refusing to render {value!r} into {self.conf}: not a plain value")
        text = str(value)
        if not self.token.match(text):
            raise RenderError(f"refusing to render {text!r} into {self.conf}: only letters, digits and "
                              f"{self.allowed} may reach {self.daemon}")
        return text

    def render(self, name: str, **values: Any) -> str:
        """The template ``name`` filled with ``values``. Raises RenderError for an unsafe value."""
        if self._env is None:
            self._env = jinja2.Environment(loader=jinja2.PackageLoader(self.package, "templates"),
                                           undefined=jinja2.StrictUndefined, autoescape=False,
                                           keep_trailing_newline=True, finalize=self._finalize)
        return self._env.get_template(name).render(**values)


def check_output(text: bytes | str, failed: str, skip: Callable[[str], bool] = lambda line: False) -> str:
    """What a daemon's check said, trimmed to its last 20 lines worth showing (``failed`` when it said nothing)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not skip(ln)]
    return "\n".join(lines[-20:]) or failed


def signal_daemon(pidfile: str, contract_pids: Iterable[int], sig: signal.Signals) -> int | None:
    """Send ``sig`` (a reload) to the daemon whose pid file names a process of its service's contract; the
    pid, or None when the pid file names no such process (a stale file is never trusted)."""
    pid = read_pid(pidfile)
    if pid is None or pid not in set(contract_pids):
        return None
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return None
    return pid
