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
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from svcmgr import fmri as fmri_mod
from svcmgr.bus import Bus
from svcmgr.eventclasses import SVC_CLEARED, SVC_IMPORTED, SVC_REFRESHED, SVC_STOPPING, state_class
from svcmgr.graph import NEVER, Graph, find_cycles
from svcmgr.instance import Instance
from svcmgr.logs import InstanceLog, PatternMatcher
from svcmgr.machine import Action, Ev, Phase, display, transition
from svcmgr.manifest import (
    InstanceConfig,
    ManifestError,
    ManifestErrors,
    ServiceSpec,
    parse_service,
    resolve_instance,
)
from svcmgr.paths import Paths
from svcmgr.policy import START_RETRIES, Outcome, RestartHistory
from svcmgr.process import ProcessLayer
from svcmgr.reaper import ExitStatus
from svcmgr.repository import InstanceRecord, Repository
from svcmgr.services import EngineError, StopGate
from svcmgr.states import RUNNING, State
from svcmgr.tasks import Nursery
from svcmgr.timings import Recorder, machine_boot

__all__ = ["Engine", "EngineError", "StopGate"]

log = logging.getLogger("svcmgr.engine")

_STOPPING = (Phase.STOPPING, Phase.STOPPING_DISABLE, Phase.STOPPING_MAINT)
_ACTIVE = (Phase.STARTING, Phase.ONLINE, Phase.DEGRADED)
#: Stops someone asked for (an operator, a dependency, a milestone): stop gates run before their stop method.
#: A death, a failed probe or a failed start is not planned: nothing waits.
_PLANNED = frozenset({Ev.DISABLE, Ev.RESTART, Ev.DEPS_LOST, Ev.MARK_MAINT})
#: restart_on value -> stop causes of a dependency that restart the dependent
_RESTART_ON = {
    "none": frozenset(),
    "error": frozenset({"error"}),
    "restart": frozenset({"error", "other"}),
    "refresh": frozenset({"error", "other", "refresh"}),
}


@dataclass
class _Waiter:
    fmri: str
    want: str  # "online" | "disabled"
    future: asyncio.Future[int]


