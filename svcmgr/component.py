"""What the daemon gives a component (fault manager, metrics, MQTT bridge, VRRP agent), and what it asks.

A component is built from the daemon's context, subscribes to the bus and
registers its socket operations in ``setup`` (before any service starts, so it
misses no event), then ``run``s until cancelled. Components talk to the rest only
through the bus, the API table and the engine's public methods.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from svcmgr.manifest import ManifestErrors, parse_service
from svcmgr.schema import FieldError, read_toml

if TYPE_CHECKING:
    from svcmgr.api import Api
    from svcmgr.bus import Bus
    from svcmgr.config import DaemonConfig
    from svcmgr.engine import Engine
    from svcmgr.paths import Paths
    from svcmgr.reaper import Reaper
    from svcmgr.repository import Repository

__all__ = ["COMPONENTS", "Component", "Context", "import_manifest", "load_components"]

log = logging.getLogger("svcmgr.component")

#: "module:factory"; a factory takes the Context and returns a Component, or None when not configured.
COMPONENTS: list[str] = [
    "fault.daemon:create",
    "svcmgr.metrics:create",
    "svcmgr.mqtt:create",
    "vrrp.agent:create",
    "lb.agent:create",
    "svcmgr.web:create",
]


@dataclass
class Context:
    node: str
    paths: Paths
    bus: Bus
    repo: Repository
    engine: Engine
    api: Api
    reaper: Reaper
    config: DaemonConfig
    clock: Callable[[], float]


class Component(Protocol):
    name: str

    def setup(self) -> None: ...

    async def run(self) -> None: ...

    def reconfigure(self, config: DaemonConfig) -> None: ...

    def statistics(self) -> dict[str, Any]: ...


def load_components(ctx: Context) -> list[Component]:
    out = []
    for target in COMPONENTS:
        mod, _, fn = target.partition(":")
        try:
            factory = getattr(importlib.import_module(mod), fn)
        except ImportError as e:
            if e.name and (e.name == mod or mod.startswith(e.name + ".")):
                continue  # this build does not have the component
            raise
        except AttributeError:
            continue
        comp = factory(ctx)
        if comp is not None:
            out.append(comp)
    return out


def import_manifest(engine: Engine, path: str, environment: dict[str, str]) -> str | None:
    """Import the manifest of a daemon a component runs as a service (keepalived, HAProxy), with these
    environment values set, unless the same one is imported already. The error, or None."""
    try:
        data = read_toml(path)
    except FieldError as e:
        return str(e)
    env = data.setdefault("environment", {})
    if isinstance(env, dict):
        env.update(environment)
    try:
        spec = parse_service(data, path, base_dir=os.path.dirname(path))
        current = engine.specs.get(str(spec.fmri))
        if current is not None and current.to_dict() == spec.to_dict():
            return None
        for w in engine.import_specs([spec], ["toml"]):
            log.warning("%s", w)
    except ManifestErrors as e:
        return str(e)
    log.info("imported %s from %s", spec.fmri, path)
    return None
