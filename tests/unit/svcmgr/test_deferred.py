"""svcmgr.deferred: an agent is built only once something configures it, and then as it always was.

The decisions, on a real bus with a recording agent in place of vrrp.agent (whose
daemon, keepalived, cannot run here); tests/integration/test_deferred_agents.py runs
the real agents in a real daemon.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from lb.haproxy import SERVICE as HAPROXY
from svcmgr import deferred
from svcmgr.bus import Bus
from svcmgr.component import COMPONENTS, Context
from svcmgr.config import DaemonConfig
from svcmgr.eventclasses import SVC_IMPORTED
from vrrp.keepalived import SERVICE as KEEPALIVED

BUILT: list[Agent] = []
CREATED = asyncio.Event()


class Agent:
    """Records what the daemon asks of it."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.calls: list[str] = []
        self.running = asyncio.Event()
        BUILT.append(self)
        CREATED.set()

    def setup(self) -> None:
        self.calls.append("setup")
        self.ctx.api.register("vrrp.show", self.op_show)
        self.ctx.api.register("vrrp.config", self.op_show)

    async def run(self) -> None:
        self.calls.append("run")
        self.running.set()
        await asyncio.Event().wait()

    def reconfigure(self, config: DaemonConfig) -> None:
        self.calls.append("reconfigure")

    def statistics(self) -> dict[str, Any]:
        return {"available": True}

    async def op_show(self, caller: Any, req: dict[str, Any]) -> dict[str, Any]:
        return {"from": "agent", "req": req}


def create(ctx: Any) -> Agent:
    return Agent(ctx)


class Api:
    def __init__(self) -> None:
        self.ops: dict[str, Any] = {}

    def register(self, op: str, handler: Any) -> None:
        assert op not in self.ops, f"operation {op} registered twice"
        self.ops[op] = handler


class Services:
    def __init__(self) -> None:
        self.specs_: dict[str, Any] = {}
        self.instances: set[str] = set()

    def specs(self) -> dict[str, Any]:
        return self.specs_

    def instance(self, fmri: str) -> Any:
        return object() if fmri in self.instances else None


SERVICE = "svc:/network/vrrp:default"


@pytest.fixture
def ctx() -> Any:
    global CREATED
    BUILT.clear()
    CREATED = asyncio.Event()  # (an event belongs to the loop of its test)
    return Context("n1", None, Bus("n1"), Api(), Services(), None, None, None, DaemonConfig("n1"),  # type: ignore
                   None)  # type: ignore[arg-type]


def make(ctx: Any) -> deferred.Deferred:
    return deferred.Deferred(ctx, "vrrp", f"{__name__}:create", SERVICE)


def test_the_daemon_registers_the_agents_deferred_and_svcmgr_does_not_import_them() -> None:
    assert "svcmgr.deferred:vrrp" in COMPONENTS and "svcmgr.deferred:lb" in COMPONENTS
    assert not any(c.startswith(("vrrp.", "lb.")) for c in COMPONENTS)
    assert deferred.vrrp(object()).service == KEEPALIVED  # type: ignore[arg-type, union-attr]
    assert deferred.lb(object()).service == HAPROXY  # type: ignore[arg-type, union-attr]


@pytest.mark.parametrize("how", ["node", "manifest", "service"])
def test_configured_at_start_the_agent_is_built_and_set_up_at_once(ctx: Any, how: str) -> None:
    if how == "node":
        ctx.config = DaemonConfig("n1", {"vrrp": object()})
    elif how == "manifest":
        ctx.services.specs_["site/web"] = SimpleNamespace(extensions={"vrrp": {}})
    else:
        ctx.services.instances.add(SERVICE)
    d = make(ctx)
    d.setup()
    assert [a.calls for a in BUILT] == [["setup"]]
    assert set(ctx.api.ops) == {"vrrp.show", "vrrp.config"}
    assert d.statistics() == {"available": True}


async def test_unconfigured_nothing_is_built_until_an_import_configures_it(ctx: Any) -> None:
    subs: list[Any] = []
    subscribe = ctx.bus.subscribe
    ctx.bus.subscribe = lambda *prefixes: subs.append((prefixes, subscribe(*prefixes))) or subs[-1][1]
    d = make(ctx)
    d.setup()
    assert [p for p, _ in subs] == [(SVC_IMPORTED,)]
    ctx.services.specs_["site/db"] = SimpleNamespace(extensions={"lb": {}})  # another agent's section
    task = asyncio.create_task(d.run())
    ctx.bus.emit(SVC_IMPORTED, "svc:/site/db")
    await asyncio.sleep(0.01)
    assert BUILT == [] and d.statistics() == {"built": False}
    ctx.services.specs_["site/web"] = SimpleNamespace(extensions={"vrrp": {}})
    ctx.bus.emit(SVC_IMPORTED, "svc:/site/web")
    await until_running()
    assert BUILT[0].calls == ["setup", "run"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert subs[0][1].closed  # the deferred's own subscription, once the agent is built


async def test_a_reload_that_adds_the_section_builds_the_agent_and_later_reloads_reach_it(
        ctx: Any) -> None:
    d = make(ctx)
    d.setup()
    task = asyncio.create_task(d.run())
    d.reconfigure(ctx.config)  # still nothing
    await asyncio.sleep(0.01)
    assert BUILT == []
    ctx.config = DaemonConfig("n1", {"vrrp": object()})  # the daemon sets ctx.config, then reconfigures
    d.reconfigure(ctx.config)
    await until_running()
    ctx.config = DaemonConfig("n1", {"vrrp": object()}, source="again")
    d.reconfigure(ctx.config)
    assert BUILT[0].calls == ["setup", "run", "reconfigure"]
    assert BUILT[0].ctx.config is ctx.config and BUILT[0].ctx.api is not ctx.api
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_an_operation_builds_the_agent_and_gets_its_answer(ctx: Any) -> None:
    d = make(ctx)
    d.setup()
    assert set(ctx.api.ops) == {"vrrp.show", "vrrp.config"} and BUILT == []
    task = asyncio.create_task(d.run())
    assert await ctx.api.ops["vrrp.show"](None, {"names": []}) == {"from": "agent", "req": {"names": []}}
    await until_running()
    assert len(BUILT) == 1 and BUILT[0].calls == ["setup", "run"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_a_build_without_the_package_has_no_component(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deferred.importlib.util, "find_spec", lambda name: None)
    assert deferred.vrrp(object()) is None  # type: ignore[arg-type]


async def until_running() -> None:
    async with asyncio.timeout(5):
        await CREATED.wait()
        await BUILT[0].running.wait()
    assert len(BUILT) == 1, BUILT
