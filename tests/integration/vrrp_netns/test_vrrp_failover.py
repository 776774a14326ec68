"""Virtual IPs follow service health across three real nodes (namespaces), through real keepalived.

Every assertion looks at the real thing: the addresses on each node's eth0, the
node that answers HTTP on the virtual address from the bridge, keepalived's
processes, and what each node's svcmgrd reports (from keepalived's notify FIFO).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from vrrp.lab import wait_for

pytestmark = pytest.mark.xdist_group("netns")  # make test runs modules in parallel: this group runs on one worker

WEB = "svc:/site/web:default"
KA = "svc:/network/vrrp:default"


def test_one_node_holds_each_address(cluster):
    for name in ("web", "api", "db"):
        cluster.wait_settled(name, 1)
    assert cluster.fetch("web") == "n1"
    out = cluster.d[2].cli("vrrp.cli.vrrpadm", "show-router")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "PRIO", "EPRIO", "VRID", "IFACE", "ADV", "PEERS", "LAST",
                                "VIRTUAL_IPS"]
    rows = {ln.split()[0]: ln.split() for ln in lines[1:]}
    assert rows["web"][1:8] == ["BACKUP", "100", "100", "51", "eth0", "500ms", "multicast"]
    assert rows["web"][-1] == "10.231.0.100/24"
    r = cluster.d[1].routers()["web"]
    assert [t["state"] for t in r["transitions"]][-2:] == ["backup", "master"]
    assert r["last_transition"] is not None


def test_stopping_the_followed_service_moves_the_address_and_preempt_decides_the_way_back(cluster):
    for name in ("web", "api", "db"):
        cluster.wait_settled(name, 1)
    n1 = cluster.d[1]
    n1.call("disable", fmris=[WEB])
    # weight 0: n1 goes to FAULT; negative weight: n1's priority drops below n2's.
    for name in ("web", "api", "db"):
        cluster.wait_settled(name, 2)
    r = n1.routers()
    assert r["web"]["state"] == "fault" and r["web"]["effective_priority"] == 0
    assert r["db"]["state"] == "backup" and r["db"]["effective_priority"] == 50
    assert {f["fmri"]: f["state"] for f in r["db"]["follows"]} == {WEB: "disabled"}
    wait_for(lambda: cluster.fetch("web") == "n2", 10, "n2 to answer on the web address")

    n1.call("enable", fmris=[WEB])
    wait_for(lambda: n1.state(WEB) == "online", 20, "site/web online again on n1")
    cluster.wait_settled("web", 1)  # preempt: back to the highest priority
    cluster.wait_settled("db", 1)
    # nopreempt: api stays where it went, even once n1 is healthy and ready again.
    wait_for(lambda: n1.routers()["api"]["state"] == "backup", 20, "api backup on n1")
    time.sleep(3)  # several master-down intervals (about 1.7s) without a takeover
    assert cluster.holders("api") == [2] and cluster.masters("api") == [2]


def test_kill9_of_keepalived_on_the_master_moves_the_address_and_svcmgr_restarts_it(cluster):
    for name in ("web", "api"):
        cluster.wait_settled(name, 1)
    n1 = cluster.d[1]
    parent, child = n1.keepalived_pid(), n1.vrrp_pid()
    assert parent in n1.pids(KA) and child is not None
    os.kill(child, signal.SIGKILL)  # a crash of the VRRP process (killing the parent is a clean stop)
    # The dead keepalived's addresses are removed from n1 at once (not left beside the new master's).
    for name in ("web", "api"):
        wait_for(lambda name=name: cluster.masters(name) == [2] and cluster.holders(name) == [2], 15,
                 f"{name} to move to n2", interval=0.01)
    # svcmgr restarts keepalived (a new parent, online again), which drops what the dead one left behind.
    wait_for(lambda: n1.keepalived_pid() not in (None, parent) and n1.state(KA) == "online", 20,
             "keepalived restarted on n1")
    assert n1.vrrp_pid() not in (None, child)
    assert n1.call("show", fmri=KA)["restarts"] == 1
    cluster.wait_settled("web", 1)  # preempt: back on n1 once its keepalived runs again (after the hold)
    cluster.wait_settled("api", 2)  # nopreempt: it stays on n2
    # The restarted keepalived was held in FAULT, so it did not race n2 for the addresses.
    states = [t["state"] for t in n1.routers()["api"]["transitions"]]
    assert states[-4:] == ["master", "stop", "fault", "backup"], states
    assert n1.call("vrrp.show")["hold"]["held"] is False


def test_kill9_of_the_followed_service_moves_the_address(cluster):
    cluster.wait_settled("api", 1)
    n1 = cluster.d[1]
    (pid,) = n1.pids(WEB)
    os.kill(pid, signal.SIGKILL)
    cluster.wait_settled("api", 2)  # nopreempt: it stays on n2 once site/web is back on n1
    wait_for(lambda: n1.state(WEB) == "online" and n1.pids(WEB) not in ([], [pid]), 20, "site/web restarted")
    states = [t["state"] for t in n1.routers()["api"]["transitions"]]
    assert states[-3:] == ["master", "fault", "backup"], states


def test_cut_link_gives_two_masters_and_healing_returns_to_one(cluster):
    cluster.wait_settled("web", 1)
    cluster.lab.cut(1)
    wait_for(lambda: cluster.masters("web") == [1, 2], 15, "two masters for web (n1 cut off, n2 took over)")
    assert cluster.holders("web") == [1, 2]
    cluster.lab.heal(1)
    cluster.wait_settled("web", 1)
    assert cluster.fetch("web") == "n1"


def test_rejected_configuration_leaves_the_running_one_in_place(cluster):
    cluster.wait_settled("web", 1)
    n1 = cluster.d[1]
    conf = n1.root / "lib" / "vrrp" / "keepalived.conf"
    before = conf.read_text()
    parent, child = n1.keepalived_pid(), n1.vrrp_pid()
    reloads = n1.call("vrrp.show")["config"]["reloads"]

    # Valid to svcmgr, but there is no eth9 on n1: keepalived --config-test refuses it.
    cluster.reconfigure(1, web='priority = 150\ninterface = "eth9"')
    wait_for(lambda: n1.call("vrrp.show")["config"]["status"] == "rejected", 10, "the rejection on n1")
    cfg = n1.call("vrrp.show")["config"]
    assert cfg["stage"] == "config-test" and "eth9" in cfg["error"] and cfg["reloads"] == reloads
    assert conf.read_text() == before
    assert (n1.keepalived_pid(), n1.vrrp_pid()) == (parent, child), "keepalived was neither reloaded nor restarted"
    assert cluster.holders("web") == [1] and n1.routers()["web"]["state"] == "master"
    out = n1.cli("vrrp.cli.vrrpadm", "show-router", "web")
    assert out.returncode == 0 and "rejected" in out.stderr and "eth9" in out.stderr, out
    assert out.stdout.splitlines()[1].split()[:2] == ["web", "MASTER"]
    assert n1.cli("vrrp.cli.vrrpadm", "show-config").stdout == before
    assert "interface eth9" in n1.cli("vrrp.cli.vrrpadm", "show-config", "--rejected").stdout

    # The running configuration still works: the address still follows the service.
    n1.call("disable", fmris=[WEB])
    cluster.wait_settled("web", 2)
    n1.call("enable", fmris=[WEB])
    cluster.wait_settled("web", 1)

    # A good change is checked, installed and reloaded (SIGHUP: the same keepalived, a new priority).
    cluster.reconfigure(1, web="priority = 160")
    wait_for(lambda: n1.call("vrrp.show")["config"]["status"] == "applied", 10, "the new configuration on n1")
    show = n1.call("vrrp.show")
    assert show["config"]["reloads"] == reloads + 1 and show["config"]["error"] is None
    assert "priority 160" in conf.read_text()
    assert {r["name"]: r["configured_priority"] for r in show["routers"]}["web"] == 160
    assert n1.keepalived_pid() == parent
    cluster.wait_settled("web", 1)
