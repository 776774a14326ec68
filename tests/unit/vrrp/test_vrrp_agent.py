"""The agent in process on the component interface alone: a real bus, services faked (``fakes``), real
keepalived checks.

No engine, restarter, reaper or repository: nothing starts. keepalived is only ever
*checked* here (``--config-test`` touches no network), never run, since this test
lives in the host's namespace. The namespace tests run it for real.
"""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
from pathlib import Path

import pytest

from svcmgr.api import ApiError, Caller
from svcmgr.bus import Bus
from svcmgr.config import load_config
from svcmgr.events import Event
from svcmgr.loader import load_bytes
from svcmgr.paths import Paths
from vrrp import keepalived as ka
from vrrp.agent import SERVICE, create

from fakes import FakeServices, context

WEB = "svc:/site/web:default"
ROOT = Caller(os.getpid(), 0, 0, frozenset({0}), True)


def host_interface() -> str | None:
    """A non-loopback interface of this namespace, for keepalived's check (which only looks it up)."""
    for name in sorted(os.listdir("/sys/class/net")):
        if name != "lo" and len(name) <= 15 and name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            return name
    return None


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.paths = Paths.for_root(str(tmp / "root"))
        self.paths.make()
        self.bus = Bus("t1")
        self.services = FakeServices()
        self.config_file = tmp / "node.toml"

    def configure(self, text: str):
        self.config_file.write_text(textwrap.dedent(text))
        return load_config(str(self.config_file))

    def context(self, cfg):
        return context(cfg, self.paths, services=self.services, bus=self.bus)


@pytest.fixture
async def stack(tmp_path):
    if ka.find_keepalived() is None:
        pytest.skip("keepalived not installed")
    s = Stack(tmp_path)
    (spec,) = load_bytes(b'name = "site/web"\n[methods.start]\nexec = ["sleep", "1000"]\n', str(tmp_path / "web.toml"))
    s.services.add(spec)
    return s


def node_toml(iface: str, *, extra: str = "") -> str:
    return f"""
        [vrrp.instances.web]
        interface = "{iface}"
        router_id = 51
        addresses = ["192.0.2.10/24"]
        priority = 120
        follows = ["{WEB}", {{ fmri = "svc:/site/db:default", weight = -30 }}]
        {extra}
    """


async def drain(sub, cls_prefix: str, timeout: float = 2.0) -> list[Event]:
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ev = sub.get_nowait()
        if ev is None:
            await asyncio.sleep(0.01)
            continue
        if ev.cls.startswith(cls_prefix):
            out.append(ev)
    return out


async def test_rejected_configuration_keeps_the_running_one_and_raises_an_ereport(stack):
    iface = host_interface()
    if iface is None:
        pytest.skip("no network interface here for keepalived's check")
    agent = create(stack.context(stack.configure(node_toml(iface))))
    agent.setup()
    try:
        lay = agent.layout
        good = Path(lay.conf).read_text()
        assert f"interface {iface}" in good
        show = await agent.op_show(ROOT, {})
        assert show["config"]["status"] == "applied" and [r["name"] for r in show["routers"]] == ["web"]
        assert show["routers"][0]["configured_priority"] == 120
        # keepalived itself is imported as a service, with the binary the agent found.
        spec = stack.services.specs()["svc:/network/vrrp"]
        assert spec.context.environment["KEEPALIVED"] == agent.binary
        assert stack.services.instance(SERVICE).state.value == "uninitialized"  # nothing starts here

        sub = stack.bus.subscribe("ereport.vrrp")
        agent.settings = stack.configure(node_toml("nosuch0")).section("vrrp")
        assert await agent.apply() == "rejected"
        (ev,) = await drain(sub, "ereport.vrrp.config.rejected", 0.2)
        assert ev.resource == SERVICE and ev.data["stage"] == "config-test" and "nosuch0" in ev.data["error"]
        assert Path(lay.conf).read_text() == good, "the running configuration must stay"
        assert "interface nosuch0" in Path(lay.rejected).read_text()
        show = await agent.op_show(ROOT, {})
        assert show["config"]["status"] == "rejected" and "nosuch0" in show["config"]["error"]
        assert show["routers"][0]["interface"] == iface, "vrrpadm shows what keepalived runs"
        cfg = await agent.op_config(ROOT, {"rejected": True})
        assert "interface nosuch0" in cfg["text"]

        # The same bad configuration again: still refused, no second ereport.
        assert await agent.apply() == "rejected"
        assert await drain(sub, "ereport.vrrp", 0.2) == []

        # A configuration invalid as a whole (an instance the node declares half) is refused before rendering.
        agent.settings = stack.configure(node_toml(iface, extra="[vrrp.instances.half]\npriority = 10")
                                         ).section("vrrp")
        assert await agent.apply() == "rejected"
        (ev,) = await drain(sub, "ereport.vrrp.config.rejected", 0.2)
        assert ev.data["stage"] == "validate" and "vrrp.instances.half.interface: is required" in ev.data["error"]

        # Back to the running configuration: nothing to reload, the rejection is cleared.
        agent.settings = stack.configure(node_toml(iface)).section("vrrp")
        assert await agent.apply() == "unchanged"
        show = await agent.op_show(ROOT, {})
        assert show["config"]["status"] == "applied" and show["config"]["error"] is None
    finally:
        agent.fifo.close()


