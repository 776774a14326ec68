"""Seeing the system with real processes: start timings, the critical chain, the graph through
Graphviz, the boot chart as XML and in a real headless Chromium, and timings across a restart.

The known graph: ``slow`` says READY=1 one second after it starts; ``dep`` needs it; ``fast``
is up at once; ``either`` needs slow or fast; ``stuck`` needs a service that is not imported;
``opt`` optionally needs the disabled ``off``; the milestone needs dep, either and opt.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from svctest import REPO, Daemon, private_daemon, wait_until

SVG = "{http://www.w3.org/2000/svg}"
SLOW = ("import os, socket, time; time.sleep(1); s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
        "s.sendto(b'READY=1', os.environ['NOTIFY_SOCKET']); time.sleep(1000)")


def child(name: str, deps: str = "", extra: str = "") -> str:
    return f'name = "{name}"\nduration = "child"\n{extra}\n[methods.start]\nexec = ["sleep", "1000"]\n{deps}'


def dep(name: str, grouping: str, *fmris: str, restart_on: str = "none") -> str:
    return (f'[[dependencies]]\nname = "{name}"\ngrouping = "{grouping}"\nrestart_on = "{restart_on}"\n'
            f"fmris = {json.dumps(list(fmris))}\n")


MANIFESTS = {
    "slow.toml": f'name = "t/slow"\nduration = "contract"\n[methods.start]\nexec = ["python3", "-c", '
                 f'{json.dumps(SLOW)}]\n[readiness]\nnotify = true\n',
    "dep.toml": child("t/dep", dep("slow", "require_all", "svc:/t/slow:default", restart_on="restart")),
    "fast.toml": child("t/fast"),
    "either.toml": child("t/either", dep("one", "require_any", "svc:/t/slow:default", "svc:/t/fast:default")),
    "stuck.toml": child("t/stuck", dep("missing", "require_all", "svc:/t/absent:default")),
    "off.toml": child("t/off", extra="[instances.default]\nenabled = false"),
    "opt.toml": child("t/opt", dep("maybe", "optional_all", "svc:/t/off:default")),
    "ms.toml": 'name = "milestone/t"\ntype = "milestone"\n' + dep(
        "all", "require_all", "svc:/t/dep:default", "svc:/t/either:default", "svc:/t/opt:default"),
}
INSTANCES = {f"svc:/{n}:default" for n in ("t/slow", "t/dep", "t/fast", "t/either", "t/stuck", "t/off", "t/opt",
                                            "milestone/t")}


@pytest.fixture(scope="module")
def known():
    """One daemon on the known graph for the whole module (its boot is what the tests look at)."""
    with private_daemon() as d:
        for name, text in MANIFESTS.items():
            d.manifest(name, text)
        d.start()
        d.wait_state("svc:/milestone/t:default", "online")
        yield d


def svcs_json(d: Daemon, *args: str):
    return json.loads(d.cli("svcs", *args, "--json", check=True).stdout)


def test_timings_are_ordered_and_plausible(known):
    last = {s["fmri"]: s for s in svcs_json(known, "-t")}
    assert set(last) == INSTANCES - {"svc:/t/off:default"}  # off never started: no record
    for s in last.values():
        points = [s["at"][p] for p in ("queued", "deps_met", "spawned", "ready", "online")]
        points = [v for v in points if v is not None]
        assert points == sorted(points), s
    slow, dep_, ms = last["svc:/t/slow:default"], last["svc:/t/dep:default"], last["svc:/milestone/t:default"]
    assert 0.95 <= slow["start"] < 2.0 and 0.95 <= slow["method"] < 2.0 and slow["wait"] < 0.5
    assert 0.95 <= dep_["wait"] < 2.0 and dep_["start"] < 0.5
    assert ms["method"] is None and ms["start"] < 0.1 and ms["wait"] >= 0.95  # a milestone has its row too
    assert last["svc:/t/stuck:default"]["status"] == "waiting" and last["svc:/t/stuck:default"]["start"] is None
    lines = known.cli("svcs", "-t", check=True).stdout.splitlines()
    assert lines[0].split() == ["START", "WAIT", "ONLINE", "FMRI"] and lines[1].endswith("svc:/t/slow:default")


def test_the_critical_chain_follows_the_groupings(known):
    chain = svcs_json(known, "-c")  # default: the milestone
    assert [s["fmri"] for s in chain["steps"]] == ["svc:/milestone/t:default", "svc:/t/dep:default",
                                                    "svc:/t/slow:default"]
    assert [s["via"] for s in chain["steps"]] == [None, "all", "slow"]
    online = [s["online_at"] for s in chain["steps"]]
    assert online == sorted(online, reverse=True) and 0.95 <= online[-1] < 3
    # require_any: released by the first member up (fast), not by the last one (slow)
    either = svcs_json(known, "-c", "either")
    assert [s["fmri"] for s in either["steps"]] == ["svc:/t/either:default", "svc:/t/fast:default"]
    text = known.cli("svcs", "-c", check=True).stdout.splitlines()
    assert text[1].startswith("svc:/milestone/t:default @") and "+" in text[1]
    assert text[3].startswith("  \u2514\u2500svc:/t/slow:default @") and text[3].endswith('(dependency "slow")')
    r = known.cli("svcs", "-c", "stuck")
    assert r.returncode == 1 and "no recorded start that came online" in r.stderr


def test_the_dot_graph_drawn_by_graphviz_has_every_instance_and_dependency(known):
    if shutil.which("dot") is None:
        pytest.skip("graphviz not installed (Debian package graphviz)")
    model = svcs_json(known, "-G")
    dot_text = known.cli("svcs", "-G", check=True).stdout
    r = subprocess.run(["dot", "-Tsvg"], input=dot_text, capture_output=True, text=True, timeout=60, check=True)
    root = ET.fromstring(r.stdout)
    titles = {g.get("class"): set() for g in root.iter(f"{SVG}g")}
    for g in root.iter(f"{SVG}g"):
        t = g.find(f"{SVG}title")
        if t is not None and g.get("class") in ("node", "edge"):
            titles[g.get("class")].add(t.text)
    assert titles["node"] == INSTANCES | {"svc:/t/absent:default"}
    expected = {(e["from"], e["to"]) for e in model["edges"]}
    assert {tuple(t.split("->")) for t in titles["edge"]} == expected
    assert ("svc:/t/dep:default", "svc:/t/slow:default") in expected and len(expected) == 8
    never = next(e for e in model["edges"] if e["to"] == "svc:/t/absent:default")
    assert never["value"] == "never" and "never met" in dot_text
    states = {n["fmri"]: n["state"] for n in model["nodes"]}
    assert states["svc:/t/off:default"] == "disabled" and states["svc:/t/absent:default"] == "absent"
    only = svcs_json(known, "-G", "dep")
    assert {n["fmri"] for n in only["nodes"]} == {"svc:/t/dep:default", "svc:/t/slow:default",
                                                  "svc:/milestone/t:default", "svc:/t/either:default",
                                                  "svc:/t/opt:default"}


def test_the_boot_chart_has_one_row_per_instance_and_renders_in_chromium(known, tmp_path):
    text = known.cli("svcs", "--plot", check=True).stdout
    root = ET.fromstring(text)
    rows = [g.get("data-fmri") for g in root.iter(f"{SVG}g") if g.get("class") == "row"]
    assert sorted(rows) == sorted(INSTANCES - {"svc:/t/off:default"})
    assert rows.index("svc:/t/slow:default") < len(rows)
    slow = next(g for g in root.iter(f"{SVG}g") if g.get("data-fmri") == "svc:/t/slow:default")
    kinds = [r.get("class") for r in slow.iter(f"{SVG}rect") if (r.get("class") or "").startswith("bar")]
    assert kinds[:3] == ["bar waiting", "bar starting", "bar running"]
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium not installed (Debian package chromium)")
    svg = tmp_path / "boot.svg"
    svg.write_text(text)
    png = tmp_path / "boot.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,400",
                    f"--screenshot={png}", svg.as_uri()], capture_output=True, timeout=120, check=True)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def test_timings_survive_a_daemon_restart(daemon):
    daemon.manifest("fast.toml", child("t/fast"))
    daemon.start()
    daemon.wait_state("svc:/t/fast:default", "online")
    daemon.stop()
    daemon.start()
    daemon.wait_state("svc:/t/fast:default", "online")
    first = svcs_json(daemon, "--plot", "--boot", "1")
    assert [b["id"] for b in first["boots"]] == [1, 2] and first["boot"] == 1
    (old,) = first["starts"]
    assert old["status"] == "stopped" and old["ended_in"] == "offline" and old["reason"] == "svcmgrd is stopping."
    assert svcs_json(daemon, "--plot")["boot"] == 2
    r = daemon.cli("svcs", "--plot", "--boot", "7")
    assert r.returncode == 1 and "no boot 7 is kept" in r.stderr
    r = daemon.cli("svcs", "--plot", "--since", "yesterday-ish")
    assert r.returncode == 2 and "yesterday-ish" in r.stderr


def test_the_observing_commands_import_nothing_heavy():
    code = ("import sys, svcmgr.cli.observe, svcmgr.draw.dot, svcmgr.draw.bootchart, svcmgr.draw.layout; "
            "print(' '.join(sorted(sys.modules)))")
    mods = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              cwd=REPO).stdout.split())
    assert not mods & {"asyncio", "sqlite3", "networkx", "svcmgr.engine", "svcmgr.timings"}, mods


def test_a_plot_waits_for_nothing_when_nothing_started(daemon):
    daemon.start()
    reply = wait_until(lambda: svcs_json(daemon, "--plot"), what="a timings reply")
    assert reply["starts"] == [] and ET.fromstring(daemon.cli("svcs", "--plot", check=True).stdout) is not None
