"""The graph engine: instances, what operators ask, and when each instance may start or must stop.

It feeds events through the state table (``machine``), decides with SMF's rules
(``graph``, ``policy``) and hands the actions to the restarter. It keeps the
repository up to date and publishes every state change on the bus. Starting is
event-driven: an instance starts the moment its dependencies are met, so
independent instances start together and a chain starts in order. A planned stop
(disable, restart, a lost dependency) first waits for the stop gates components
registered (``add_stop_gate``), each bounded, then runs the stop method.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from svcmgr.adoption import Adoption
from svcmgr.bus import Bus
from svcmgr.catalog import Catalog
from svcmgr.dependencies import Dependencies
from svcmgr.eventclasses import SVC_STOPPING, state_class
from svcmgr.graph import Graph
from svcmgr.graphwalks import affected_by
from svcmgr.instance import Instance
from svcmgr.logs import InstanceLog, PatternMatcher
from svcmgr.machine import RUNNING_PHASES, STOPPING, Action, Effect, Ev, Phase, display, step
from svcmgr.paths import Paths
from svcmgr.policy import START_RETRIES, Outcome, RestartHistory
from svcmgr.process import ProcessLayer
from svcmgr.reaper import ExitStatus
from svcmgr.repository import InstanceRecord, Repository
from svcmgr.services import EngineError, StopGate, Unwritable
from svcmgr.snapshots import Snapshots
from svcmgr.spec import InstanceConfig, ServiceSpec
from svcmgr.states import State
from svcmgr.subtree import SubtreeDisable
from svcmgr.tasks import Nursery
from svcmgr.timings import Recorder
from svcmgr.verbs import OperatorVerbs
from svcmgr.wording import counted

__all__ = ["Engine", "EngineError", "StopGate"]

log = logging.getLogger("svcmgr.engine")

#: Stops someone asked for (an operator, a dependency, a milestone): stop gates run before their stop method.
#: A death, a failed probe or a failed start is not planned: nothing waits.
_PLANNED = frozenset({Ev.DISABLE, Ev.RESTART, Ev.DEPS_LOST, Ev.MARK_MAINT})
#: Effects of leaving a running or starting phase for a stop.
_LEAVING = frozenset({Effect.DOWN, Effect.ABORT})
#: Seconds between attempts to write the repository while it cannot be written (a full disk).
FLUSH_RETRY = 2.0
#: Turns of the loop the instance records may wait, at most, for the work their state changes set going (an
#: evaluation, a job's first step: a restart's stop, then its start up to the spawn request) before they are
#: written anyway; what a burst changes is written once it is done, in one transaction.
FLUSH_DEFER = 4


class Engine(Adoption, Catalog, Dependencies, OperatorVerbs, SubtreeDisable):
    """The instances and their state machines. The parts mixed in each name, at the top of their class,
    what they use of the rest; none touches another part's private members."""

    def __init__(self, *, repo: Repository, bus: Bus, restarter: ProcessLayer, paths: Paths,
                 clock: Callable[[], float] = time.monotonic, timings: Recorder | None = None) -> None:
        self.repo = repo
        self.snapshots = Snapshots(repo.connection)
        self.bus = bus
        self.restarter = restarter
        restarter.bind(self.on_contract, self.on_health, self.save)
        self.paths = paths
        self.clock = clock
        #: Start and stop timings: told of every phase an instance enters (svcmgr.timings).
        self.timings = timings if timings is not None else Recorder()
        self.specs: dict[str, ServiceSpec] = {}
        self.editing: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, tuple[str, str]] = {}
        self.instances: dict[str, Instance] = {}
        self.graph = Graph({})
        Dependencies.__init__(self)
        SubtreeDisable.__init__(self)
        self.nursery = Nursery("engine")
        self._flush_scheduled = False
        #: turns of the loop the scheduled flush has waited so far, and whether a job began since it looked
        self._flush_waited = 0
        self._jobs_begun = False
        #: verbs waiting for the records queued before their answer to be written (``recorded``)
        self._recorded: list[asyncio.Future[None]] = []
        #: Why the repository cannot be written now (a full disk), or None.
        self.unwritable: str | None = None
        self.shutting_down = False
        self.load_errors: list[str] = []
        self._path_task: asyncio.Task[None] | None = None
        self._stop_gates: list[StopGate] = []

    # ================================================================ boot
    def boot(self) -> None:
        """Bring every instance to where its enable state and marks say."""
        for inst in self.instances.values():
            if inst.phase in RUNNING_PHASES:
                self._publish_state(inst, None)
                self.start_health(inst)
                continue
            if inst.phase in STOPPING:  # adopted to finish a stop (svcmgr.adoption)
                self._publish_state(inst, None)
                inst.stop_cause = "other"
                self.propagate_stop(inst, inst.stop_cause)  # its dependents may have been adopted running
                self._act(inst, Action.STOP)
                continue
            if "maintenance" in inst.marks:
                self._enter(inst, Phase.MAINTENANCE, inst.marks["maintenance"].get("reason", ""))
                continue
            self.evaluate(inst)
        self._path_task = self.nursery.start(self._watch_paths(), name="path-dependencies")

    async def _watch_paths(self) -> None:
        """Path dependencies have no events: look at them every second."""
        while True:
            await asyncio.sleep(1.0)
            for f in self.graph.path_dependents():
                inst = self.instances.get(f)
                if inst is not None and inst.phase == Phase.OFFLINE:
                    self.mark_dirty([f])

    def new_instance(self, cfg: InstanceConfig) -> Instance:
        f = str(cfg.fmri)
        inst = Instance(f, cfg, RestartHistory(cfg.restart.limit, cfg.restart.period, self.clock))
        on_line = None
        if cfg.log.patterns:
            on_line = PatternMatcher([(p.regex, p.cls) for p in cfg.log.patterns],
                                     lambda cls, line, f=f: self.bus.emit(cls, f, line=line, source="log"))
        inst.log = InstanceLog(self.paths.instance_log(cfg.fmri.log_name),
                               os.path.join(self.paths.fifos, cfg.fmri.log_name), cfg.log.max_size,
                               cfg.log.keep, on_line, self.restarter.log_opener)
        inst.log.open(asyncio.get_running_loop())
        self.instances[f] = inst
        return inst

    def rebuild_graph(self) -> None:
        known = set(self.graph.configs)
        self.graph = Graph({f: i.config for f, i in self.instances.items()})
        self.reconsider_subgraph(new=set(self.instances) - known)

    # ================================================================ dispatch
    def dispatch(self, inst: Instance, ev: Ev, reason: str | None = None, *, cause: str = "other",
                 immediate: bool = False) -> bool:
        """Feed one event to an instance's state machine; carry out the effects and start the action it names."""
        st = step(inst.phase, ev)
        if st is None:
            return False
        if st.effects & _LEAVING:
            inst.stop_cause = cause
            inst.stop_planned = ev in _PLANNED and not immediate
        self._enter(inst, st.next or inst.phase, reason, st.effects)
        self._act(inst, st.action, immediate=immediate)
        return True

    def _enter(self, inst: Instance, phase: Phase, reason: str | None,
               effects: frozenset[Effect] = frozenset()) -> None:
        prev_state = inst.state
        state, nstate = display(phase, prev_state)
        inst.phase = phase
        inst.next_state = nstate
        if reason is not None:
            inst.reason = reason
        self.timings.entered(inst, phase)
        changed = state != prev_state
        if changed:
            inst.state = state
            inst.stime = time.time()
        if effects & _LEAVING:
            self.stop_health(inst)
        if Effect.DOWN in effects:
            self.bus.emit(SVC_STOPPING, inst.fmri, state=inst.state.value, next_state=nstate.value if nstate else None,
                          cause=inst.stop_cause, planned=inst.stop_planned, reason=inst.reason)
            self.propagate_stop(inst, inst.stop_cause)
        self.save(inst)
        if changed:
            self._publish_state(inst, prev_state)
        if Effect.UP in effects:
            self.start_health(inst)
            self.exclude_dependents(inst)
        if Effect.UP in effects or changed or Effect.RELEASE in effects:
            # a stopping dependency counts as gone already
            self.mark_dirty(affected_by(self.graph, inst.fmri, self.view, came_up=Effect.UP in effects))
            if changed and self.disables_pending():
                self.mark_dirty([inst.fmri])  # a disable waiting for its subtree may go on (advance_disables)
        if changed:
            self.check_waiters()

    def _publish_state(self, inst: Instance, prev: State | None) -> None:
        self.bus.emit(state_class(inst.state.value), inst.fmri, state=inst.state.value,
                      previous=prev.value if prev else None,
                      next_state=inst.next_state.value if inst.next_state else None,
                      reason=inst.reason, stime=inst.stime)

    def _act(self, inst: Instance, action: Action, *, immediate: bool = False) -> None:
        if action == Action.NONE:
            return
        if action == Action.EVAL:
            self.mark_dirty([inst.fmri])
        elif action == Action.START:
            self._run_job(inst, self._start_job(inst))
        elif action == Action.STOP:
            # A restart the restarter itself reported (a death, an empty contract, a failed probe)
            # is in the log already; any other stop says why there.
            why = "" if inst.reason.startswith("Restarting: ") else inst.reason
            self._run_job(inst, self._stop_job(inst, immediate, why))
        elif action == Action.REFRESH:
            self._run_job(inst, self._refresh_job(inst))

    def _run_job(self, inst: Instance, coro: Any) -> None:
        old = inst.job
        if old is None or old.done():
            inst.job = self.nursery.start(coro, name=inst.fmri)  # nothing to end first: no wrapper to go through
            self._jobs_begun = True
            return

        async def job() -> None:
            old.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await old
            await coro

        inst.job = self.nursery.start(job(), name=inst.fmri)
        self._jobs_begun = True

    # ================================================================ jobs
    async def _start_job(self, inst: Instance) -> None:
        try:
            res = await self.restarter.start(inst)
        except Exception as e:
            log.exception("start of %s failed", inst.fmri)
            res_outcome, detail = Outcome.FATAL, f"internal error starting: {e}"
        else:
            res_outcome, detail = res.outcome, res.detail
        if inst.phase != Phase.STARTING:
            return
        if res_outcome == Outcome.OK:
            inst.start_failures = 0
            inst.starts += 1
            self.dispatch(inst, Ev.START_OK, "")
            return
        self.bus.emit("ereport.svc.start.failed", inst.fmri, detail=detail, outcome=str(res_outcome))
        if res_outcome == Outcome.TEMP_DISABLE:
            inst.enabled_temp = False
            self.dispatch(inst, Ev.TEMP_DISABLE, "Temporarily disabled by its start method (SMF_EXIT_TEMP_DISABLE).")
            return
        if res_outcome == "timeout" and not inst.config.restart.timeout_retry:
            self._maintenance(inst, Ev.START_FATAL, f"{detail} and timeout_retry is false.")
            return
        if res_outcome == Outcome.FATAL:
            self._maintenance(inst, Ev.START_FATAL, f"Start method {_last(detail)}.")
            return
        inst.start_failures += 1
        inst.last_exit = detail
        if inst.start_failures >= START_RETRIES:
            self._maintenance(inst, Ev.START_FATAL, f"Start method failed repeatedly, last {_last(detail)}.")
        else:
            self.dispatch(inst, Ev.START_FAILED, f"Start method failed ({detail}); retrying.")

    def _maintenance(self, inst: Instance, ev: Ev, reason: str, *, by: str = "restarter",
                     temporary: bool = False, cause: str = "error", **extra: Any) -> None:
        inst.marks["maintenance"] = {"reason": reason, "by": by, "temporary": temporary,
                                     "time": time.time(), **extra}
        inst.marks.pop("degraded", None)
        self.dispatch(inst, ev, reason, cause=cause)
        if by == "restarter":
            self.bus.emit("ereport.svc.maintenance", inst.fmri, reason=reason, last_exit=inst.last_exit)

    async def _stop_job(self, inst: Instance, immediate: bool, why: str = "") -> None:
        if inst.stop_planned:
            await self._pass_stop_gates(inst)
        try:
            await self.restarter.stop(inst, immediate=immediate, why=why)
        except Exception:
            log.exception("stop of %s failed", inst.fmri)
        self.dispatch(inst, Ev.STOPPED)

    def add_stop_gate(self, gate: StopGate) -> None:
        """Have every planned stop wait for ``gate`` before its stop method (a load balancer drains the
        instance, a VIP moves away from it). A gate must not raise; its wait is cut off at its bound."""
        self._stop_gates.append(gate)

    async def _pass_stop_gates(self, inst: Instance) -> None:
        waits = []
        for gate in self._stop_gates:
            try:
                w = gate(inst.fmri)
            except Exception:
                log.exception("stop gate %r failed for %s", gate, inst.fmri)
                continue
            if w is not None:
                waits.append(w)
        if not waits:
            return
        bound = max(b for _, b in waits)
        assert inst.log is not None
        inst.log.note(f"Waiting for {len(waits)} stop gate(s) before stopping (at most {bound:g}s).")
        t0 = self.clock()

        async def bounded(aw: Awaitable[Any], seconds: float) -> None:
            try:
                async with asyncio.timeout(seconds):
                    await aw
            except TimeoutError:
                log.warning("%s: a stop gate did not open within %gs; stopping anyway", inst.fmri, seconds)
            except Exception:
                log.exception("stop gate failed for %s", inst.fmri)

        await asyncio.gather(*(bounded(aw, b) for aw, b in waits))
        inst.log.note(f"Stop gates passed after {self.clock() - t0:.3f}s.")

    async def _refresh_job(self, inst: Instance) -> None:
        await self.restarter.refresh(inst)

    # ================================================================ reports from the restarter
    def on_contract(self, inst: Instance, kind: str, detail: str, status: ExitStatus | None) -> None:
        if inst.phase not in (Phase.ONLINE, Phase.DEGRADED):
            return
        inst.restarts += 1
        r = inst.config.restart
        cause = "error" if kind == "error" else "other"
        if inst.history.record():
            # The dependents see the death for what it was: an exit stops restart_on=restart ones, not
            # restart_on=error ones (SMF stops the instance for RSTOP_EXIT before it finds it too quick).
            why = f"Restarting too quickly ({counted(r.limit, 'failure')} within {r.period:g}s), last {detail}."
            self._maintenance(inst, Ev.TOO_QUICK, why, cause=cause)
            return
        if kind == "error":
            self.dispatch(inst, Ev.FAILED, f"Restarting: a process {detail}.", cause="error")
        else:
            self.dispatch(inst, Ev.EXITED, "Restarting: all processes of the service exited.", cause="other")

    def on_health(self, inst: Instance, ok: bool, detail: str) -> None:
        h = inst.config.health
        if h is None or inst.phase not in (Phase.ONLINE, Phase.DEGRADED):
            return
        if ok:
            if inst.marks.get("degraded", {}).get("by") == "probe":
                inst.marks.pop("degraded")
                self.dispatch(inst, Ev.HEALTH_OK, "")
            return
        if h.action == "degrade":
            inst.marks["degraded"] = {"reason": f"Health probe failed: {detail}.", "by": "probe",
                                      "temporary": True, "time": time.time()}
            self.dispatch(inst, Ev.HEALTH_BAD, f"Health probe failed: {detail}.")
            return
        inst.restarts += 1
        if inst.history.record():
            self._maintenance(inst, Ev.TOO_QUICK, f"Restarting too quickly, last health probe failed: {detail}.")
        else:
            self.dispatch(inst, Ev.FAILED, f"Restarting: health probe failed: {detail}.", cause="error")

    # ================================================================ health tasks
    def start_health(self, inst: Instance) -> None:
        if inst.config.health is not None and (inst.health is None or inst.health.done()):
            inst.health = self.nursery.start(self.restarter.health_loop(inst), name=f"health {inst.fmri}")

    def stop_health(self, inst: Instance) -> None:
        if inst.health is not None:
            inst.health.cancel()
            inst.health = None

    # ================================================================ persistence
    def save(self, inst: Instance) -> None:
        """Queue the instance's record: its settings, its state and where it is going, and its contract
        whenever it has one (starting, running or stopping), for a daemon restarted after a crash."""
        contract = inst.contract.to_record() if inst.contract is not None else None
        marks = {k: v for k, v in inst.marks.items() if not v.get("temporary")} if inst.marks else {}
        nstate = inst.next_state
        self.repo.save_instance(InstanceRecord(inst.fmri, inst.service, inst.enabled_set, inst.state.value,
                                               inst.stime, inst.reason, marks, contract,
                                               nstate.value if nstate is not None else None))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def record_settings(self, insts: Iterable[Instance], change: Callable[[Instance], None]) -> None:
        """Apply an operator's change to these instances' settings (enable state, marks, comment) and write it to
        disk before anything acts on it; if it cannot be written, undo it and raise ``Unwritable``."""
        insts = list(insts)
        before = [(i.enabled_set, i.enabled_temp, copy.deepcopy(i.marks), i.comment) for i in insts]
        for inst in insts:
            change(inst)
            self.save(inst)
        try:
            self.repo.flush(durable=True)
        except Unwritable as e:
            for inst, (enabled, temp, marks, comment) in zip(insts, before, strict=True):
                inst.enabled_set, inst.enabled_temp, inst.marks, inst.comment = enabled, temp, marks, comment
                self.save(inst)
            self._unwritable(e)
            raise Unwritable(f"{e}; nothing was changed") from e
        self._written()

    async def recorded(self) -> None:
        """Return once the instance records queued so far are written. An operator's verb answers after it, so that
        what the operator was told is under way (a restart's or a disable's stop) is what a daemon restarted after
        a kill -9 finds, as a restarter action in SMF's repository is: the records of a burst are written a few
        turns of the loop later (``FLUSH_DEFER``), after the stop method's spawn. Not on a full disk (they wait)."""
        if not self.repo.pending or self.unwritable is not None:
            return
        fut = asyncio.get_running_loop().create_future()
        self._recorded.append(fut)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        await fut

    def _flush(self) -> None:
        if (self._jobs_begun or self.evaluation_pending()) and self._flush_waited < FLUSH_DEFER:
            # Work that this burst set going runs first (the spawn requests of the starts it allows go out
            # before the records are written); it is a turn of the loop each, and bounded.
            self._jobs_begun = False
            self._flush_waited += 1
            asyncio.get_running_loop().call_soon(self._flush)
            return
        self._flush_scheduled = False
        self._flush_waited = 0
        try:
            self.repo.flush()
        except Unwritable as e:
            self._unwritable(e)
        else:
            self._written()
        waiting, self._recorded = self._recorded, []
        for fut in waiting:
            if not fut.done():
                fut.set_result(None)

    def _unwritable(self, e: Exception) -> None:
        """The repository cannot be written: say so once, keep what waits, and try again every few seconds."""
        if self.unwritable is None:
            log.error("%s; %d instance records wait, retried every %gs, and "
                      "operators' persistent changes are refused until it can be written", e, self.repo.pending,
                      FLUSH_RETRY)
        self.unwritable = str(e)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(FLUSH_RETRY, self._flush)

    def _written(self) -> None:
        if self.unwritable is not None:
            log.warning("the repository %s is written again (it could not be: %s)", self.repo.path,
                        self.unwritable)
            self.unwritable = None

    # ================================================================ shutdown


    async def shutdown(self) -> None:
        """Stop every instance, dependents before their dependencies, then close."""
        self.shutting_down = True
        active = [f for f, i in self.instances.items()
                  if i.phase not in (Phase.DISABLED, Phase.OFFLINE, Phase.MAINTENANCE, Phase.UNINITIALIZED)]
        for layer in self.graph.stop_layers(active):
            jobs = []
            for f in layer:
                inst = self.instances[f]
                self.dispatch(inst, Ev.DEPS_LOST, "svcmgrd is stopping.")
                if inst.job is not None:
                    jobs.append(inst.job)
            if jobs:
                await asyncio.gather(*jobs, return_exceptions=True)
        self.release_waiters(3)
        await self.close()

    async def close(self) -> None:
        """End the engine's tasks, close the logs and write the repository (the instances stay as they are)."""
        await self.nursery.aclose()
        for inst in self.instances.values():
            if inst.log is not None:
                inst.log.close()
        try:
            self.repo.flush()
        except Unwritable as e:
            log.error("%s on the way out; %d instance records are lost (the next daemon finds the states "
                      "before them)", e, self.repo.pending)


def _last(detail: str) -> str:
    """'start method exited with status 1' -> 'exited with status 1'."""
    for prefix in ("start method ", "Start method "):
        if detail.startswith(prefix):
            return detail[len(prefix):]
    return detail
