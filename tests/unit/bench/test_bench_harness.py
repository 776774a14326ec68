"""The harness' own parts: statistics, the run order, the BENCHMARKS.md block, and the cleanup of process trees."""

from __future__ import annotations

import itertools
import os
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, REPO)

from bench import harness  # noqa: E402
from bench.harness import Options, Results, default_work_dir, fs_type, run_all, run_order  # noqa: E402
from bench.procs import spawn  # noqa: E402
from bench.report import BEGIN, END, render, update_file  # noqa: E402
from bench.scenarios import dag_services, percentile  # noqa: E402
from bench.side import BARE_MQTT, DIAGNOSIS_BOUND  # noqa: E402
from bench.tools import Service, Svcmgr, Tool  # noqa: E402


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_percentile_interpolates():
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.99) == 5.0
    assert percentile(list(map(float, range(101))), 0.99) == 99.0


def test_dag_has_the_asked_depth_and_no_dangling_dependency():
    services = dag_services(1234567)
    names = {s.name for s in services}
    assert len(services) == 500
    assert all(set(s.deps) <= names for s in services)
    depth = {}
    for s in services:  # layers come in order
        depth[s.name] = 1 + max((depth[d] for d in s.deps), default=0)
    assert max(depth.values()) == 10


def test_update_file_replaces_only_the_results_block(tmp_path):
    res = Results(machine={"date": "d", "cores": 2, "cpu": "c", "memory_mib": 1, "python": "3", "kernel": "k"},
                  options={"runs": 3})
    res.add("start/500", "svcmgr", [2.0, 2.5, 3.0])
    res.add("start/500", "asyncio floor", [1.0])
    res.add("start/500", "s6", [3.0])
    res.add("start/500", "supervisord", [10.0])
    path = str(tmp_path / "BENCHMARKS.md")
    update_file(path, render(res, "make bench"), "## Mine", "intro")
    text = _read(path)
    assert "| start 500 sleeps" in text
    assert "missed: 2.500 s: 1.20x s6's speed, 4.00x supervisord's, 2.50x the floor's time" in text
    with open(path, "a") as f:
        f.write("\nanalysis by hand\n")
    res.values["start/500"]["svcmgr"] = [1.5]
    update_file(path, render(res, "make bench"), "## Mine", "intro")
    text = _read(path)
    assert text.count(BEGIN) == 1 and text.count(END) == 1 and text.count("## Mine") == 1
    assert "analysis by hand" in text and "met: 1.500 s: 2.00x s6's speed" in text


def test_side_targets_are_rates_with_their_peer_in_the_same_run():
    res = Results(machine={"date": "d", "cores": 2, "cpu": "c", "memory_mib": 1, "python": "3", "kernel": "k"},
                  options={"runs": 3})
    res.add("diagnosis/pipeline", "svcmgr", [90_000.0, 120_000.0, 110_000.0])
    res.add("diagnosis/pipeline", DIAGNOSIS_BOUND, [150_000.0])
    res.add("diagnosis/exits", "svcmgr", [200_000.0])
    res.add("mqtt/out", "svcmgr", [12_000.0])
    res.add("mqtt/out", BARE_MQTT, [6_000.0])
    text = render(res, "make bench")
    # rates are printed per second, and svcmgr ÷ the peer is above 1 when svcmgr is faster
    assert f"| {DIAGNOSIS_BOUND} | 1 | 150,000 | 150,000 | 150,000 | 0.73 |" in text
    assert f"| {BARE_MQTT} | 1 | 6,000 | 6,000 | 6,000 | 2.00 |" in text
    assert "met: 110,000 ereports/s (service exits alone 200,000/s)" in text
    assert "missed: 12,000 events/s, none lost, 2.00x one bare aiomqtt client (6,000/s)" in text
    # the rows come after the core's scenarios, diagnosis before MQTT
    assert text.index("fault diagnosis in process") < text.index("MQTT bridge: events")


def test_stop_ends_the_whole_tree_even_a_process_that_left_its_session():
    t = spawn(["sh", "-c", "setsid sleep 1000 & sleep 1000 & exec sleep 1000"], "tree")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        t.remember_tree()
        if len(t.seen) >= 2:
            break
        time.sleep(0.02)
    pids = set(t.seen) | {t.pid}
    assert len(pids) >= 3
    t.stop()
    left = []
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                if f.read().rsplit(") ", 1)[1][0] not in "ZX":
                    left.append(p)
        except OSError:
            pass
    assert not left


