"""The crash hold: after keepalived stops and restarts, this node's instances stay in FAULT for a while.

svcmgr restarts a crashed keepalived in milliseconds, so without a hold a
crashed master would race its backup for the addresses within the same
detection period, and win or lose by chance. Every instance follows one more
track file, this one, with weight 0: the agent sets it the moment keepalived
stops (before the restarter starts it again) and releases it once keepalived
has run for the hold time, by then the backup has taken over, and a
preempting node takes the addresses back afterwards. keepalived's own
``vrrp_startup_delay`` would do this, but in 2.2.7 a node coming out of it
never preempts a lower-priority master (keepalived issue 2098).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from vrrp.keepalived import read_text, write_atomic

__all__ = ["CrashHold"]

log = logging.getLogger("vrrp.hold")


class CrashHold:
    """The hold file (1: held) and the timer that releases it."""

    def __init__(self, path: str, seconds: Callable[[], float]) -> None:
        self.path = path
        self.seconds = seconds
        self.until: float | None = None  # wall clock, for display
        self._timer: asyncio.TimerHandle | None = None

    @property
    def held(self) -> bool:
        return read_text(self.path) == "1\n"

    def set(self) -> None:
        """keepalived stopped: hold (unless the hold time is 0)."""
        if self.seconds() > 0 and self._write(True):
            log.info("keepalived stopped: this node's VRRP instances stay in FAULT until it has run for %gs",
                     self.seconds())

    def clear(self) -> None:
        self._write(False)

    def arm(self) -> None:
        """keepalived runs again: release the hold after the hold time."""
        if not self.held:
            return
        self.cancel()
        t = self.seconds()
        self.until = time.time() + t
        self._timer = asyncio.get_running_loop().call_later(t, self._release)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _release(self) -> None:
        self._timer = None
        self._write(False)
        log.info("hold released: this node's VRRP instances contend again")

    def _write(self, on: bool) -> bool:
        self.cancel()
        self.until = None
        try:
            write_atomic(self.path, "1\n" if on else "0\n", durable=False)
        except OSError as e:
            log.error("cannot write the hold file %s: %s", self.path, e)
            return False
        return True

    def view(self) -> dict[str, Any]:
        until = dt.datetime.fromtimestamp(self.until).astimezone().isoformat(timespec="milliseconds") \
            if self.until else None
        return {"held": self.held, "until": until, "seconds": self.seconds()}
