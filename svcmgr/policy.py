"""Restart policy: what a method's result means, and when restarts come too quickly.

Pure functions and small classes over an injectable clock, so that every rule
is tested without processes or sleeping.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from enum import StrEnum

__all__ = [
    "SMF_EXIT_ERR_CONFIG", "SMF_EXIT_ERR_FATAL", "SMF_EXIT_ERR_NOSMF", "SMF_EXIT_ERR_PERM",
    "SMF_EXIT_MON_DEGRADE", "SMF_EXIT_MON_OFFLINE", "SMF_EXIT_NODAEMON", "SMF_EXIT_OK",
    "SMF_EXIT_TEMP_DISABLE", "START_RETRIES", "Outcome", "RestartHistory", "classify_method_exit",
]

SMF_EXIT_OK = 0
SMF_EXIT_NODAEMON = 94
SMF_EXIT_ERR_FATAL = 95
SMF_EXIT_ERR_CONFIG = 96
SMF_EXIT_MON_DEGRADE = 97
SMF_EXIT_MON_OFFLINE = 98
SMF_EXIT_ERR_NOSMF = 99
SMF_EXIT_ERR_PERM = 100
SMF_EXIT_TEMP_DISABLE = 101

#: Consecutive start-method failures after which the instance goes to maintenance.
START_RETRIES = 3

_FATAL = {SMF_EXIT_ERR_FATAL, SMF_EXIT_ERR_CONFIG, SMF_EXIT_ERR_NOSMF, SMF_EXIT_ERR_PERM}

EXIT_NAMES = {
    SMF_EXIT_NODAEMON: "SMF_EXIT_NODAEMON",
    SMF_EXIT_ERR_FATAL: "SMF_EXIT_ERR_FATAL",
    SMF_EXIT_ERR_CONFIG: "SMF_EXIT_ERR_CONFIG",
    SMF_EXIT_MON_DEGRADE: "SMF_EXIT_MON_DEGRADE",
    SMF_EXIT_MON_OFFLINE: "SMF_EXIT_MON_OFFLINE",
    SMF_EXIT_ERR_NOSMF: "SMF_EXIT_ERR_NOSMF",
    SMF_EXIT_ERR_PERM: "SMF_EXIT_ERR_PERM",
    SMF_EXIT_TEMP_DISABLE: "SMF_EXIT_TEMP_DISABLE",
}


class Outcome(StrEnum):
    OK = "ok"
    RETRY = "retry"  # counts toward START_RETRIES
    FATAL = "fatal"  # maintenance at once
    TEMP_DISABLE = "temp_disable"


def classify_method_exit(code: int | None, *, method: str = "start") -> Outcome:
    """What an exit code (None: killed by a signal) means for a method, as SMF's restarter reads it."""
    if code is None:
        return Outcome.RETRY
    if code in (SMF_EXIT_OK, SMF_EXIT_NODAEMON):
        return Outcome.OK
    if code in _FATAL:
        return Outcome.FATAL
    if code == SMF_EXIT_TEMP_DISABLE and method == "start":
        return Outcome.TEMP_DISABLE
    return Outcome.RETRY


class RestartHistory:
    """Times of recent automatic restarts; ``limit`` of them within ``period`` is too many."""

    def __init__(self, limit: int, period: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.period = period
        self._clock = clock
        #: made at the first restart: most instances never restart, and an empty deque is 600 bytes
        self._times: collections.deque[float] | None = None

    def record(self) -> bool:
        """Record one failure now; True when it makes ``limit`` failures within ``period``."""
        now = self._clock()
        if self._times is None:
            self._times = collections.deque(maxlen=max(self.limit, 1))
        self._times.append(now)
        return len(self._times) >= self.limit and now - self._times[0] <= self.period

    def reset(self) -> None:
        self._times = None

    def __len__(self) -> int:
        return len(self._times) if self._times is not None else 0

    def configure(self, limit: int, period: float) -> None:
        if limit != self.limit and self._times is not None:
            self._times = collections.deque(self._times, maxlen=max(limit, 1))
        self.limit = limit
        self.period = period
