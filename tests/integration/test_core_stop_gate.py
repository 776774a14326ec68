"""Stop gates: a planned stop waits (bounded) for what components registered, then runs its stop method;
an unplanned one does not wait. The engine runs in process on real parts (repository, restarter, reaper,
real ``sleep`` processes and a real stop method that records when it ran)."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from pathlib import Path

import pytest

from svcmgr.backend import detect_backend
from svcmgr.bus import Bus
from svcmgr.engine import Engine
from svcmgr.loader import load_bytes
from svcmgr.paths import Paths
from svcmgr.reaper import Reaper
from svcmgr.repository import Repository
from svcmgr.restarter import Restarter

APP = "svc:/site/app:default"


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.paths = Paths.for_root(str(tmp / "root"))
        self.paths.make()
        loop = asyncio.get_running_loop()
        self.reaper = Reaper()
        self.reaper._loop = loop
        loop.add_signal_handler(signal.SIGCHLD, self.reaper.reap)
        self.repo = Repository(self.paths.repository)
        self.bus = Bus("t1")
        self.backend = detect_backend("gate-test", allow_cgroup=False)
        ctid = itertools.count(1)
        engine: list[Engine] = []
        self.restarter = Restarter(reaper=self.reaper, backend=self.backend, paths=self.paths, bus=self.bus,
                                   ctid=lambda: next(ctid),
                                   on_contract=lambda *a: engine[0].on_contract(*a),
                                   on_health=lambda *a: engine[0].on_health(*a))
        self.engine = Engine(repo=self.repo, bus=self.bus, restarter=self.restarter, paths=self.paths)
        engine.append(self.engine)

    async def close(self) -> None:
        await self.engine.shutdown()
        asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)
        self.repo.close()


@pytest.fixture
async def stack(tmp_path):
    s = Stack(tmp_path)
    stamp = tmp_path / "stopped"
    manifest = (f'name = "site/app"\nduration = "child"\n[methods.start]\nexec = ["sleep", "1000"]\n'
                f'[methods.stop]\nexec = "date +%%s.%%N > {stamp}"\n[restart]\nlimit = 100\n')
    s.engine.import_specs(load_bytes(manifest.encode(), str(tmp_path / "app.toml")), ["toml"])
    s.engine.boot()
    s.stamp = stamp
    yield s
    await s.close()


async def wait_state(engine: Engine, want: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while engine.instances[APP].state.value != want or engine.instances[APP].next_state is not None:
        assert time.monotonic() < deadline, f"{APP} did not reach {want}: {engine.instances[APP].state}"
        await asyncio.sleep(0.01)


async def test_planned_stop_waits_for_the_gate_then_runs_the_stop_method(stack):
    engine = stack.engine
    await wait_state(engine, "online")
    opened = asyncio.Event()
    calls: list[str] = []

    def gate(fmri: str):
        calls.append(fmri)
        return opened.wait(), 30.0

    engine.add_stop_gate(gate)
    engine.disable([APP], temporary=True)
    await asyncio.sleep(0.3)
    inst = engine.instances[APP]
    assert calls == [APP]
    assert inst.state.value == "online" and inst.next_state.value == "disabled", "held by the gate"
    assert inst.pids and not stack.stamp.exists(), "the stop method must not run before the gate opens"
    t_open = time.time()
    opened.set()
    await wait_state(engine, "disabled")
    assert float(stack.stamp.read_text()) >= t_open - 0.01
    log = Path(inst.log.path).read_text()
    assert "Waiting for 1 stop gate(s) before stopping (at most 30s)." in log


async def test_a_gate_that_never_opens_is_cut_off_at_its_bound(stack):
    engine = stack.engine
    await wait_state(engine, "online")
    engine.add_stop_gate(lambda fmri: (asyncio.Event().wait(), 0.3))
    engine.add_stop_gate(lambda fmri: None)  # a gate with nothing to wait for
    t0 = time.monotonic()
    engine.restart([APP])
    await asyncio.sleep(0.05)
    await wait_state(engine, "online")
    assert 0.3 <= time.monotonic() - t0 < 5
    assert stack.stamp.exists()


async def test_an_unplanned_exit_does_not_wait(stack):
    engine = stack.engine
    await wait_state(engine, "online")
    calls: list[str] = []
    engine.add_stop_gate(lambda fmri: (calls.append(fmri), (asyncio.Event().wait(), 0.5))[1])
    pid = engine.instances[APP].pids[0]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while engine.instances[APP].restarts < 1 or engine.instances[APP].state.value != "online":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert calls == [], "a death is not a planned stop"
    assert engine.instances[APP].pids != [pid]
