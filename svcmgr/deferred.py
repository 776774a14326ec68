"""The VRRP and load-balancer agents as components: built only once something configures them.

A ``svcmgr.daemonagent.DaemonAgent`` (``vrrp.agent``, ``lb.agent``) and jinja2, which
only they render with, cost a daemon some 3 MiB and 45 ms of start. Most nodes configure
neither, so the daemon holds a ``Deferred`` in the agent's place: it imports and builds
the agent as soon as its section is configured, which is any of

- ``[<name>]`` in the node's configuration (at start, or after a ``reload``),
- a manifest in the repository declaring ``[<name>]`` (at start, or when one is imported),
- the agent's daemon service in the repository (a node that had items and may need its
  daemon's configuration emptied),
- a call of one of its operations (``<name>.show``, ``<name>.config``), which then
  answers as the agent always did.

Built at start, the agent is set up where the other components are (given the bus's
events from the daemon's start); built later, it is set up then, as at the start of a
daemon whose repository held that configuration, and runs in the ``Deferred``'s task.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from svcmgr.eventclasses import SVC_IMPORTED

if TYPE_CHECKING:
    from svcmgr.api import Caller, Handler
    from svcmgr.component import Component, Context
    from svcmgr.config import DaemonConfig

__all__ = ["OPERATIONS", "Deferred", "lb", "vrrp"]

#: The operations every DaemonAgent registers, ``<name>.<op>`` handled by its ``op_<op>``.
OPERATIONS = ("show", "config")


class _Registry:
    """The agent's view of the socket's operation table: the Deferred registered its operations already."""

    def __init__(self) -> None:
        self.ops: dict[str, Handler] = {}

    def register(self, op: str, handler: Handler) -> None:
        self.ops[op] = handler


class Deferred:
    """Stands for the agent ``target`` ("module:factory") until something configures ``[name]``."""

    def __init__(self, ctx: Context, name: str, target: str, service: str) -> None:
        self.ctx = ctx
        self.name = name
        self.target = target
        self.service = service
        self.agent: Component | None = None
        self._registry = _Registry()
        self._wanted = asyncio.Event()
        self._sub: Any = None
        self._agent_ctx: Context | None = None  # the agent's (the daemon's, but for the operations)

    def configured(self) -> bool:
        """Whether the node's configuration, a manifest or the daemon's service configures the agent."""
        services = self.ctx.services
        return (self.ctx.config.section(self.name) is not None
                or services.instance(self.service) is not None
                or any(self.name in spec.extensions for spec in services.specs().values()))

    def build(self) -> Component:
        """Import, build and set up the agent (once)."""
        if self.agent is None:
            mod, _, fn = self.target.partition(":")
            factory = getattr(importlib.import_module(mod), fn)
            self._agent_ctx = dataclasses.replace(self.ctx, api=self._registry)
            agent = factory(self._agent_ctx)
            agent.setup()
            self.agent = agent
            self._wanted.set()
        return self.agent

    # ------------------------------------------------------------------ the component
    def setup(self) -> None:
        for op in OPERATIONS:
            self.ctx.api.register(f"{self.name}.{op}", self._handler(f"{self.name}.{op}"))
        if self.configured():
            self.build()
        else:
            self._sub = self.ctx.bus.subscribe(SVC_IMPORTED)

    async def run(self) -> None:
        if self.agent is None:
            assert self._sub is not None
            try:
                await self._until_configured()
            finally:
                self._sub.close()
        assert self.agent is not None
        await self.agent.run()

    async def _until_configured(self) -> None:
        """Wait for an import, a reload or an operation that configures the agent, and build it."""
        async with asyncio.TaskGroup() as tg:
            imports = tg.create_task(self._imports(), name=f"{self.name}-deferred")
            while self.agent is None:
                if self.configured():
                    self.build()
                    break
                await self._wanted.wait()
                self._wanted.clear()
            imports.cancel()

    async def _imports(self) -> None:
        async for _ev in self._sub:
            self._wanted.set()

    def reconfigure(self, config: DaemonConfig) -> None:
        if self.agent is not None:
            assert self._agent_ctx is not None
            self._agent_ctx.config = config  # as the daemon's own context
            self.agent.reconfigure(config)
        else:
            self._wanted.set()  # (ctx.config is the new one: the daemon set it)

    def statistics(self) -> dict[str, Any]:
        return self.agent.statistics() if self.agent is not None else {"built": False}

    def _handler(self, op: str) -> Handler:
        async def handle(caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
            self.build()
            return await self._registry.ops[op](caller, req)

        return handle


def _deferred(ctx: Context, name: str, service: str) -> Deferred | None:
    """The agent of package ``name`` (``<name>.agent``), or None where this build lacks the package."""
    if importlib.util.find_spec(name) is None:
        return None
    return Deferred(ctx, name, f"{name}.agent:create", service)


def vrrp(ctx: Context) -> Deferred | None:
    """The VRRP agent, once configured; its service is ``vrrp.keepalived.SERVICE``."""
    return _deferred(ctx, "vrrp", "svc:/network/vrrp:default")


def lb(ctx: Context) -> Deferred | None:
    """The load-balancer agent, once configured; its service is ``lb.haproxy.SERVICE``."""
    return _deferred(ctx, "lb", "svc:/network/haproxy:default")
