"""Waiting for a condition by polling it: for the network labs (``vrrp.lab``, ``lb.cluster``), the bench
and the tests, which watch a daemon from outside."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["wait_for"]


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """``pred``'s first true value, polled every ``interval`` seconds; AssertionError (naming ``what`` and
    the last value) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