class Engine:
    def __init__(self, *, repo: Repository, bus: Bus, restarter: ProcessLayer, paths: Paths,
                 clock: Callable[[], float] = time.monotonic, timings: Recorder | None = None) -> None:
        self.repo = repo
        self.bus = bus
        self.restarter = restarter
        restarter.bind(self.on_contract, self.on_health)
        self.paths = paths
        self.clock = clock
        #: Start and stop timings: told of every phase an instance enters (svcmgr.timings).
        self.timings = timings if timings is not None else Recorder()
        self.specs: dict[str, ServiceSpec] = {}
        self.editing: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, tuple[str, str]] = {}
        self.instances: dict[str, Instance] = {}
        self.graph = Graph({})
        self.nursery = Nursery("engine")
        self.milestone: str | None = None  # None: all
        self._allowed: set[str] | None = None
        self._dirty: set[str] = set()
        self._eval_scheduled = False
        self._flush_scheduled = False
        self._waiters: list[_Waiter] = []
        self.shutting_down = False
        self.load_errors: list[str] = []
        self._path_task: asyncio.Task[None] | None = None
        self._stop_gates: list[StopGate] = []

    # ================================================================ boot
    def load(self) -> None:
        """Build instances from the repository, adopting contracts an earlier daemon left running.

        Adoption happens only within one boot of the machine: after a reboot
        nothing of the previous daemon runs, and every instance starts afresh."""
        records = self.repo.instances()
        boot = machine_boot()
        same_boot = self.repo.get_meta("boot_id") == boot
        self.repo.set_meta("boot_id", boot)
        for rec in self.repo.services():
            try:
                spec = parse_service(rec.running, rec.source)
            except ManifestErrors as e:
                self.load_errors.append(f"{rec.fmri}: stored configuration is invalid: {e}")
                log.error("skipping %s: %s", rec.fmri, e)
                continue
            self.specs[rec.fmri] = spec
            self.editing[rec.fmri] = rec.editing
            self.sources[rec.fmri] = (rec.source, rec.format)
            for name in spec.instances:
                cfg = resolve_instance(spec, name)
                inst = self._new_instance(cfg)
                r = records.get(str(cfg.fmri))
                if r is not None:
                    inst.enabled_set = r.enabled
                    inst.marks = {k: v for k, v in (r.marks or {}).items() if not v.get("temporary")}
                    running = r.state in ("online", "degraded") and same_boot and inst.effective_enabled
                    if running and r.contract:
                        if self.restarter.adopt(inst, r.contract):
                            self._resume(inst, r, f"Adopted running contract {r.contract.get('ctid')} "
                                                  f"({len(inst.pids)} processes) after a daemon restart.")
                    elif running and self._untracked(cfg):
                        self._resume(inst, r, "Still online after a daemon restart (nothing to track).")
                    elif r.contract:
                        self.restarter.discard(r.contract)
        self._rebuild_graph()
        self.restarter.sweep(self.instances.values())

    @staticmethod
    def _untracked(cfg: InstanceConfig) -> bool:
        """Online without processes to track: transient services and ``:true`` starts (milestones)."""
        start = cfg.methods.get("start")
        return cfg.duration == "transient" or start is None or start.exec.kind == "true"

    def _resume(self, inst: Instance, rec: InstanceRecord, note: str) -> None:
        inst.phase = Phase.DEGRADED if rec.state == "degraded" else Phase.ONLINE
        inst.state = State(rec.state)
        inst.stime = rec.stime or time.time()
        inst.reason = rec.reason or ""
        assert inst.log is not None
        inst.log.note(note)

    def boot(self) -> None:
        """Bring every instance to where its enable state and marks say."""
        for inst in self.instances.values():
            if inst.phase in RUNNING_PHASES:
                self._publish_state(inst, None)
                self._start_health(inst)
                continue
            if "maintenance" in inst.marks:
                self._enter(inst, Phase.MAINTENANCE, inst.marks["maintenance"].get("reason", ""))
                continue
            self._evaluate(inst)
        self._path_task = self.nursery.start(self._watch_paths(), name="path-dependencies")

    async def _watch_paths(self) -> None:
        """Path dependencies have no events: look at them every second."""
        while True:
            await asyncio.sleep(1.0)
            for f in self.graph.path_dependents():
                inst = self.instances.get(f)
                if inst is not None and inst.phase == Phase.OFFLINE:
                    self._mark_dirty([f])

    def _new_instance(self, cfg: InstanceConfig) -> Instance:
        f = str(cfg.fmri)
        inst = Instance(f, cfg, RestartHistory(cfg.restart.limit, cfg.restart.period, self.clock))
        on_line = None
        if cfg.log.patterns:
            on_line = PatternMatcher([(p.regex, p.cls) for p in cfg.log.patterns],
                                     lambda cls, line, f=f: self.bus.emit(cls, f, line=line, source="log"))
        inst.log = InstanceLog(self.paths.instance_log(cfg.fmri.log_name),
                               os.path.join(self.paths.fifos, cfg.fmri.log_name), cfg.log.max_size,
                               cfg.log.keep, on_line)
        inst.log.open(asyncio.get_running_loop())
        self.instances[f] = inst
        return inst

    def _rebuild_graph(self) -> None:
        self.graph = Graph({f: i.config for f, i in self.instances.items()})
        self._recompute_allowed()

    # ================================================================ views
    def view(self, f: str) -> tuple[State, bool] | None:
        """(state for dependency evaluation, enabled) of an instance; stopping counts as its target."""
        inst = self.instances.get(f)
        if inst is None:
            return None
        enabled = self._wants_enabled(inst)
        p = inst.phase
        if p == Phase.STOPPING:
            return State.OFFLINE, enabled
        if p == Phase.STOPPING_DISABLE:
            return State.DISABLED, enabled
        if p == Phase.STOPPING_MAINT:
            return State.MAINTENANCE, enabled
        return inst.state, enabled

    def in_transition(self) -> list[Instance]:
        """Instances starting or stopping now."""
        return [i for i in self.instances.values() if i.next_state is not None or i.phase == Phase.STARTING]

    def settled(self) -> bool:
        """Nothing in transition and no evaluation pending: every instance is where it will stay for now."""
        return not self._dirty and not self.in_transition()

    def _wants_enabled(self, inst: Instance) -> bool:
        return inst.effective_enabled and (self._allowed is None or inst.fmri in self._allowed)

    def lookup(self, pattern: str, *, services: bool = False) -> list[str]:
        """Instance FMRIs (or service FMRIs) named by an abbreviation; raises EngineError."""
        if pattern in self.instances and pattern.startswith("svc:/"):
            return [pattern]  # a full instance FMRI names itself alone: no need to parse every candidate
        cands = [fmri_mod.parse(f) for f in self.instances]
        if services:
            cands += [fmri_mod.parse(s) for s in self.specs]
        try:
            hits = fmri_mod.match(pattern, cands)
        except fmri_mod.FmriError as e:
            raise EngineError(str(e), 2) from None
        if not hits:
            raise EngineError(f"{pattern}: no service or instance matches", 1)
        return [str(h) for h in hits]

    def resolve_one(self, pattern: str, *, allow_service: bool = False) -> str:
        """Exactly one instance (or service) named by ``pattern``; an ambiguous one lists the candidates."""
        try:
            want = fmri_mod.parse(pattern)
        except fmri_mod.FmriError as e:
            raise EngineError(str(e), 2) from None
        hits = self.lookup(pattern, services=allow_service)
        if allow_service and want.instance is None:
            svcs = sorted({str(fmri_mod.parse(h).service_fmri) for h in hits})
            if len(svcs) == 1:
                return svcs[0]
            raise EngineError(f"{pattern}: ambiguous, it matches: {', '.join(svcs)}", 1)
        insts = [h for h in hits if fmri_mod.parse(h).instance]
        if len(insts) != 1:
            if not insts:
                raise EngineError(f"{pattern}: names a service with no instance", 1)
            raise EngineError(f"{pattern}: ambiguous, it matches: {', '.join(insts)}", 1)
        return insts[0]

    def resolve_many(self, pattern: str) -> list[str]:
        """Instances named by a pattern; a service pattern names all of its instances."""
        try:
            want = fmri_mod.parse(pattern) if not any(c in pattern for c in "*?[") else None
        except fmri_mod.FmriError as e:
            raise EngineError(str(e), 2) from None
        hits = self.lookup(pattern)
        insts = [h for h in hits if fmri_mod.parse(h).instance]
        services = {str(fmri_mod.parse(h).service_fmri) for h in insts}
        if want is not None and len(services) > 1:
            raise EngineError(f"{pattern}: ambiguous, it matches: {', '.join(sorted(services))}", 1)
        return insts

    # ================================================================ dispatch
    def dispatch(self, inst: Instance, ev: Ev, reason: str | None = None, *, cause: str = "other",
                 immediate: bool = False) -> bool:
        """Feed one event to an instance's state machine and start the action it names."""
        t = transition(inst.phase, ev)
        if t is None:
            return False
        nxt, action = t
        if nxt in _STOPPING and inst.phase not in _STOPPING:
            inst.stop_cause = cause
            inst.stop_planned = ev in _PLANNED and not immediate
        self._enter(inst, nxt, reason)
        self._act(inst, action, immediate=immediate)
        return True

    def _enter(self, inst: Instance, phase: Phase, reason: str | None) -> None:
        prev_phase, prev_state = inst.phase, inst.state
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
        if phase in _STOPPING and prev_phase in (Phase.ONLINE, Phase.DEGRADED, Phase.STARTING):
            self._stop_health(inst)
            if prev_phase != Phase.STARTING:
                self.bus.emit(SVC_STOPPING, inst.fmri, state=inst.state.value,
                              next_state=nstate.value if nstate else None, cause=inst.stop_cause,
                              planned=inst.stop_planned, reason=inst.reason)
                self._propagate_stop(inst, inst.stop_cause)
        self._save(inst)
        if changed:
            self._publish_state(inst, prev_state)
            if state in RUNNING and prev_state not in RUNNING:
                self._start_health(inst)
                self._exclude_dependents(inst)
                self._mark_dirty(d for d, _ in self.graph.dependents_of(inst.fmri))
            else:
                self._mark_dirty(self.graph.all_dependents(inst.fmri))
            self._check_waiters()
        elif phase != prev_phase and phase in _STOPPING:
            # Dependents see a stopping dependency as gone already.
            self._mark_dirty(self.graph.all_dependents(inst.fmri))

    def _publish_state(self, inst: Instance, prev: State | None) -> None:
        self.bus.emit(state_class(inst.state.value), inst.fmri, state=inst.state.value,
                      previous=prev.value if prev else None,
                      next_state=inst.next_state.value if inst.next_state else None,
                      reason=inst.reason, stime=inst.stime)

    def _act(self, inst: Instance, action: Action, *, immediate: bool = False) -> None:
        if action == Action.NONE:
            return
        if action == Action.EVAL:
            self._mark_dirty([inst.fmri])
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

        async def job() -> None:
            if old is not None and not old.done():
                old.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await old
            await coro

        inst.job = self.nursery.start(job(), name=f"{inst.fmri}")

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
        if inst.history.record():
            self._maintenance(inst, Ev.TOO_QUICK,
                              f"Restarting too quickly ({r.limit} failures within {r.period:g}s), last {detail}.")
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

    # ================================================================ graph
    def _mark_dirty(self, fmris: Iterable[str]) -> None:
        self._dirty.update(fmris)
        if self._dirty and not self._eval_scheduled:
            self._eval_scheduled = True
            asyncio.get_running_loop().call_soon(self._run_evaluations)

    def _run_evaluations(self) -> None:
        self._eval_scheduled = False
        rounds = 0
        while self._dirty and rounds < 10_000:
            rounds += 1
            batch, self._dirty = self._dirty, set()
            for f in sorted(batch):
                inst = self.instances.get(f)
                if inst is not None:
                    self._evaluate(inst)
        self._check_waiters()

    def _evaluate(self, inst: Instance) -> None:
        if self.shutting_down:
            return
        wants = self._wants_enabled(inst)
        p = inst.phase
        if p == Phase.UNINITIALIZED:
            self.dispatch(inst, Ev.ENABLE if wants else Ev.DISABLE,
                          "" if wants else self.disabled_reason(inst))
        elif p == Phase.DISABLED:
            if wants:
                self.dispatch(inst, Ev.ENABLE, "")
        elif p == Phase.OFFLINE:
            if not wants:
                self.dispatch(inst, Ev.DISABLE, self.disabled_reason(inst))
            elif self.graph.met(inst.fmri, self.view):
                self.dispatch(inst, Ev.DEPS_MET, "")
            else:
                inst.reason = "Waiting for dependencies."
        elif p in _ACTIVE and not wants:
            self.dispatch(inst, Ev.DISABLE, self.disabled_reason(inst))

    def disabled_reason(self, inst: Instance) -> str:
        if self._allowed is not None and inst.fmri not in self._allowed:
            return f"Held back by milestone {self.milestone}."
        if inst.enabled_temp is False:
            return "Temporarily disabled by an administrator."
        return "Disabled by an administrator."

    def _propagate_stop(self, inst: Instance, cause: str) -> None:
        """A running instance is stopping: stop the dependents its restart_on values name."""
        for dep_fmri, d in self.graph.dependents_of(inst.fmri):
            dep = self.instances.get(dep_fmri)
            if dep is None or dep.phase not in _ACTIVE or d.grouping == "exclude_all":
                continue
            if cause not in _RESTART_ON[d.restart_on]:
                continue
            if d.grouping == "require_any" and self._group_still_met(d, inst.fmri):
                continue
            self.dispatch(dep, Ev.DEPS_LOST, f"Dependency {inst.fmri} stopped (restart_on={d.restart_on}).")

    def _group_still_met(self, d: Any, leaving: str) -> bool:
        """Whether a require_any group keeps a running member besides ``leaving``."""
        for _declared, insts in self.graph.members(d):
            for i in insts or ():
                v = self.view(i)
                if i != leaving and v is not None and v[0] in RUNNING:
                    return True
        return False

    def _exclude_dependents(self, inst: Instance) -> None:
        for dep_fmri, d in self.graph.dependents_of(inst.fmri):
            dep = self.instances.get(dep_fmri)
            if dep is not None and d.grouping == "exclude_all" and dep.phase in _ACTIVE:
                self.dispatch(dep, Ev.DEPS_LOST, f"Excluded by {inst.fmri}, which is running.")

    # ================================================================ health tasks
    def _start_health(self, inst: Instance) -> None:
        if inst.config.health is not None and (inst.health is None or inst.health.done()):
            inst.health = self.nursery.start(self.restarter.health_loop(inst), name=f"health {inst.fmri}")

    def _stop_health(self, inst: Instance) -> None:
        if inst.health is not None:
            inst.health.cancel()
            inst.health = None

    # ================================================================ persistence
    def _save(self, inst: Instance) -> None:
        contract = None
        if inst.contract is not None and inst.phase in (Phase.ONLINE, Phase.DEGRADED):
            contract = inst.contract.to_record()
        marks = {k: v for k, v in inst.marks.items() if not v.get("temporary")}
        self.repo.save_instance(InstanceRecord(inst.fmri, inst.service, inst.enabled_set, inst.state.value,
                                               inst.stime, inst.reason, marks, contract))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        try:
            self.repo.flush()
        except Exception:
            log.exception("cannot write the repository")

    # ================================================================ waiting (svcadm -s)
    def wait_for(self, fmri: str, want: str) -> asyncio.Future[int]:
        """A future giving 0 when ``fmri`` reaches ``want``, 3 when it cannot, 4 when its dependencies cannot."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(_Waiter(fmri, want, fut))
        self._check_waiters()
        return fut

    def _check_waiters(self) -> None:
        if not self._waiters:
            return
        keep = []
        for w in self._waiters:
            if w.future.done():
                continue
            code = self._wait_result(w)
            if code is None:
                keep.append(w)
            else:
                w.future.set_result(code)
        self._waiters = keep

    def _wait_result(self, w: _Waiter) -> int | None:
        inst = self.instances.get(w.fmri)
        if inst is None:
            return 3
        if w.want == "online":
            if inst.phase in (Phase.ONLINE, Phase.DEGRADED):
                return 0
            if inst.phase == Phase.MAINTENANCE or (inst.phase == Phase.DISABLED and not self._wants_enabled(inst)):
                return 3
            if inst.phase == Phase.OFFLINE and self.graph.satisfiability(inst.fmri, self.view) == NEVER:
                return 4
            return None
        if inst.phase == Phase.DISABLED:
            return 0
        if inst.phase == Phase.MAINTENANCE:
            return 3
        return None

    # ================================================================ operator requests
    def enable(self, fmris: list[str], *, temporary: bool, recursive: bool) -> list[str]:
        targets = list(fmris)
        if recursive:
            seen: set[str] = set()
            for f in fmris:
                seen |= self.graph.closure(f, ("require_all", "require_any"))
            targets = sorted(seen)
        for f in targets:
            inst = self.instances[f]
            if temporary:
                inst.enabled_temp = True
            else:
                inst.enabled_set = True
                inst.enabled_temp = None
            self.dispatch(inst, Ev.ENABLE, "")
            self._save(inst)
            self._mark_dirty([f, *self.graph.all_dependents(f)])
        self.repo.flush()
        return targets

    def disable(self, fmris: list[str], *, temporary: bool) -> None:
        for f in fmris:
            inst = self.instances[f]
            if temporary:
                inst.enabled_temp = False
            else:
                inst.enabled_set = False
                inst.enabled_temp = None
            reason = self.disabled_reason(inst)
            inst.history.reset()  # as SMF: an operator's disable forgets the restart history
            if inst.phase == Phase.MAINTENANCE:

                inst.marks.pop("maintenance", None)
            self.dispatch(inst, Ev.DISABLE, reason)
            if inst.phase in _STOPPING or inst.phase == Phase.DISABLED:
                inst.reason = reason
            self._save(inst)
        self.repo.flush()

    def restart(self, fmris: list[str]) -> list[str]:
        done = []
        for f in fmris:
            inst = self.instances[f]
            if inst.phase not in (Phase.ONLINE, Phase.DEGRADED):
                continue
            inst.history.reset()
            if self.dispatch(inst, Ev.RESTART, "Restarting on request of an administrator."):
                done.append(f)
        return done

    def clear(self, fmris: list[str]) -> list[str]:
        done = []
        for f in fmris:
            inst = self.instances[f]
            if inst.phase == Phase.MAINTENANCE or inst.phase == Phase.STOPPING_MAINT:
                mark = inst.marks.pop("maintenance", None)
                inst.history.reset()
                inst.start_failures = 0
                self.dispatch(inst, Ev.CLEAR, "")
                done.append(f)

                self.bus.emit(SVC_CLEARED, f, state="maintenance", by=(mark or {}).get("by"),
                              case=(mark or {}).get("case"))
            elif inst.phase == Phase.DEGRADED:
                mark = inst.marks.pop("degraded", None)
                self.dispatch(inst, Ev.CLEAR, "")
                done.append(f)
                self.bus.emit(SVC_CLEARED, f, state="degraded", by=(mark or {}).get("by"),
                              case=(mark or {}).get("case"))
            self._save(inst)
        self.repo.flush()
        return done

    def mark(self, fmris: list[str], what: str, *, temporary: bool, immediate: bool,
             reason: str | None = None, by: str = "operator", case: str | None = None) -> list[str]:
        done = []
        for f in fmris:
            inst = self.instances[f]
            extra = {"case": case} if case else {}
            if what == "maintenance":
                if inst.phase in (Phase.MAINTENANCE, Phase.STOPPING_MAINT):
                    if self._annotate(inst, "maintenance", case):
                        done.append(f)
                    continue
                text = reason or ("Maintenance requested by an administrator." if by == "operator"
                                  else "Put in maintenance.")
                inst.marks["maintenance"] = {"reason": text, "by": by, "temporary": temporary,
                                             "time": time.time(), **extra}
                self.dispatch(inst, Ev.MARK_MAINT, text, cause="error" if by != "operator" else "other",
                              immediate=immediate)
                done.append(f)
            else:
                if inst.phase != Phase.ONLINE:
                    if inst.phase == Phase.DEGRADED and self._annotate(inst, "degraded", case):
                        done.append(f)
                    continue
                text = reason or ("Degraded by an administrator." if by == "operator" else "Degraded.")
                inst.marks["degraded"] = {"reason": text, "by": by, "temporary": temporary,
                                          "time": time.time(), **extra}
                self.dispatch(inst, Ev.MARK_DEGRADED, text)
                done.append(f)
            self._save(inst)
        self.repo.flush()
        return done

    def _annotate(self, inst: Instance, kind: str, case: str | None) -> bool:
        """A fault case explains a mark it did not set (the restarter's maintenance): record its UUID."""
        m = inst.marks.get(kind)
        if not case or m is None or m.get("case"):
            return False
        m["case"] = case
        self._save(inst)
        return True

    def set_milestone(self, target: str) -> str:
        if target in ("all", "none"):
            self.milestone = None if target == "all" else "none"
        else:
            self.milestone = target
        if target == "all":
            for inst in self.instances.values():
                inst.enabled_temp = None
        self._recompute_allowed()
        self._mark_dirty(self.instances)
        return self.milestone or "all"

    def _recompute_allowed(self) -> None:
        if self.milestone is None:
            self._allowed = None
        elif self.milestone == "none":
            self._allowed = set()
        else:
            self._allowed = self.graph.closure(self.milestone, ("require_all", "require_any", "optional_all"))

    # ================================================================ configuration
    def check_import(self, specs: list[ServiceSpec], existing: Mapping[str, ServiceSpec] | None = None) -> list[str]:
        """Refuse duplicates and cycles among these specs and what is already imported (``existing``: a
        copy of the imported specs, so that the check may run in another thread); return warnings."""
        errors: list[ManifestError] = []
        seen: dict[str, str] = {}
        for s in specs:
            f = str(s.fmri)
            if f in seen:
                errors.append(ManifestError(s.source, "name", f"{f} is also declared in {seen[f]}"))
            seen[f] = s.source
        for s in specs:
            for n in s.instances:
                cfg = resolve_instance(s, n)
                errors.extend(ManifestError(s.source, f"resources.{key}", f"{cfg.fmri}: {why}")
                              for key, why in self.restarter.refusals(cfg))
        if errors:
            raise ManifestErrors(errors)
        merged = {f: sp for f, sp in (self.specs if existing is None else existing).items() if f not in seen}
        merged.update({str(s.fmri): s for s in specs})
        configs = {str(c.fmri): c for sp in merged.values() for c in
                   (resolve_instance(sp, n) for n in sp.instances)}
        cycles = find_cycles(configs)
        if cycles:
            by_fmri = {str(s.fmri): s.source for s in specs}
            for cyc in cycles:
                src = next((by_fmri[str(fmri_mod.parse(c).service_fmri)] for c in cyc
                            if str(fmri_mod.parse(c).service_fmri) in by_fmri), "")
                errors.append(ManifestError(src, "dependencies", "dependency cycle: " + " -> ".join(cyc)))
            raise ManifestErrors(errors)
        g = Graph(configs)
        warnings = []
        for s in specs:
            for n in s.instances:
                f = str(s.fmri.with_instance(n))
                for d, t in g.missing_targets(f):
                    warnings.append(f"{s.source}: {f}: dependency {d.name!r} names {t}, "
                                    "which is not imported (the instance will wait for it)"
                                    if d.grouping in ("require_all", "require_any") else
                                    f"{s.source}: {f}: {d.grouping} dependency {d.name!r} names {t}, "
                                    "which is not imported (ignored until it is)")
        return warnings

    def import_specs(self, specs: list[ServiceSpec], formats: list[str]) -> list[str]:
        """Store and apply specs, all or nothing; return warnings."""
        warnings = self.check_import(specs)
        changed = [(s, fmt) for s, fmt in zip(specs, formats, strict=True)
                   if str(s.fmri) not in self.specs or self.editing.get(str(s.fmri)) != s.to_dict()
                   or self.specs[str(s.fmri)].to_dict() != s.to_dict()]
        self.repo.import_services([(str(s.fmri), s.source, fmt, s.to_dict()) for s, fmt in changed])
        for s, fmt in changed:
            f = str(s.fmri)
            self.editing[f] = s.to_dict()
            self.sources[f] = (s.source, fmt)
            self._apply_spec(s)
        self._rebuild_graph()
        self._mark_dirty(self.instances)
        self.bus.emit(SVC_IMPORTED, "", services=[str(s.fmri) for s in specs])
        return warnings

    def _apply_spec(self, spec: ServiceSpec) -> None:
        f = str(spec.fmri)
        old = self.specs.get(f)
        self.specs[f] = spec
        for name in spec.instances:
            cfg = resolve_instance(spec, name)
            inst = self.instances.get(str(cfg.fmri))
            if inst is None:
                self._new_instance(cfg)
            else:
                inst.config = cfg
                inst.history.configure(cfg.restart.limit, cfg.restart.period)
                if inst.log is not None:
                    inst.log.max_size = cfg.log.max_size
                    inst.log.keep = cfg.log.keep
                if inst.phase in (Phase.ONLINE, Phase.DEGRADED):
                    self.dispatch(inst, Ev.REFRESH)
                    self._propagate_stop(inst, "refresh")
        if old is not None:
            for name in old.instances:
                if name not in spec.instances:
                    self._drop_instance(str(old.fmri.with_instance(name)))

    def _drop_instance(self, f: str) -> None:
        inst = self.instances.pop(f, None)
        if inst is None:
            return

        old_job = inst.job

        async def stop_and_close() -> None:
            """The instance left the manifest: end its processes (it is no longer in the table,
            so no state machine is fed any more), then its log."""
            if old_job is not None and not old_job.done():
                old_job.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await old_job
            self._stop_health(inst)
            if inst.contract is not None:
                await self.restarter.stop(inst)
            if inst.log is not None:
                inst.log.close(remove_fifo=True)

        self.nursery.start(stop_and_close(), name=f"drop {f}")
        self.repo.delete_instances([f])
        self.bus.emit(state_class("deleted"), f, state="deleted")

    async def delete_service(self, service: str) -> None:
        spec = self.specs.get(service)
        if spec is None:
            raise EngineError(f"{service}: not imported")
        fmris = [str(spec.fmri.with_instance(n)) for n in spec.instances]
        for f in fmris:
            inst = self.instances[f]
            if inst.phase not in (Phase.DISABLED, Phase.MAINTENANCE, Phase.OFFLINE, Phase.UNINITIALIZED):
                inst.enabled_temp = False
                self.dispatch(inst, Ev.DISABLE, "Being deleted.")
        for f in fmris:
            inst = self.instances[f]
            if inst.job is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await inst.job
        for f in fmris:
            inst = self.instances.pop(f)
            self._stop_health(inst)
            if inst.log is not None:
                inst.log.close(remove_fifo=True)
            self.bus.emit(state_class("deleted"), f, state="deleted")
        del self.specs[service]
        self.editing.pop(service, None)
        self.sources.pop(service, None)
        self.repo.delete_service(service)
        self._rebuild_graph()
        self._mark_dirty(self.instances)

    def set_editing(self, service: str, data: dict[str, Any]) -> None:
        source, _fmt = self.sources.get(service, ("", "toml"))
        parse_service(data, source)  # raises ManifestErrors
        self.repo.set_editing(service, data)
        self.editing[service] = data

    def refresh(self, fmris: list[str]) -> list[str]:
        """Copy editing configuration into the running snapshot and refresh the instances."""
        services = sorted({str(fmri_mod.parse(f).service_fmri) for f in fmris})
        for s in services:
            data = self.editing.get(s)
            if data is None:
                continue
            source, _ = self.sources.get(s, ("", "toml"))
            spec = parse_service(data, source)
            self.check_import([spec])
            self.repo.refresh(s)
            self._apply_spec(spec)
        self._rebuild_graph()
        self._mark_dirty(self.instances)
        self.bus.emit(SVC_REFRESHED, "", services=services)
        return fmris

    # ================================================================ shutdown
    async def detach(self) -> None:
        """Leave every service running for the next daemon: record contracts, close without stopping."""
        self.shutting_down = True
        for inst in self.instances.values():
            self._save(inst)
        for w in self._waiters:
            if not w.future.done():
                w.future.set_result(1)
        await self.nursery.aclose()
        for inst in self.instances.values():
            if inst.log is not None:
                inst.log.close()
        self.repo.flush()


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
        for w in self._waiters:
            if not w.future.done():
                w.future.set_result(3)
        await self.nursery.aclose()
        for inst in self.instances.values():
            if inst.log is not None:
                inst.log.close()
        self.repo.flush()


RUNNING_PHASES = (Phase.ONLINE, Phase.DEGRADED)


def _last(detail: str) -> str:
    """'start method exited with status 1' -> 'exited with status 1'."""
    for prefix in ("start method ", "Start method "):
        if detail.startswith(prefix):
            return detail[len(prefix):]
    return detail
