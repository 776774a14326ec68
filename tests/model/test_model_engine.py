"""The engine against the reference model of graph.c, on the fake process layer.

Each sequence builds a random graph and applies random operations to the real engine
(``svcmgr.engine.Engine`` on ``fakes.FakeProcesses``: starts, stops and deaths complete
at once, one fake clock) and to ``smfgraph.Model``; ``modelcheck`` compares them after
every step. ``make test`` runs SVCMGR_MODEL_EXAMPLES sequences (default 200) of up to
SVCMGR_MODEL_STEPS steps (default 30); ``make model`` runs a long campaign.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from svcmgr.loader import load_bytes
from svcmgr.policy import Outcome

from fakes import engine_on_fakes, settle
from graphs import GraphSpec
from modelcheck import EngineVersusModel, seeded
from smfgraph import RUNNING

EXAMPLES = int(os.environ.get("SVCMGR_MODEL_EXAMPLES", "200"))
STEPS = int(os.environ.get("SVCMGR_MODEL_STEPS", "30"))


class FakeRig:
    """A real engine on fake processes, its own event loop and state folder."""

    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="svcmgr-model-")
        self.loop = asyncio.new_event_loop()
        self.engine, self.procs, self.clock = engine_on_fakes(self.tmp)
        self._stops = self.engine.bus.subscribe("svc.stopping", "svc.state")

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _settle(self) -> None:
        await settle(self.engine, self.procs)

    def boot(self, spec: GraphSpec) -> None:
        for f, script in spec.scripts().items():
            for outcome in script:
                self._fail(f, outcome)
        texts = spec.manifests('["daemon"]')

        async def up() -> None:
            specs = [s for name, t in texts.items() for s in load_bytes(t.encode(), name)]
            self.engine.import_specs(specs, ["toml"] * len(specs))
            self.engine.boot()
            await self._settle()

        self._run(up())

    def _fail(self, fmri: str, outcome: str) -> None:
        if outcome == "fatal":
            self.procs.fail_next(fmri, Outcome.FATAL, "exited with status 95 (SMF_EXIT_ERR_FATAL)", 95)
        else:
            self.procs.fail_next(fmri)

    def apply(self, op: str, fmri: str, arg: Any) -> None:
        async def go() -> None:
            e, p = self.engine, self.procs
            if op == "enable":
                e.enable([fmri], temporary=arg)
            elif op == "disable":
                e.disable([fmri], temporary=arg)
            elif op == "kill" and fmri in p.running:
                p.kill(fmri, signal.SIGKILL)
            elif op == "exit" and fmri in p.running:
                p.exit(fmri, 0)
            elif op == "fail_next":
                self._fail(fmri, arg)
            elif op == "clear":
                e.clear([fmri])
            elif op == "mark_maintenance":
                e.mark([fmri], "maintenance", temporary=False, immediate=arg)
            elif op == "mark_degraded":
                e.mark([fmri], "degraded", temporary=False, immediate=False)
            elif op == "refresh":
                e.refresh([fmri])
            elif op == "restart":
                e.restart([fmri])
            elif op == "milestone":
                e.set_milestone(arg)
            elif op == "time":
                self.clock.advance(arg)
            await self._settle()

        self._run(go())

    def states(self) -> dict[str, str]:
        return {f: i.state.value for f, i in sorted(self.engine.instances.items())}

    def stop_log(self) -> list[tuple[str, str]]:
        out = []
        while (ev := self._stops.get_nowait()) is not None:
            if ev.cls == "svc.stopping":
                out.append(("begin", ev.resource))
            elif ev.data.get("previous") in ("online", "degraded") and ev.data.get("state") not in RUNNING:
                out.append(("end", ev.resource))
        return out

    def running_processes(self) -> set[str]:
        return set(self.procs.running)

    def maintenance_reasons(self) -> dict[str, str]:
        return {f: i.reason if "maintenance" in i.marks else "" for f, i in self.engine.instances.items()
                if i.state.value == "maintenance"}

    def close(self) -> None:
        try:
            self._run(self.engine.shutdown())
        finally:
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


class FakeEngineVersusModel(EngineVersusModel):
    def make_rig(self) -> FakeRig:
        return FakeRig()


seeded(FakeEngineVersusModel, "tests/model/test_model_engine.py",
       {"SVCMGR_MODEL_EXAMPLES": EXAMPLES, "SVCMGR_MODEL_STEPS": STEPS})
TestEngineAgainstModel = pytest.mark.timeout(900)(FakeEngineVersusModel.TestCase)
TestEngineAgainstModel.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
