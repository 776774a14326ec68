"""A real daemon builds the VRRP and load-balancer agents only once something configures them.

Whether jinja2 (which only those agents render with) is in the daemon is read from the
daemon's own memory map: markupsafe's compiled speedups, which jinja2 loads. No daemon
here is given anything keepalived or HAProxy could run: the configuration that builds
the VRRP agent names a keepalived that does not exist (as tests/integration/test_vrrp_daemon.py).
"""

from __future__ import annotations

import importlib.util
import textwrap
import time

import pytest

WEB = """
name = "site/web"
duration = "child"
[methods.start]
exec = ["sleep", "1000"]
"""

VRRP = """
[vrrp]
keepalived = "/nonexistent/keepalived"
[vrrp.instances.web]
interface = "eth0"
router_id = 51
addresses = ["192.0.2.10/24"]
"""


def speedups() -> str:
    spec = importlib.util.find_spec("markupsafe._speedups")
    if spec is None or not spec.origin or not spec.origin.endswith(".so"):
        pytest.skip("markupsafe has no compiled speedups here: the daemon's map cannot show jinja2")
    return spec.origin


def mapped(pid: int, path: str) -> bool:
    with open(f"/proc/{pid}/maps") as f:
        return path in f.read()


def test_unconfigured_the_agents_are_not_loaded_and_their_operations_still_answer(daemon):
    so = speedups()
    daemon.start()
    assert daemon.call("ping")["pid"] == daemon.pid
    assert not mapped(daemon.pid, so), "jinja2 loaded in a daemon that configures neither VRRP nor LB"
    show = daemon.call("vrrp.show")
    assert show["node"] and "available" in show and show.get("routers", []) == []
    assert mapped(daemon.pid, so)  # the operation built the agent, which answers as always
    assert "available" in daemon.call("lb.config")


def test_a_reload_that_adds_vrrp_builds_the_agent_with_the_new_configuration(daemon):
    so = speedups()
    cfg = daemon.root / "node.toml"
    cfg.write_text("")
    daemon.manifest("web.toml", WEB)
    daemon.start("--config", str(cfg))
    daemon.wait_state("svc:/site/web:default", "online")
    assert not mapped(daemon.pid, so)
    cfg.write_text(textwrap.dedent(VRRP))
    daemon.call("reload")
    deadline = time.monotonic() + 10
    while "VRRP instance(s) declared, but keepalived is not installed" not in daemon.log_text():
        assert time.monotonic() < deadline, daemon.log_text()[-2000:]
        time.sleep(0.05)
    assert mapped(daemon.pid, so)
    r = daemon.cli("vrrp.cli.vrrpadm", "show-router")
    assert r.returncode == 1 and "/nonexistent/keepalived" in r.stderr and "not installed" in r.stderr
    assert daemon.state("svc:/site/web:default") == "online"
