"""What the daemon gives a component (fault manager, metrics, MQTT bridge, VRRP agent), and what it asks.

A component is built from the daemon's context, subscribes to the bus and
registers its socket operations in ``setup`` (before any service starts, so it
misses no event), then ``run``s until cancelled. Components talk to the rest only
through the bus, the API table and the engine's public methods.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from svcmgr.api import Api
    from svcmgr.bus import Bus
    from svcmgr.config import DaemonConfig
    from svcmgr.engine import Engine
    from svcmgr.paths import Paths
    from svcmgr.reaper import Reaper
    from svcmgr.repository import Repository

__all__ = ["COMPONENTS", "Component", "Context", "load_components"]

log = logging.getLogger("svcmgr.component")

#: "module:factory"; a factory takes the Context and returns a Component, or None when not configured.
COMPONENTS: list[str] = [
    "fault.daemon:create",
    "svcmgr.metrics:create",
    "svcmgr.mqtt:create",
    "vrrp.agent:create",
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