def test_svcmgr_status_asks_list_only_for_what_it_reads_and_sees_every_service_up(tmp_path):
    tool = Svcmgr(str(tmp_path / "work"), os.path.dirname(sys.executable), cgroup=False, source=REPO)
    if tool.available() is not None:
        pytest.skip(tool.available())
    tool.prepare([Service(f"s{i}", ["sleep", "1000"]) for i in range(3)])
    tool.launch()
    try:
        deadline = time.monotonic() + 30
        up: dict[str, int] | None = None
        while time.monotonic() < deadline:
            up = tool.poll_status()
            if up is not None and len(up) == 3:
                break
            time.sleep(0.05)
        assert up is not None and sorted(up) == ["s0", "s1", "s2"] and all(p > 0 for p in up.values())
        items = tool._list()
        assert {k for i in items for k in i} == set(Svcmgr.LIST_FIELDS)
        assert {i["fmri"]: i["pids"] for i in items} == {Svcmgr.fmri(n): [p] for n, p in up.items()}
        assert tool.status_one("s1") == up["s1"]
    finally:
        tool.stop()


def test_run_order_lets_no_tool_always_follow_the_same_one():
    # a tool's teardown loads the machine for its successor: each ordered pair of neighbours that
    # occurs in a run must also occur the other way round in another, and every run has every tool
    for n in range(2, 7):
        live = list(range(n))
        runs = [run_order(live, r) for r in range(2 * n)]
        assert all(sorted(order) == live for order in runs)
        follows = {(a, b) for order in runs for a, b in itertools.pairwise(order)}
        assert follows and all((b, a) in follows for a, b in follows), (n, runs)


class _Remembering(Tool):
    """A tool in memory: every service up once launched; what the harness did to it, in order."""

    def __init__(self, work: str, name: str, warm: bool) -> None:
        super().__init__(work)
        self.name, self.warm_start = name, warm
        self.did: list[str] = []
        self.up = False

    def write_config(self, services: list[Service]) -> None:
        self.did.append("prepare")

    def launch(self) -> None:
        self.did.append("launch")
        self.up = True

    def stop(self) -> None:
        if self.up:
            self.did.append("stop")
        self.up = False

    def status(self) -> dict[str, int]:
        return {s.name: 1 for s in self.services} if self.up else {}


def test_the_warm_start_launches_svcmgr_again_on_what_its_first_launch_left(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "settle", lambda log, **kw: 0.0)  # no waiting for a quiet machine here
    monkeypatch.setattr(harness, "reap_orphans", lambda: 0)  # nor reaping what the test runner started
    warm = _Remembering(str(tmp_path / "a"), "svcmgr", True)
    peer = _Remembering(str(tmp_path / "b"), "s6", False)
    res = run_all([warm, peer], Options(runs=1, sizes=(3,), scenarios=("warm",)), lambda msg: None)
    # the first launch stopped cleanly, then launched again on the same configuration (not written afresh)
    assert warm.did == ["prepare", "launch", "stop", "launch", "stop"]
    assert peer.did == ["prepare", "launch", "stop"]  # its ordinary start
    assert sorted(res.values) == ["warm/3"] and sorted(res.values["warm/3"]) == ["s6", "svcmgr"]
    block = render(res, "python -m bench --scenarios warm")
    assert "start 3 sleeps again" in block and "start 3 sleeps," not in block


def test_fs_type_names_the_mount_a_path_is_on_and_the_work_dir_is_a_tmpfs_or_the_default(tmp_path):
    with open("/proc/self/mounts") as f:
        mounts = {line.split()[1]: line.split()[2] for line in f}
    assert fs_type("/proc/self") == mounts["/proc"]
    assert fs_type(str(tmp_path)) in set(mounts.values())
    work = default_work_dir()
    assert work is None or fs_type(work) == "tmpfs"


def test_render_says_where_the_launches_folders_were(tmp_path):
    res = Results(machine={"date": "d", "cores": 2, "cpu": "c", "memory_mib": 1, "python": "3", "kernel": "k",
                           "work": "/dev/shm (tmpfs)"}, options={"runs": 1})
    assert "each launch's folder in /dev/shm (tmpfs)" in render(res, "make bench")
