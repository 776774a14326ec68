"""``svcs --fleet`` and ``fmadm faulty --fleet``: two real nodes on two state folders, one broker."""

from __future__ import annotations

import argparse
import json

from export_helpers import SLEEP_MANIFEST, mqtt_status, start_node, wait_for

CASE1 = "11111111-2222-4333-8444-555555555555"


def _two_nodes(svcmgrd, broker):
    n1, n2 = svcmgrd(), svcmgrd()
    n1.manifest("a.toml", SLEEP_MANIFEST.format(name="site/a"))
    n1.manifest("shared.toml", SLEEP_MANIFEST.format(name="site/shared"))
    n2.manifest("b.toml", SLEEP_MANIFEST.format(name="site/b"))
    n2.manifest("shared.toml", SLEEP_MANIFEST.format(name="site/shared"))
    start_node(n1, "--node", "alpha", "--mqtt", broker.url, "--metrics", "")
    start_node(n2, "--node", "beta", "--mqtt", broker.url, "--metrics", "")
    for d in (n1, n2):
        d.wait_state("svc:/site/shared:default", "online")
        wait_for(lambda d=d: mqtt_status(d)["connected"] and mqtt_status(d)["outbox"]["depth"] == 0, 15, "sent")
    return n1, n2


def test_second_node_shows_up_in_svcs_fleet(svcmgrd, mosquitto):
    broker = mosquitto()
    n1, n2 = _two_nodes(svcmgrd, broker)
    r = n1.cli("svcs", "--fleet", "--mqtt", broker.url, check=True)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NODE", "STATE", "STIME", "FMRI"]
    rows = [line.split() for line in lines[1:]]
    got = {(row[0], row[3]) for row in rows}
    assert got == {("alpha", "svc:/site/a:default"), ("alpha", "svc:/site/shared:default"),
                   ("beta", "svc:/site/b:default"), ("beta", "svc:/site/shared:default")}
    assert all(row[1] == "online" for row in rows)
    assert [row[0] for row in rows] == sorted(row[0] for row in rows), "grouped by node"

    # -H -o and FMRI operands, as svcs takes them
    r = n1.cli("svcs", "--fleet", "--mqtt", broker.url, "-H", "-o", "state,fmri", "shared", check=True)
    assert [line.split() for line in r.stdout.splitlines()] == [
        ["alpha", "online", "svc:/site/shared:default"], ["beta", "online", "svc:/site/shared:default"]]

    # the broker found through the local daemon when --mqtt is not given
    r = n2.cli("svcs", "--fleet", "--json", check=True)
    items = json.loads(r.stdout)
    assert {(i["node"], i["fmri"]) for i in items} == got
    assert all(set(i) == {"node", "state", "stime", "fmri", "node_status"} for i in items)
    assert {i["node_status"] for i in items} == {"online"}

    # a stopped node: its last picture stays, and the listing says it is offline
    n2.cli("svcadm", "disable", "-s", "svc:/site/b:default", check=True)
    assert n2.stop() == 0
    r = n1.cli("svcs", "--fleet", "--mqtt", broker.url, "-a", check=True)
    assert "node beta is offline" in r.stderr
    beta = {row[3]: row[1] for row in (line.split() for line in r.stdout.splitlines()[1:]) if row[0] == "beta"}
    assert beta["svc:/site/b:default"] == "disabled"
    # without -a a disabled instance is left out, as svcs does
    r = n1.cli("svcs", "--fleet", "--mqtt", broker.url, "-H", "-o", "fmri", check=True)
    assert ["beta", "svc:/site/b:default"] not in [line.split() for line in r.stdout.splitlines()]


def test_fmadm_fleet_lists_every_nodes_open_cases(svcmgrd, mosquitto, capsys):
    from svcmgr.cli.fleet import fmadm_fleet

    broker = mosquitto()
    _, n2 = _two_nodes(svcmgrd, broker)
    case = {"uuid": CASE1, "class": "fault.svc.flapping", "severity": "major", "msgid": "SVC-8000-3Q",
            "suspects": [{"fault": "fault.svc.flapping", "resource": "svc:/site/b:default", "certainty": 100}],
            "affected": ["svc:/site/b:default"], "state": "open"}
    n2.call("test.emit", **{"class": "list.suspect", "data": case})
    wait_for(lambda: mqtt_status(n2)["outbox"]["depth"] == 0 and mqtt_status(n2)["queued"] > 0, 15, "sent")
    args = argparse.Namespace(mqtt=broker.url, config=None, root=None, json=False, H=False)
    assert fmadm_fleet(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["NODE", "TIME"]
    row = next(line for line in out if CASE1 in line).split()
    assert row[0] == "beta" and "SVC-8000-3Q" in row and "major" in row and "svc:/site/b:default" in row

    args.json = True
    assert fmadm_fleet(args) == 0
    items = json.loads(capsys.readouterr().out)
    assert [(i["node"], i["uuid"], i["class"]) for i in items] == [("beta", CASE1, "fault.svc.flapping")]

    n2.call("test.emit", **{"class": "list.repaired", "data": {**case, "state": "repaired"}})
    wait_for(lambda: mqtt_status(n2)["outbox"]["depth"] == 0, 15, "sent")
    assert fmadm_fleet(args) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_fleet_without_a_broker_is_a_usage_error(svcmgrd):
    d = svcmgrd()
    start_node(d, "--node", "solo", "--metrics", "")
    r = d.cli("svcs", "--fleet")
    assert r.returncode == 2 and "no MQTT broker" in r.stderr
    r = d.cli("svcs", "--fleet", "--mqtt", "http://example.com")
    assert r.returncode == 2 and "mqtt:// or mqtts://" in r.stderr
    r = d.cli("svcs", "--mqtt", "mqtt://127.0.0.1:1")
    assert r.returncode == 2 and "go with --fleet" in r.stderr


def test_fleet_reports_an_unreachable_broker(svcmgrd):
    from export_helpers import free_port

    d = svcmgrd()
    start_node(d, "--node", "solo", "--metrics", "")
    r = d.cli("svcs", "--fleet", "--mqtt", f"mqtt://127.0.0.1:{free_port()}")
    assert r.returncode == 1 and "cannot read from the broker" in r.stderr