async def test_health_reaches_the_track_files_and_states_come_back_as_events(stack):
    iface = host_interface()
    if iface is None:
        pytest.skip("no network interface here for keepalived's check")
    agent = create(stack.context(stack.configure(node_toml(iface))))
    agent.setup()
    try:
        web_track = Path(agent.layout.track_file(WEB))
        db_track = Path(agent.layout.track_file("svc:/site/db:default"))
        assert web_track.read_text() == "1\n" and db_track.read_text() == "1\n"  # not online yet
        agent.on_event(Event("svc.state.online", WEB, {"state": "online"}))
        assert web_track.read_text() == "0\n"
        agent.on_event(Event("list.suspect", "", {"uuid": "c-1", "suspects": [{"fmri": WEB, "certainty": 1.0}]}))
        assert web_track.read_text() == "1\n"
        show = await agent.op_show(ROOT, {"names": ["web"]})
        follows = {f["fmri"]: f for f in show["routers"][0]["follows"]}
        assert follows[WEB]["state"] == "retired by case c-1" and not follows[WEB]["healthy"]
        agent.on_event(Event("list.repaired", "", {"uuid": "c-1"}))
        assert web_track.read_text() == "0\n"
        # The fault manager's own payload: a case announced again after a restart, then repaired.
        case = {"uuid": "c-2", "state": "solved", "impacted": [],
                "suspects": [{"fault": "fault.svc.flapping", "resource": WEB, "certainty": 100}]}
        agent.on_event(Event("list.updated", "", case))
        assert web_track.read_text() == "1\n"
        agent.on_event(Event("list.updated", "", {**case, "state": "repaired"}))
        assert web_track.read_text() == "0\n"
        agent.on_event(Event("svc.state.degraded", WEB, {"state": "degraded"}))
        assert web_track.read_text() == "1\n"

        # State out: a line from keepalived becomes a vrrp.state event with instance, priority and time.
        sub = stack.bus.subscribe("vrrp.state")
        fd = os.open(agent.layout.fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b'INSTANCE "web" BACKUP 120\nINSTANCE "web" MASTER 120\nINSTANCE "web" BACKUP_PRIORITY 90\n'
                     b'INSTANCE "web" FAULT 90\n')
        os.close(fd)
        evs = await drain(sub, "vrrp.state", 0.3)
        assert [e.cls for e in evs] == ["vrrp.state.backup", "vrrp.state.master", "vrrp.state.fault"]
        assert all(e.resource == "vrrp:/web" and e.data["instance"] == "web" for e in evs)
        assert evs[1].data["priority"] == 120 and evs[1].data["previous"] == "backup"
        assert evs[1].data["addresses"] == ["192.0.2.10/24"] and isinstance(evs[1].data["time"], float)
        show = await agent.op_show(ROOT, {})
        r = show["routers"][0]
        assert r["state"] == "fault" and r["effective_priority"] == 0 and r["reported_priority"] == 90
        assert [t["state"] for t in r["transitions"]] == ["backup", "master", "fault"]
        assert r["last_transition"] is not None
        with pytest.raises(ApiError, match="no VRRP instance named 'nope'"):
            await agent.op_show(ROOT, {"names": ["nope"]})
    finally:
        agent.fifo.close()


async def test_without_keepalived_the_agent_is_idle_and_says_why(stack):
    cfg = stack.configure(node_toml("eth0").replace("[vrrp.instances.web]",
                                                               '[vrrp]\nkeepalived = "/nonexistent/keepalived"\n'
                                                               '[vrrp.instances.web]'))
    agent = create(stack.context(cfg))
    agent.setup()
    await agent.run()  # returns at once: nothing to do
    show = await agent.op_show(ROOT, {})
    assert show["available"] is False and "/nonexistent/keepalived not found" in show["reason"]
    assert not os.path.exists(agent.layout.conf) and "svc:/network/vrrp" not in stack.services.specs()


async def test_crash_hold_is_five_adverts_of_the_slowest_instance_unless_configured(stack):
    iface = host_interface()
    if iface is None:
        pytest.skip("no network interface here for keepalived's check")
    agent = create(stack.context(stack.configure(node_toml(iface, extra='advert_interval = "300ms"'))))
    agent.setup()
    try:
        assert agent.hold_time() == pytest.approx(1.5)
        assert Path(agent.layout.hold).read_text() == "0\n"
        agent.settings = stack.configure('[vrrp]\ncrash_hold = "0s"\n' + node_toml(iface)).section("vrrp")
        assert agent.hold_time() == 0
        agent.hold.set()  # a hold of 0s is no hold
        assert Path(agent.layout.hold).read_text() == "0\n"
    finally:
        agent.fifo.close()
