"""The recent ereports of each resource, as they arrived: what attribution and a new case look back on.

Each resource keeps its last ``LENGTH`` ereports (arrival time, brief, detail: ""
when the caller leaves it out, as diagnosis does but for services) for ``AGE``
seconds; at most ``limit`` resources are remembered, the least recently heard of
forgotten first.

A resource's entries are kept as three columns (arrival times, briefs, details), not
as a tuple per entry: a tuple holding a brief (a dict) stays tracked by the cyclic
garbage collector for as long as it is kept, and tens of thousands of them, one per
ereport, would be scanned again and again and bring on full collections. Times,
briefs (dicts of plain values) and details are not tracked.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["AGE", "LENGTH", "Trail"]

LENGTH = 16
AGE = 3600.0

#: (arrival, brief, detail)
Entry = tuple[float, dict[str, Any], str]
#: a resource's entries, oldest first: arrival times, briefs, details (each of ``LENGTH`` at most)
Columns = tuple[collections.deque[float], collections.deque[dict[str, Any]], collections.deque[str]]


def _columns() -> Columns:
    return collections.deque(maxlen=LENGTH), collections.deque(maxlen=LENGTH), collections.deque(maxlen=LENGTH)


class Trail:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._by_resource: collections.OrderedDict[str, Columns] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._by_resource)

    def add(self, resource: str, now: float, brief: dict[str, Any], detail: str) -> None:
        tr = self._by_resource.get(resource)
        if tr is None:
            tr = self._by_resource[resource] = _columns()
            if len(self._by_resource) > self.limit:
                self._by_resource.popitem(last=False)
        else:
            self._by_resource.move_to_end(resource)
        times, briefs, details = tr
        times.append(now)
        briefs.append(brief)
        details.append(detail)

    def between(self, resource: str, lo: float, hi: float) -> Iterator[Entry]:
        """The resource's ereports that arrived from ``lo`` to ``hi``, oldest first."""
        tr = self._by_resource.get(resource)
        return (x for x in zip(*tr, strict=True) if lo <= x[0] <= hi) if tr is not None else iter(())

    def heard(self, resources: Iterable[str], lo: float, hi: float) -> set[str]:
        """Those of ``resources`` that reported anything from ``lo`` to ``hi``."""
        out = set()
        get = self._by_resource.get
        for res in resources:
            tr = get(res)
            if tr is not None and tr[0]:
                times = tr[0]
                t = times[-1]  # the newest, the one the loop below would stop at (nearly always: ``hi`` is now)
                if t > hi:
                    for t in reversed(times):
                        if t <= hi:
                            break
                    else:
                        continue
                if t >= lo:
                    out.add(res)
        return out

    def gc(self, now: float) -> None:
        """Forget the resources not heard of for ``AGE`` seconds."""
        for res in list(self._by_resource):
            times = self._by_resource[res][0]
            if not times or times[-1] < now - AGE:
                del self._by_resource[res]
            else:
                break
