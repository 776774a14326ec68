"""The stateful property test: the real engine and the reference model, step by step.

``EngineVersusModel`` is a hypothesis ``RuleBasedStateMachine``. Its ``rig`` (a subclass
sets it) runs the real engine: on the fake process layer (``FakeRig``, thousands of steps
in seconds) or in a real daemon with real processes (``test_model_daemon``). It builds a
random graph (``graphs``), boots it in both, then applies random operations to both:
enable, disable (each also with ``-t``), a kill by a signal (an error), an exit of every
process (not an error), a next start that fails (retried or fatal), clear, mark
maintenance (also ``-I``) and degraded, refresh, restart, a milestone, time passing. After
each step, once the engine has settled, every instance's state and the set of running
instances that were stopped must be the model's, and the invariants hold:

* no instance runs while a ``require_all`` member whose ``restart_on`` is ``restart`` or
  ``refresh`` is not running (SMF leaves ``none`` and ``error`` dependents running when a
  member stops for a reason their ``restart_on`` does not name, so the invariant is SMF's);
* every instance in maintenance has a reason;
* no stopped instance keeps a process, and every running daemon has one.

Each run draws from one seed, ``SEED`` (``SVCMGR_MODEL_SEED``, or a new one each run). A
failure prints the steps, the command that replays the whole run from its seed (``replay``),
and hypothesis' ``@reproduce_failure`` blob (``print_blob``); the example database
(``.hypothesis/``) also replays it first on the next run.
"""

from __future__ import annotations

import os
import random
from typing import Any, ClassVar, Protocol

from hypothesis import seed
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from graphs import GraphSpec, graphs
from smfgraph import RUNNING, Model

__all__ = ["SEED", "EngineVersusModel", "Rig", "seeded"]

#: The seed of this run's sequences: SVCMGR_MODEL_SEED replays a run, otherwise a new one.
SEED = int(os.environ.get("SVCMGR_MODEL_SEED") or random.SystemRandom().randrange(2**32))


class Rig(Protocol):
    """The engine under test, as the state machine drives it."""

    clock: Any

    def boot(self, spec: GraphSpec) -> None: ...

    def apply(self, op: str, fmri: str, arg: Any) -> None:
        """Carry out one operation and wait until the engine settles."""
        ...

    def states(self) -> dict[str, str]: ...

    def stop_log(self) -> list[tuple[str, str]]:
        """("begin", fmri) when a running instance began to stop, ("end", fmri) when it had stopped, in
        order, since the last call."""
        ...

    def running_processes(self) -> set[str]:
        """Instances that have a live process."""
        ...

    def maintenance_reasons(self) -> dict[str, str]: ...

    def close(self) -> None: ...


