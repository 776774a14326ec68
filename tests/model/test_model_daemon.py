"""The engine against the reference model of graph.c, with a real daemon and real processes: short.

The same state machine as ``test_model_engine`` (``modelcheck``), on smaller graphs and
fewer steps, drives a real ``svcmgrd`` through its socket: daemons are shell loops in
real contracts, a kill is a real SIGKILL, an exit a real exit of every process, a failing
start a start method that exits 1 or 95 (SMF_EXIT_ERR_FATAL) as a control file says. It
checks that what the fake process layer stands for holds with real processes (reaping,
contract ends, readiness) and real timing. SVCMGR_MODEL_DAEMON_EXAMPLES sequences (default
4) of up to SVCMGR_MODEL_DAEMON_STEPS steps (default 8).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from graphs import GraphSpec
from modelcheck import EngineVersusModel, seeded
from smfgraph import RUNNING
from svctest import private_daemon

EXAMPLES = int(os.environ.get("SVCMGR_MODEL_DAEMON_EXAMPLES", "4"))
STEPS = int(os.environ.get("SVCMGR_MODEL_DAEMON_STEPS", "8"))

#: A daemon's start method: the next line of its control file, if any, is the exit status of a failing
#: start; otherwise it leaves a process that runs until its ".exit" file appears, and succeeds.
START = """f="$1/$(printf %s "$SMF_FMRI" | tr '/:' '__')"
if [ -s "$f" ]; then c=$(head -n 1 "$f"); sed -i 1d "$f"; exit "$c"; fi
rm -f "$f.exit"
(while [ ! -e "$f.exit" ]; do sleep 0.05; done) >/dev/null 2>&1 &
exit 0
"""


class RealRig:
    """A real svcmgrd on a private root; operations through its socket."""

    orders_checked = False  # the socket shows states, not the order of stops
    clock = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self.daemon = self._stack.enter_context(private_daemon())
        self.ctl = Path(self.daemon.root) / "ctl"
        self.ctl.mkdir()
        (self.ctl / "start.sh").write_text(START)
        self._before: dict[str, dict[str, Any]] = {}
        self._before_starts: dict[str, tuple[int, int]] = {}

    def _file(self, fmri: str) -> Path:
        return self.ctl / fmri.replace("/", "_").replace(":", "_")

    def boot(self, spec: GraphSpec) -> None:
        for f, script in spec.scripts().items():
            for outcome in script:
                self._fail(f, outcome)
        start = f'["/bin/sh", "{self.ctl}/start.sh", "{self.ctl}"]'
        for name, text in spec.manifests(start).items():
            self.daemon.manifest(name, text)
        self.daemon.start()
        self._settle()

    def _fail(self, fmri: str, outcome: str) -> None:
        with open(self._file(fmri), "a") as f:
            f.write("95\n" if outcome == "fatal" else "1\n")

    def _list(self) -> dict[str, dict[str, Any]]:
        return self.daemon.instances()

    def _settle(self, quiet: float = 0.4, timeout: float = 30.0) -> None:
        """Until no instance is in transition and nothing has changed for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            now = {f: (i["state"], i["nstate"], i["ctid"], i["stime_epoch"]) for f, i in self._list().items()}
            if now != last or any(v[1] is not None for v in now.values()):
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.05)
        raise AssertionError(f"the daemon did not settle: {last}")

    def apply(self, op: str, fmri: str, arg: Any) -> None:
        d = self.daemon
        if op in ("enable", "disable"):
            d.call(op, fmris=[fmri], temporary=arg)
        elif op in ("kill", "exit"):
            info = self._list()[fmri]
            if info["state"] in RUNNING and info["pids"]:
                if op == "exit":
                    self._file(fmri).with_suffix(".exit").touch()
                else:
                    for pid in d.pids(fmri):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
        elif op == "fail_next":
            self._fail(fmri, arg)
        elif op == "mark_maintenance":
            d.call("mark", fmris=[fmri], state="maintenance", immediate=arg)
        elif op == "mark_degraded":
            d.call("mark", fmris=[fmri], state="degraded")
        elif op in ("clear", "refresh", "restart"):
            d.call(op, fmris=[fmri])
        elif op == "milestone":
            d.call("milestone", target=arg)
        # "time": the daemon's clock is the real one; the model reads the same
        time.sleep(0.1)
        self._settle()

    def states(self) -> dict[str, str]:
        return {f: i["state"] for f, i in sorted(self._list().items())}

    def _last_starts(self) -> dict[str, tuple[int, int]]:
        """Each instance's latest start attempt (svcs -t's record: its boot, and when its dependencies were
        met): another one means it started again."""
        return {r["fmri"]: (r["boot"], r["at"]["deps_met"]) for r in self.daemon.call("timings", last=True)["starts"]}

    def stop_log(self) -> list[tuple[str, str]]:
        """Running instances that stopped since the last call: no longer running, or running again in a new
        contract or a new start attempt (a milestone has no contract: degraded, restarted, is online again)."""
        now, starts = self._list(), self._last_starts()
        out = []
        for f, b in self._before.items():
            a = now.get(f)
            if b["state"] in RUNNING and a is not None and (
                    a["state"] not in RUNNING or a["ctid"] != b["ctid"]
                    or starts.get(f) != self._before_starts.get(f)):
                out.append(("begin", f))
        self._before, self._before_starts = now, starts
        return out

    def running_processes(self) -> set[str]:
        return {f for f, i in self._list().items() if i["pids"]}

    def maintenance_reasons(self) -> dict[str, str]:
        return {f: i["reason"] for f, i in self._list().items() if i["state"] == "maintenance"}

    def close(self) -> None:
        self._stack.close()


class DaemonVersusModel(EngineVersusModel):
    max_services = 4

    def make_rig(self) -> RealRig:
        return RealRig()


seeded(DaemonVersusModel, "tests/model/test_model_daemon.py",
       {"SVCMGR_MODEL_DAEMON_EXAMPLES": EXAMPLES, "SVCMGR_MODEL_DAEMON_STEPS": STEPS})
TestDaemonAgainstModel = pytest.mark.timeout(600)(DaemonVersusModel.TestCase)
TestDaemonAgainstModel.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, print_blob=True, database=None,
    suppress_health_check=list(HealthCheck))
