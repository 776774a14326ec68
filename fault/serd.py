"""SERD and threshold engines: when do repeated soft errors become a fault. Pure, no I/O, no clock of its own.

SERD (Soft Error Rate Discrimination) follows illumos' fmd (``fmd_serd.c``): an
engine with parameters N and T *fires* when it holds more than N events (N+1)
whose newest and oldest lie within T. Recording an event first drops events older
than the newest minus T. Once fired, an engine takes no more events and stays
fired until ``reset`` (done when its case is closed), so one burst gives one case.

Times are passed in by the caller (the diagnosis engine's injectable monotonic
clock), so tests drive engines without sleeping.

A threshold engine fires when a telemetry value crosses a bound on ``count``
consecutive events; a value back inside the bound starts the count again.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

__all__ = ["SerdEngine", "ThresholdEngine"]


class SerdEngine:
    """N events within T, with fmd's firing and reset semantics."""

    __slots__ = ("_times", "fired", "n", "name", "recorded", "t")

    def __init__(self, name: str, n: int, t: float) -> None:
        if n < 0 or t <= 0:
            raise ValueError(f"SERD engine {name}: needs N >= 0 and T > 0 (got N={n}, T={t})")
        self.name = name
        self.n = n
        self.t = t
        self.fired = False
        self.recorded = 0
        self._times: collections.deque[float] = collections.deque()

    def record(self, now: float) -> bool:
        """Record one event at ``now``; True exactly when this event makes the engine fire."""
        if self.fired:
            return False
        times = self._times
        n = self.n
        while len(times) > n:
            times.popleft()
        times.append(now)
        self.recorded += 1
        self._gc(now)
        if len(times) > n and times[-1] - times[0] <= self.t:
            self.fired = True
            return True
        return False

    def _gc(self, newest: float) -> None:
        times = self._times
        limit = newest - self.t
        while times and times[0] < limit:
            times.popleft()

    def gc(self, now: float) -> None:
        """Drop events that can no longer take part in a firing (older than ``now`` - T)."""
        if not self.fired:
            self._gc(now)

    def reset(self) -> None:
        self._times.clear()
        self.fired = False

    @property
    def count(self) -> int:
        return len(self._times)

    @property
    def empty(self) -> bool:
        return not self._times and not self.fired

    def times(self) -> list[float]:
        return list(self._times)

    def to_state(self, mono_to_wall: float) -> dict[str, Any]:
        """A record that survives a restart: event times on the wall clock."""
        return {"n": self.n, "t": self.t, "fired": self.fired, "times": [x + mono_to_wall for x in self._times]}

    def load_state(self, state: dict[str, Any], wall_to_mono: float) -> None:
        times = state.get("times") or []
        self._times = collections.deque(float(x) + wall_to_mono for x in times if isinstance(x, int | float))
        self.fired = bool(state.get("fired"))

    def __repr__(self) -> str:
        return f"SerdEngine({self.name!r}, n={self.n}, t={self.t:g}, count={self.count}, fired={self.fired})"


@dataclass(frozen=True)
class Bound:
    field: str
    above: float | None = None
    below: float | None = None
    count: int = 1

    def breached(self, value: float) -> bool:
        if self.above is not None and value > self.above:
            return True
        return self.below is not None and value < self.below

    def describe(self) -> str:
        parts = []
        if self.above is not None:
            parts.append(f"{self.field} > {self.above:g}")
        if self.below is not None:
            parts.append(f"{self.field} < {self.below:g}")
        text = " or ".join(parts)
        return text if self.count == 1 else f"{text} on {self.count} consecutive reports"


class ThresholdEngine:
    """Fires when a value breaches its bound ``count`` times in a row; stays fired until reset."""

    __slots__ = ("bound", "fired", "last", "name", "recorded", "streak")

    def __init__(self, name: str, bound: Bound) -> None:
        self.name = name
        self.bound = bound
        self.streak = 0
        self.fired = False
        self.recorded = 0
        self.last: float | None = None

    def record(self, value: float) -> bool:
        if self.fired:
            return False
        self.recorded += 1
        self.last = value
        if self.bound.breached(value):
            self.streak += 1
        else:
            self.streak = 0
        if self.streak >= self.bound.count:
            self.fired = True
            return True
        return False

    def reset(self) -> None:
        self.streak = 0
        self.fired = False

    @property
    def count(self) -> int:
        return self.streak

    @property
    def empty(self) -> bool:
        return self.streak == 0 and not self.fired

    def gc(self, now: float) -> None:
        return None

    def to_state(self, mono_to_wall: float) -> dict[str, Any]:
        return {"streak": self.streak, "fired": self.fired, "last": self.last}

    def load_state(self, state: dict[str, Any], wall_to_mono: float) -> None:
        s = state.get("streak")
        self.streak = s if isinstance(s, int) and s >= 0 else 0
        self.fired = bool(state.get("fired"))
        last = state.get("last")
        self.last = float(last) if isinstance(last, int | float) and not isinstance(last, bool) else None
