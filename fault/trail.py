"""The recent ereports of each resource, as they arrived: what attribution and a new case look back on.

Each resource keeps its last ``LENGTH`` ereports (arrival time, brief, detail: ""
when the caller leaves it out, as diagnosis does but for services) for ``AGE``
seconds; at most ``limit`` resources are remembered, the least recently heard of
forgotten first.
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


class Trail:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._by_resource: collections.OrderedDict[str, collections.deque[Entry]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._by_resource)

    def add(self, resource: str, now: float, brief: dict[str, Any], detail: str) -> None:
        tr = self._by_resource.get(resource)
        if tr is None:
            tr = self._by_resource[resource] = collections.deque(maxlen=LENGTH)
            if len(self._by_resource) > self.limit:
                self._by_resource.popitem(last=False)
        else:
            self._by_resource.move_to_end(resource)
        tr.append((now, brief, detail))

    def between(self, resource: str, lo: float, hi: float) -> Iterator[Entry]:
        """The resource's ereports that arrived from ``lo`` to ``hi``, oldest first."""
        return (x for x in self._by_resource.get(resource, ()) if lo <= x[0] <= hi)

    def heard(self, resources: Iterable[str], lo: float, hi: float) -> set[str]:
        """Those of ``resources`` that reported anything from ``lo`` to ``hi``."""
        out = set()
        get = self._by_resource.get
        for res in resources:
            tr = get(res)
            if tr:
                t = tr[-1][0]  # the newest, the one the loop below would stop at (nearly always: ``hi`` is now)
                if t > hi:
                    for t, _, _ in reversed(tr):
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
            tr = self._by_resource[res]
            if not tr or tr[-1][0] < now - AGE:
                del self._by_resource[res]
            else:
                break
