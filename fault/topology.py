"""What diagnosis knows of the service graph: each instance's dependencies (directly or not) and its state.

``ViewTopology`` reads the daemon's services (``svcmgr.services.ServiceView``);
``StaticTopology`` is a fixed graph, for tests and the benchmark.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from svcmgr.services import ServiceView

__all__ = ["GROUPINGS", "UNHEALTHY", "StaticTopology", "Topology", "ViewTopology"]

#: Dependency groupings along which a failure propagates (exclude_all never does).
GROUPINGS = ("require_all", "require_any", "optional_all")
#: States of a dependency that make its dependents' failures symptoms, whenever they happen.
UNHEALTHY = frozenset({"maintenance", "degraded"})


class Topology(Protocol):
    """What diagnosis needs to know about the service graph."""

    def dependencies(self, fmri: str) -> frozenset[str]:
        """Every instance ``fmri`` depends on, directly or not (``exclude_all`` edges excluded)."""
        ...

    def unhealthy(self, fmris: Iterable[str]) -> set[str]:
        """Those of ``fmris`` in maintenance or degraded."""
        ...


class ViewTopology:
    """The daemon's services seen read-only (``svcmgr.services.ServiceView``)."""

    def __init__(self, view: ServiceView) -> None:
        self.view = view
        #: fmri -> (its closure, the closure without it): made again when the view gives another closure
        self._deps: dict[str, tuple[frozenset[str], frozenset[str]]] = {}

    def dependencies(self, fmri: str) -> frozenset[str]:
        closure = self.view.closure(fmri, GROUPINGS)
        hit = self._deps.get(fmri)
        if hit is None or hit[0] is not closure:
            if len(self._deps) >= 65536:  # instances deleted since: start afresh
                self._deps.clear()
            hit = self._deps[fmri] = (closure, closure - {fmri})
        return hit[1]

    def unhealthy(self, fmris: Iterable[str]) -> set[str]:
        out = set()
        instance = self.view.instance
        for f in fmris:  # a loop, not a comprehension: no frame of its own made at each failure diagnosed
            inst = instance(f)
            if inst is not None and inst.state in UNHEALTHY:
                out.add(f)
        return out


class StaticTopology:
    """A fixed graph (direct dependencies) and states: for tests and the benchmark."""

    def __init__(self, deps: Mapping[str, Iterable[str]], states: dict[str, str] | None = None) -> None:
        self.deps = {k: tuple(v) for k, v in deps.items()}
        self.states = states if states is not None else {}
        self._cache: dict[str, frozenset[str]] = {}

    def dependencies(self, fmri: str) -> frozenset[str]:
        hit = self._cache.get(fmri)
        if hit is None:
            seen: set[str] = set()
            stack = list(self.deps.get(fmri, ()))
            while stack:
                d = stack.pop()
                if d not in seen and d != fmri:
                    seen.add(d)
                    stack.extend(self.deps.get(d, ()))
            hit = self._cache[fmri] = frozenset(seen)
        return hit

    def unhealthy(self, fmris: Iterable[str]) -> set[str]:
        return {f for f in fmris if self.states.get(f) in UNHEALTHY}
