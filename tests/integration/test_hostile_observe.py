"""Hostile: any local user (docs/security.md, "start timings, the chain and the graph") reads the
timings, the chain and the graph, and sends malformed requests for them: the reads work with the
system interpreter alone, the bad requests get a clear error, and the daemon keeps its state."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

FAST = """
    name = "t/fast"
    duration = "child"
    [methods.start]
    exec = ["sleep", "1000"]
    """


def test_any_user_reads_timings_and_bad_requests_change_nothing(daemon, attacker):
    daemon.manifest("fast.toml", FAST)
    daemon.start()
    daemon.wait_state("svc:/t/fast:default", "online")
    before = daemon.instances()

    t = attacker.cli(daemon.root, "svcs", "-t", "--json")
    assert t.returncode == 0, t.stderr
    assert [s["fmri"] for s in json.loads(t.stdout)] == ["svc:/t/fast:default"]
    plot = attacker.cli(daemon.root, "svcs", "--plot")
    assert plot.returncode == 0 and ET.fromstring(plot.stdout).tag.endswith("svg")
    dot = attacker.cli(daemon.root, "svcs", "-G")
    assert dot.returncode == 0 and '"svc:/t/fast:default"' in dot.stdout

    bad = [
        ("timings", {"since": float("nan")}, "finite"),
        ("timings", {"until": float("inf")}, "finite"),
        ("timings", {"since": 10, "until": 5}, "before"),
        ("timings", {"boot": "1"}, "'boot' must be int"),
        ("timings", {"fmris": [1]}, "list of strings"),
        ("chain", {"fmri": ["x"]}, "'fmri' must be str"),
        ("graph", {"fmris": "svc:/t/fast"}, "'fmris' must be list"),
    ]
    for op, args, why in bad:
        reply = attacker.call(daemon.root, op, **args)
        assert reply["ok"] is False and reply["code"] == 2 and why in reply["error"], (op, args, reply)
    assert daemon.instances() == before
    assert daemon.call("timings", last=True)["starts"][0]["status"] == "online"
