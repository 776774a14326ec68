"""What the daemon gives a component (fault manager, metrics, MQTT bridge, VRRP agent), and what it asks.

A component is built from the daemon's context, subscribes to the bus and
registers its socket operations in ``setup``, then ``run``s until cancelled. The
daemon builds the components once its first services are started, before its socket
opens; the bus gives each subscription and listener made in ``setup`` the events
published since the daemon began (``Bus.keep``), so a component misses no event. Components talk to the rest only
through the bus (classes in ``svcmgr.eventclasses``), the API table, the services'
view and commands (``svcmgr.services``), their own tables in the daemon's database,
and a runner for short commands (``svcmgr.process``): never the engine, the
restarter, the reaper or the repository themselves.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import sqlite3

    from svcmgr.api import Api
    from svcmgr.bus import Bus
    from svcmgr.config import DaemonConfig
    from svcmgr.paths import Paths
    from svcmgr.process import CommandRunner
    from svcmgr.services import Services
    from svcmgr.timings import Recorder

__all__ = ["COMPONENTS", "Component", "Context", "load_components"]

#: "module:factory"; a factory takes the Context and returns a Component, or None when not configured.
COMPONENTS: list[str] = [
    "fault.daemon:create",
    "svcmgr.metrics:create",
    "svcmgr.mqtt_component:create",
    "svcmgr.deferred:vrrp",  # vrrp.agent, once configured
    "svcmgr.deferred:lb",  # lb.agent, once configured
    "svcmgr.web:create",
]


@dataclass
class Context:
    node: str
    paths: Paths
    bus: Bus
    api: Api
    #: the instances, read-only, and the few commands a component may give
    services: Services
    #: the daemon's database (components keep their own tables; ``svcmgr.db.transaction``)
    db: sqlite3.Connection
    #: run a short command (a configuration check) through the daemon's reaper
    run: CommandRunner
    #: start and stop timings (read by metrics)
    timings: Recorder
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