class EngineVersusModel(RuleBasedStateMachine):
    """Random graphs and operations, applied to the engine (through ``make_rig``) and to the model."""

    max_services = 7
    #: The command that replays this run (``seeded`` sets it).
    replay: ClassVar[str] = ""

    def make_rig(self) -> Rig:
        raise NotImplementedError

    def __init__(self) -> None:
        super().__init__()
        self.rig: Rig | None = None
        self.model: Model | None = None
        self.spec: GraphSpec | None = None
        self.steps: list[str] = []

    def teardown(self) -> None:
        if self.rig is not None:
            self.rig.close()

    # ------------------------------------------------------------------ the graph
    @initialize(data=st.data())
    def boot(self, data: st.DataObject) -> None:
        self.spec = spec = data.draw(graphs(self.max_services), label="graph")
        self.rig = self.make_rig()
        self.model = Model(spec.model_instances(), self.rig.clock)
        for f, script in spec.scripts().items():
            for outcome in script:
                self.model.fail_next(f, outcome)
        self.rig.boot(spec)
        self.model.boot()
        self._compare("boot")

    def _pick(self, index: int) -> str:
        assert self.spec is not None
        fmris = self.spec.fmris()
        return fmris[index % len(fmris)]

    def _do(self, op: str, index: int, arg: Any = None) -> None:
        assert self.rig is not None and self.model is not None
        fmri = self._pick(index)
        self.model.begin()
        self.rig.stop_log()
        _apply_model(self.model, op, fmri, arg)
        self.rig.apply(op, fmri, arg)
        self._compare(f"{op} {fmri} {arg!r}")

    def _replay(self) -> str:
        return f"\n  replay the run: {self.replay}" if self.replay else ""

    def _compare(self, what: str) -> None:
        assert self.rig is not None and self.model is not None
        self.steps.append(what)
        got, want = self.rig.states(), self.model.states()
        log = self.rig.stop_log()
        stopped, want_stopped = {f for kind, f in log if kind == "begin"}, set(self.model.stopped)
        late = [(sorted(first), then) for first, then in self.model.orders
                if getattr(self.rig, "orders_checked", True) and not _stopped_before(log, first, then)]
        if got != want or stopped != want_stopped or late:
            diff = {f: (got.get(f), want.get(f)) for f in sorted(set(got) | set(want)) if got.get(f) != want.get(f)}
            raise AssertionError(
                f"after {what!r}: the engine and the model differ\n"
                f"  states (engine, model): {diff}\n"
                f"  stopped: engine {sorted(stopped)}, model {sorted(want_stopped)}\n"
                f"  disabled before its dependents had stopped (dependents, instance): {late}\n"
                f"  stops: {log}\n"
                f"  graph: {_describe(self.spec)}\n  steps: {self.steps}{self._replay()}")

    # ------------------------------------------------------------------ operations
    @rule(i=st.integers(0, 63), temporary=st.booleans())
    def enable(self, i: int, temporary: bool) -> None:
        self._do("enable", i, temporary)

    @rule(i=st.integers(0, 63), temporary=st.booleans())
    def disable(self, i: int, temporary: bool) -> None:
        self._do("disable", i, temporary)

    @rule(i=st.integers(0, 63))
    def kill(self, i: int) -> None:
        self._do("kill", i)

    @rule(i=st.integers(0, 63))
    def exit(self, i: int) -> None:
        self._do("exit", i)

    @rule(i=st.integers(0, 63), outcome=st.sampled_from(["retry", "fatal"]))
    def fail_next(self, i: int, outcome: str) -> None:
        self._do("fail_next", i, outcome)

    @rule(i=st.integers(0, 63))
    def clear(self, i: int) -> None:
        self._do("clear", i)

    @rule(i=st.integers(0, 63), immediate=st.booleans())
    def mark_maintenance(self, i: int, immediate: bool) -> None:
        self._do("mark_maintenance", i, immediate)

    @rule(i=st.integers(0, 63))
    def mark_degraded(self, i: int) -> None:
        self._do("mark_degraded", i)

    @rule(i=st.integers(0, 63))
    def refresh(self, i: int) -> None:
        self._do("refresh", i)

    @rule(i=st.integers(0, 63))
    def restart(self, i: int) -> None:
        self._do("restart", i)

    @rule(i=st.integers(0, 63))
    def milestone(self, i: int) -> None:
        assert self.spec is not None
        targets = ["all", "none", *self.spec.milestones()]
        self._do("milestone", 0, targets[i % len(targets)])

    @precondition(lambda self: self.model is not None)
    @rule(seconds=st.sampled_from([1.0, 3000.0]))
    def time_passes(self, seconds: float) -> None:
        self._do("time", 0, seconds)

    # ------------------------------------------------------------------ invariants
    @invariant()
    def invariants(self) -> None:
        if self.rig is None or self.spec is None:
            return
        states = self.rig.states()
        running = {f for f, s in states.items() if s in RUNNING}
        for svc in self.spec.services:
            for f in svc.instance_fmris():
                if f not in running:
                    continue
                for g in svc.groups:
                    if g.grouping != "require_all" or g.restart_on not in ("restart", "refresh"):
                        continue
                    for m in g.members:
                        assert any(t in running for t in _targets(self.spec, m)), (
                            f"{f} is {states[f]} while {m}, a require_all member (restart_on={g.restart_on}), "
                            f"is not running; steps: {self.steps}{self._replay()}")
        reasons = self.rig.maintenance_reasons()
        for f, s in states.items():
            if s == "maintenance":
                assert reasons.get(f), f"{f} is in maintenance without a reason; steps: {self.steps}{self._replay()}"
        procs = self.rig.running_processes()
        daemons = self.spec.daemons()
        assert procs == running & daemons, (
            f"processes {sorted(procs)} but running daemons {sorted(running & daemons)}; steps: {self.steps}"
            f"{self._replay()}")


def seeded(machine: type[EngineVersusModel], test: str, env: dict[str, int]) -> type[EngineVersusModel]:
    """``machine`` drawing from ``SEED``; ``replay`` names it with ``env`` (the run's sizes) and ``test``."""
    machine.replay = " ".join([f"SVCMGR_MODEL_SEED={SEED}", *(f"{k}={v}" for k, v in env.items()),
                               ".venv/bin/pytest", test])
    return seed(SEED)(machine)


def _stopped_before(log: list[tuple[str, str]], first: frozenset[str], then: str) -> bool:
    """Whether every instance of ``first`` had stopped before ``then`` began to."""
    begin = next((i for i, e in enumerate(log) if e == ("begin", then)), len(log))
    ended = {f for kind, f in log[:begin] if kind == "end"}
    return first <= ended


def _targets(spec: GraphSpec, member: str) -> list[str]:
    fmris = spec.fmris()
    if ":" in member[5:]:
        return [member] if member in fmris else []
    return [f for f in fmris if f.rsplit(":", 1)[0] == member]


def _apply_model(model: Model, op: str, fmri: str, arg: Any) -> None:
    if op in ("enable", "disable"):
        getattr(model, op)(fmri, temporary=arg)
    elif op == "mark_maintenance":
        model.mark_maintenance(fmri, immediate=arg)
    elif op == "fail_next":
        model.fail_next(fmri, arg)
    elif op == "milestone":
        model.set_milestone(arg)
    elif op == "time":
        pass  # the rig moves the clock both read
    else:
        getattr(model, op)(fmri)


def _describe(spec: GraphSpec | None) -> str:
    if spec is None:
        return "-"
    parts = []
    for s in spec.services:
        groups = "; ".join(f"{g.name} {g.grouping}/{g.restart_on} {list(g.members)}" for g in s.groups)
        parts.append(f"{s.name} [{s.kind}, limit {s.limit}, {s.enabled}, scripts {s.scripts}] {groups}")
    return "\n    " + "\n    ".join(parts)
