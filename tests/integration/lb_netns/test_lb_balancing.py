"""Load balancing over supervised services, on real HAProxy and keepalived in network namespaces.

A client loop in the bridge's namespace sends requests (keep-alive off, 300 a second,
each answered after 20 ms) to the virtual address while a test acts on a node; every
assertion looks at what the client saw, at HAProxy's own view (``show stat`` through
``lbadm``) and at the addresses on each node. The figures are printed (``-s``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from lb.cluster import APP, DEP, HAPROXY, VIP, node_config
from vrrp.lab import wait_for

from hostile import Attacker, why_not

pytestmark = pytest.mark.xdist_group("netns")  # make test runs modules in parallel: this group runs on one worker

A, B, C = APP


def report(what: str, res, **extra) -> None:
    print(f"\n{what}: {res.summary()} {extra}")


def test_disable_under_load_drains_first_and_fails_nothing(cluster):
    n1 = cluster.d[1]
    res, _, _ = cluster.load(lambda: n1.call("disable", fmris=[B]))
    report("svcadm disable of a backend under load", res)
    assert res.total >= 800 and res.failures == [], res.summary()
    assert res.servers().get("b", 0) > 50, "b served until it was drained"
    wait_for(lambda: n1.state(B) == "disabled", 20, "b disabled")
    s = cluster.servers(1)[B]
    assert s["sent"] == "maint" and s["haproxy"]["status"] == "MAINT" and s["drains"] >= 1
    assert s["last_drain"]["connections_left"] == 0
    out = n1.cli("lb.cli.lbadm", "show", "web")
    assert out.returncode == 0, out.stderr
    row = next(ln.split() for ln in out.stdout.splitlines() if ln.split()[-1] == B)
    assert row[4:8] == ["disabled", "maint", "MAINT", "0"], out.stdout
    metrics = cluster.metrics(1)
    assert 'svcmgr_lb_server_state{frontend="web",server="site.app:b",state="maint"} 1.0' in metrics
    assert 'svcmgr_lb_server_state{frontend="web",server="site.app:a",state="ready"} 1.0' in metrics
    assert 'svcmgr_lb_drains_total{frontend="web",result="drained",server="site.app:b"} 1.0' in metrics
    promtool = shutil.which("promtool")
    if promtool:
        check = subprocess.run([promtool, "check", "metrics"], input=metrics, capture_output=True, text=True,
                               check=False)
        assert check.returncode == 0, check.stdout + check.stderr
    n1.call("enable", fmris=[B])
    cluster.wait_ready(1)


def _kill9(cluster, fmri: str):
    n1 = cluster.d[1]
    pid = n1.pids(fmri)[0]
    scur = cluster.servers(1)[fmri]["haproxy"]["scur"]
    os.kill(pid, signal.SIGKILL)
    return scur


def test_kill9_of_a_backend_fails_only_what_was_in_flight_and_nothing_when_idempotent(cluster):
    res, scur, t_kill = cluster.load(lambda: _kill9(cluster, A))
    in_flight = res.in_flight(t_kill)
    report("kill -9 of a backend under load (frontend web)", res, in_flight_at_kill=in_flight,
           haproxy_scur_just_before=scur)
    assert len(res.failures) <= in_flight, res.summary()
    # The failures are the requests that were on it when it died, not the ones after.
    assert all(r[0] <= t_kill + 0.05 for r in res.failures), res.failures
    cluster.wait_ready(1)

    res, scur, t_kill = cluster.load(lambda: _kill9(cluster, A), port=81)
    report("kill -9 of a backend under load (frontend webi, idempotent)", res,
           in_flight_at_kill=res.in_flight(t_kill), haproxy_scur_just_before=scur)
    assert res.failures == [], res.summary()
    assert cluster.d[1].call("show", fmri=A)["restarts"] >= 2
    cluster.wait_ready(1)


def test_a_backend_whose_dependency_is_disabled_is_drained_then_stopped(cluster):
    n1 = cluster.d[1]
    drains = cluster.servers(1)[C]["drains"]
    res, _, _ = cluster.load(lambda: n1.call("disable", fmris=[DEP]))
    report("dependency of a backend disabled under load", res)
    assert res.failures == [], res.summary()
    wait_for(lambda: n1.state(C) == "offline", 20, "c offline (its dependency is disabled)")
    s = cluster.servers(1)[C]
    assert s["drains"] == drains + 1 and s["haproxy"]["status"] == "MAINT"
    n1.call("enable", fmris=[DEP])
    cluster.wait_ready(1)


def test_a_reload_keeps_a_backend_in_maintenance(cluster):
    n1 = cluster.d[1]
    n1.call("disable", fmris=[B])
    wait_for(lambda: cluster.status(1, B) == "MAINT", 20, "b in MAINT")
    before = n1.call("lb.show")
    master = n1.pids(HAPROXY)
    # A change that needs a reload: the node adds slow start to the frontend.
    n1.reload(node_config(1, '\n[lb.frontends.web]\nslowstart = "2s"\n'))
    wait_for(lambda: n1.call("lb.show")["config"]["reloads"] > before["config"]["reloads"], 20, "a reload")
    assert "slowstart 2000ms" in n1.call("lb.config")["text"]
    time.sleep(0.5)  # the new worker answers
    assert cluster.status(1, B) == "MAINT", "a reload must not put a backend in maintenance back into rotation"
    assert cluster.status(1, A) == "UP" and cluster.status(1, C) == "UP"
    assert set(master) & set(n1.pids(HAPROXY)), "the master process stays (a reload, not a restart)"
    res, _, _ = cluster.load(seconds=1.0)
    assert res.failures == [] and "b" not in res.servers(), res.summary()
    n1.reload(node_config(1))
    # the next test compares against the configuration it finds: the reload back must be applied first
    wait_for(lambda: "slowstart" not in n1.call("lb.config")["text"], 20, "the slow start gone again")
    n1.call("enable", fmris=[B])
    cluster.wait_ready(1)


def test_a_render_haproxy_refuses_leaves_the_running_configuration_in_place(cluster):
    n1 = cluster.d[1]
    good = n1.call("lb.config")["text"]
    # Valid to svcmgr, refused by haproxy -c: a new backend whose name does not resolve.
    for cmd in (("addpg", "lb", "application"), ("setprop", "lb/address", "=", "astring:", "nohost.invalid:9")):
        out = n1.cli("svcmgr.cli.svccfg", "-s", DEP, *cmd)  # a new group needs addpg, as in svccfg
        assert out.returncode == 0, out.stderr
    n1.call("refresh", fmris=[DEP])
    n1.reload(node_config(1, f'\n[lb.frontends.extra]\nbind = "{VIP}:82"\nbackends = ["{DEP}"]\n'))
    wait_for(lambda: n1.call("lb.show")["config"]["status"] == "rejected", 20, "the rejection")
    cfg = n1.call("lb.show")["config"]
    assert cfg["stage"] == "config-test" and "nohost.invalid" in cfg["error"], cfg
    assert n1.call("lb.config")["text"] == good
    assert "server site.dep:default nohost.invalid:9" in n1.call("lb.config", rejected=True)["text"]
    shown = n1.cli("lb.cli.lbadm", "show")
    assert shown.returncode == 0 and "rejected" in shown.stderr and "nohost.invalid" in shown.stderr
    res, _, _ = cluster.load(seconds=1.0)
    assert res.failures == [] and set(res.servers()) == {"a", "b", "c"}, res.summary()
    n1.reload(node_config(1))
    wait_for(lambda: n1.call("lb.show")["config"]["status"] == "applied", 20, "applied again")
    cluster.wait_ready(1)


def test_a_planned_balancer_move_without_a_gap_and_link_loss_measured(cluster):
    lab, n1 = cluster.lab, cluster.d[1]
    cluster.wait_vip([1])
    res, _, _ = cluster.load(lambda: n1.call("disable", fmris=[HAPROXY]), seconds=3.0)
    report("planned move of the balancer (svcadm disable of HAProxy on the master)", res,
           most_in_flight=res.most_in_flight())
    assert cluster.holders() == [2]
    # No gap: n1 serves until n2 holds the address, far less than a failover's 3 adverts (0.3 s) and
    # the backup's skew. Connections in flight when the clients' ARP entry switches are reset by n2
    # (nothing carries TCP state between the nodes): at most one lot of them.
    assert res.gap() < 0.3, res.summary()
    assert len(res.failures) <= res.most_in_flight(), res.summary()
    r = n1.call("vrrp.show")["routers"][0]
    assert r["state"] in ("backup", "fault") and HAPROXY in r["moving_for"]
    # Its soft stop lasts until the connections the move cut off time out (at most drain_timeout).
    wait_for(lambda: n1.state(HAPROXY) == "disabled", 40, "HAProxy disabled on n1")
    n1.call("enable", fmris=[HAPROXY])
    wait_for(lambda: n1.state(HAPROXY) == "online", 20, "HAProxy online on n1")
    cluster.wait_vip([1])
    cluster.wait_ready(1)

    res, _, _ = cluster.load(lambda: lab.cut(1), seconds=3.0)
    report("balancer node's link lost (advert 100 ms)", res, most_in_flight=res.most_in_flight())
    assert cluster.holders() in ([1, 2], [2]), "n2 took the address"
    assert res.gap() < 2.0, res.summary()
    lab.heal(1)
    cluster.wait_vip([1])  # preempt: back on n1 (it drops what it held while cut off)
    cluster.wait_ready(1)
    assert VIP in lab.addresses(1)


def test_the_runtime_api_is_root_only(cluster):
    why = why_not()
    if why:
        pytest.skip(why)
    root = cluster.d[1].root
    attacker = Attacker()
    try:
        r = attacker.python("""
            import socket, sys
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(sys.argv[1])
                s.sendall(b"set server web/site.app:a state maint\\n")
                print("connected")
            except OSError as e:
                print(type(e).__name__)
            """, str(root / "run" / "lb" / "admin.sock"))
        assert r.stdout.strip() == "PermissionError", r.stdout + r.stderr
        for f in ("haproxy.cfg", "server-state"):
            r = attacker.run("/bin/cat", str(root / "lib" / "lb" / f))
            assert r.returncode != 0 and "Permission denied" in r.stderr, r
        out = attacker.cli(root, "lbadm", "show")
        assert out.returncode == 0 and "site.app:a" in out.stdout, out.stdout + out.stderr
        assert cluster.status(1, A) == "UP"
    finally:
        attacker.close()
