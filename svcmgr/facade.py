"""The engine as components see it: ``svcmgr.services.Services`` over the daemon's engine.

Reads go straight to the live instances (no copy per call: metrics read every
instance at each scrape); closures are cached until the graph is rebuilt. Commands
call the engine's operator verbs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from svcmgr.manifest import ManifestErrors, parse_service
from svcmgr.schema import FieldError, read_toml
from svcmgr.services import InstanceInfo, StopGate
from svcmgr.spec import ServiceSpec

if TYPE_CHECKING:
    from svcmgr.engine import Engine

__all__ = ["EngineServices"]

log = logging.getLogger("svcmgr.facade")


class EngineServices:
    """``Services`` (view and commands) backed by an ``Engine``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._graph: object = None
        self._closures: dict[tuple[str, tuple[str, ...]], frozenset[str]] = {}

    # ------------------------------------------------------------ view
    def instance(self, fmri: str) -> InstanceInfo | None:
        return self._engine.instances.get(fmri)

    def instances(self) -> Iterator[InstanceInfo]:
        return iter(list(self._engine.instances.values()))

    def specs(self) -> Mapping[str, ServiceSpec]:
        return self._engine.specs

    def closure(self, fmri: str, groupings: Iterable[str]) -> frozenset[str]:
        g = self._engine.graph
        if g is not self._graph:
            self._graph, self._closures = g, {}
        key = (fmri, tuple(groupings))
        hit = self._closures.get(key)
        if hit is None:
            hit = self._closures[key] = frozenset(g.closure(fmri, key[1])) if fmri in g else frozenset({fmri})
        return hit

    def owner(self, pid: int, memcg: str | None = None) -> str | None:
        group = (memcg or "").strip("/")  # "" is the root group: every process's, nobody's in particular
        for f, inst in self._engine.instances.items():
            c = inst.contract
            if c is None:
                continue
            if group and c.cgroup and (c.cgroup.rstrip("/") + "/").endswith("/" + group + "/"):
                return f
            if pid in c.members:
                return f
        return None

    # ------------------------------------------------------------ commands
    def mark(self, fmris: list[str], what: str, *, temporary: bool = False, immediate: bool = False,
             reason: str | None = None, by: str = "operator", case: str | None = None) -> list[str]:
        return self._engine.mark(fmris, what, temporary=temporary, immediate=immediate, reason=reason, by=by,
                                 case=case)

    def clear(self, fmris: list[str]) -> list[str]:
        return self._engine.clear(fmris)

    def resolve(self, pattern: str) -> str:
        return self._engine.resolve_one(pattern)

    def add_stop_gate(self, gate: StopGate) -> None:
        self._engine.add_stop_gate(gate)

    def import_manifest(self, path: str, environment: Mapping[str, str]) -> str | None:
        try:
            data = read_toml(path)
        except FieldError as e:
            return str(e)
        env = data.setdefault("environment", {})
        if isinstance(env, dict):
            env.update(environment)
        try:
            spec = parse_service(data, path, base_dir=os.path.dirname(path))
            current = self._engine.specs.get(str(spec.fmri))
            if current is not None and current.to_dict() == spec.to_dict():
                return None
            for w in self._engine.import_specs([spec], ["toml"]):
                log.warning("%s", w)
        except ManifestErrors as e:
            return str(e)
        log.info("imported %s from %s", spec.fmri, path)
        return None
