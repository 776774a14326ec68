"""The recent ereports of each resource, as they arrived: what attribution and a new case look back on.

Each resource keeps its last ``LENGTH`` ereports (arrival time, brief, detail: ""
when the caller leaves it out, as diagnosis does but for services) for ``AGE``
seconds; at most ``limit`` resources are remembered, the least recently heard of
forgotten first. A detail may be given as the ereport's payload instead of its text:
it is then made (``fault.events.describe``) only if something reads it, which is
rare (a new cascade case quotes its suspects' ereports), while an ereport of a
service comes with every failure.

A resource's entries are kept flat in one deque (arrival, brief, detail, arrival, ...),
not as a tuple per entry: a tuple holding a brief (a dict) stays tracked by the cyclic
garbage collector for as long as it is kept, and tens of thousands of them, one per
ereport, would be scanned again and again and bring on full collections. Times,
briefs (dicts of plain values) and details are not tracked: a payload is kept in
place of its text only if it is not tracked either (a table of plain values).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from typing import Any

from fault.events import describe

__all__ = ["AGE", "LENGTH", "Trail"]

LENGTH = 16
AGE = 3600.0

#: (arrival, brief, detail)
Entry = tuple[float, dict[str, Any], str]
#: a detail as given to ``add``: its text, or the payload to make it from (with the brief's class) when read
Detail = str | dict[str, Any]
#: the fields of an entry, kept one after the other in a resource's deque
_WIDTH = 3


class Trail:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: resource -> its entries, oldest first, flat: arrival, brief, detail, arrival, ... (``LENGTH`` at most)
        self._by_resource: collections.OrderedDict[str, collections.deque[Any]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._by_resource)

    def add(self, resource: str, now: float, brief: dict[str, Any], detail: Detail) -> None:
        tr = self._by_resource.get(resource)
        if tr is None:
            tr = self._by_resource[resource] = collections.deque(maxlen=LENGTH * _WIDTH)
            if len(self._by_resource) > self.limit:
                self._by_resource.popitem(last=False)
        else:
            self._by_resource.move_to_end(resource)
        tr.append(now)  # a full deque drops its oldest entry's three fields
        tr.append(brief)
        tr.append(detail)

    def between(self, resource: str, lo: float, hi: float) -> Iterator[Entry]:
        """The resource's ereports that arrived from ``lo`` to ``hi``, oldest first, each with its detail's text."""
        fields = iter(self._by_resource.get(resource, ()))
        return ((t, b, d if type(d) is str else describe(b["class"], d))
                for t, b, d in zip(fields, fields, fields, strict=True) if lo <= t <= hi)

    def briefs(self, resource: str, lo: float, hi: float) -> Iterator[tuple[float, dict[str, Any]]]:
        """``between`` without the details: (arrival, brief)."""
        fields = iter(self._by_resource.get(resource, ()))
        return ((t, b) for t, b, _ in zip(fields, fields, fields, strict=True) if lo <= t <= hi)

    def heard(self, resources: Iterable[str], lo: float, hi: float) -> set[str]:
        """Those of ``resources`` that reported anything from ``lo`` to ``hi``."""
        out = set()
        get = self._by_resource.get
        for res in resources:
            tr = get(res)
            if tr:
                t = tr[-_WIDTH]  # the newest, the one the loop below would stop at (nearly always: ``hi`` is now)
                if t > hi:
                    for i in range(len(tr) - 2 * _WIDTH, -1, -_WIDTH):
                        t = tr[i]
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
            if not tr or tr[-_WIDTH] < now - AGE:
                del self._by_resource[res]
            else:
                break
