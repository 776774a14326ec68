"""A reference model of SMF's dependency graph, for the model-based tests of svcmgr's engine.

Written from illumos' svc.startd: ``graph.c`` (the three-valued evaluation, the start and
stop propagation, the milestone subgraph), ``transition.c`` (what entering each state
propagates) and ``restarter.c`` (which cause of a stop carries which ``restarter_error_t``,
what resets the start history, maintenance). No code is copied; each part names the
function it follows. Pure Python, no I/O and no import of svcmgr: it is a second witness,
so that a test can compare the real engine, driven through a fake process layer, with what
SMF would do after the same operations.

The model is *settled*: the restarter completes every method at once, so after an
operation each instance is where SMF would leave it. Where graph.c's event-driven
propagation can leave a startable instance waiting for an unrelated event (its comments
call such walks optional), the model takes the intent, which svcmgr implements:
an enabled offline instance whose dependencies are met starts (``settle``). The choices
are listed in docs/smf-differences.md ("Dependency engine").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["FAULT", "NONE", "REFRESH", "RESTART", "Group", "Instance", "Model"]

# restarter_error_t (librestart.h): how grave the stop of a dependency was. A dependency
# group stops its running dependent when NONE < err <= its restart_on level
# (propagate_stop() in graph.c).
NONE, FAULT, RESTART, REFRESH = 0, 1, 2, 3
LEVEL = {"none": NONE, "error": FAULT, "restart": RESTART, "refresh": REFRESH}

RUNNING = frozenset({"online", "degraded"})
#: Consecutive start-method failures that mean maintenance (FAULT_THRESHOLD in startd.h).
FAULT_THRESHOLD = 3


@dataclass(frozen=True)
class Group:
    """A dependency property group: a GVT_GROUP vertex and its entities."""

    name: str
    grouping: str  # require_all | require_any | optional_all | exclude_all
    restart_on: str  # none | error | restart | refresh
    members: tuple[str, ...]  # instance FMRIs (svc:/a:b) or service FMRIs (svc:/a)


@dataclass
class Instance:
    """A GVT_INST vertex with what its restarter keeps of it."""

    fmri: str
    groups: tuple[Group, ...] = ()
    enabled: bool = True  # general/enabled (GV_ENBLD_NOOVR)
    override: bool | None = None  # general_ovr/enabled: svcadm -t, milestones
    has_process: bool = True  # a contract service (not transient, not a milestone)
    limit: int = 5  # svcmgr's restart policy: this many deaths ...
    period: float = 2400.0  # ... within this many seconds is "restarting too quickly"
    state: str = "uninitialized"
    reason: str = ""
    faults: int = 0  # start-method failures in a row (i_fault_count)
    script: list[str] = field(default_factory=list)  # outcomes of the next starts: "retry" | "fatal"
    deaths: list[float] = field(default_factory=list)  # restart history

    @property
    def service(self) -> str:
        return self.fmri.rsplit(":", 1)[0]

    @property
    def effective_enabled(self) -> bool:
        """GV_ENABLED: the override when there is one, else general/enabled."""
        return self.enabled if self.override is None else self.override


class Model:
    """The graph engine and the restarter of svc.startd, settled after every operation."""

    def __init__(self, instances: Iterable[Instance], clock: Callable[[], float]) -> None:
        self.instances = {i.fmri: i for i in instances}
        self.by_service: dict[str, list[Instance]] = {}
        for i in sorted(self.instances.values(), key=lambda i: i.fmri):
            self.by_service.setdefault(i.service, []).append(i)
        self.clock = clock
        self.milestone: str | None = None  # None: all; "none"; or an instance FMRI
        self.stopped: set[str] = set()  # running instances that stopped since the last ``begin``
        self.started: set[str] = set()  # instances that came online since the last ``begin``
        #: (instances, instance): an administrator's disable of the instance waited for those to stop
        self.orders: list[tuple[frozenset[str], str]] = []
        self._starting: set[str] = set()  # the starts of the current wave not done yet

    # ------------------------------------------------------------------ the graph
    def targets(self, member: str) -> list[Instance]:
        """The configured instances a dependency entity names (a service names all of its)."""
        if ":" in member[5:]:
            inst = self.instances.get(member)
            return [inst] if inst is not None else []
        return list(self.by_service.get(member, ()))

    def dependents(self, inst: Instance) -> list[tuple[Instance, Group]]:
        """(instance, group) for each group that names ``inst`` or its service: graph_walk_dependents()
        from an instance reaches its groups directly and through its GVT_SVC vertex."""
        out = []
        for other in sorted(self.instances.values(), key=lambda i: i.fmri):
            for g in other.groups:
                if inst.fmri in g.members or inst.service in g.members:
                    out.append((other, g))
        return out

    # ------------------------------------------------------------------ satisfiability (graph.c)
    def dependency_satisfied(self, member: str, satbility: bool) -> int:
        """dependency_satisfied() for an entity: 1 met, 0 not yet, -1 never without an operator."""
        if member.startswith("svc:/") and ":" in member[5:]:
            inst = self.instances.get(member)
            if inst is None:  # not GV_CONFIGURED: absent
                return -1
            return self._instance_value(inst, satbility)
        insts = self.by_service.get(member, [])
        if not insts:  # a GVT_SVC vertex without instances
            return -1
        return self._any([i.fmri for i in insts], satbility)  # a service is a require_any of its instances

    def _instance_value(self, inst: Instance, satbility: bool) -> int:
        if inst.state in RUNNING:
            return 1
        if inst.state == "offline":
            if not satbility:
                return 0
            return 0 if self.instance_satisfied(inst, True) != -1 else -1
        if inst.state in ("disabled", "maintenance"):
            return -1
        return 0  # uninitialized

    def instance_satisfied(self, inst: Instance, satbility: bool) -> int:
        """instance_satisfied(): the instance vertex is a require_all of its groups."""
        return _all_of((self.group_satisfied(g, satbility) for g in inst.groups), satbility)

    def group_satisfied(self, g: Group, satbility: bool) -> int:
        return {"require_all": self._all, "require_any": self._any, "optional_all": self._optional,
                "exclude_all": self._exclude}[g.grouping](list(g.members), satbility)

    def _all(self, members: list[str], satbility: bool) -> int:
        """require_all_satisfied()."""
        return _all_of((self.dependency_satisfied(m, satbility) for m in members), satbility)

    def _any(self, members: list[str], satbility: bool) -> int:
        """require_any_satisfied(): satisfiable while one member is."""
        if not members:
            return 1
        satisfiable = False
        for m in members:
            s = self.dependency_satisfied(m, satbility)
            if s == 1:
                return 1
            if satbility and s == 0:
                satisfiable = True
        return 0 if (not satbility or satisfiable) else -1

    def _optional_member(self, inst: Instance, satbility: bool) -> int | None:
        """One instance of an optional_all group: None when it does not qualify (missing, disabled,
        in maintenance); an offline instance that can never start counts as satisfied."""
        if not inst.effective_enabled or inst.state == "maintenance":
            return None
        if inst.state == "offline":
            i = self.dependency_satisfied(inst.fmri, True)
            return 1 if i == -1 else i
        if inst.state == "disabled":  # enabled, not out of disabled yet
            return 0
        return self._instance_value(inst, satbility)

    def _optional(self, members: list[str], satbility: bool) -> int:
        """optional_all_satisfied(): a member none of whose instances qualifies is skipped; of the others,
        one satisfied instance satisfies the member, one that may still be is enough to wait for."""
        def member(m: str) -> int:
            values = [v for v in (self._optional_member(i, satbility) for i in self.targets(m)) if v is not None]
            return 1 if not values or 1 in values else 0 if 0 in values else -1
        return _all_of((member(m) for m in members), satbility)

    def _exclude(self, members: list[str], satbility: bool) -> int:
        """exclude_all_satisfied(): the first member that is not disabled or in maintenance decides."""
        for m in members:
            for inst in self.targets(m):
                if inst.state in RUNNING:
                    return -1 if inst.effective_enabled else 0
                if inst.state in ("offline", "uninitialized"):
                    return 0
        return 1

    # ------------------------------------------------------------------ operations
    def begin(self) -> None:
        """Forget what the last operation stopped and started."""
        self.stopped.clear()
        self.started.clear()
        self.orders.clear()

    def boot(self) -> None:
        """Every instance leaves uninitialized as its enabled property says (configure_vertex())."""
        self.settle()

    def enable(self, fmri: str, *, temporary: bool) -> None:
        inst = self.instances[fmri]
        self._set_enabled(inst, True, temporary)

    def disable(self, fmri: str, *, temporary: bool) -> None:
        inst = self.instances[fmri]
        self._set_enabled(inst, False, temporary)

    def _set_enabled(self, inst: Instance, value: bool, temporary: bool) -> None:
        """svcadm's set_inst_enabled(): -t writes general_ovr/enabled; otherwise general/enabled, and the
        override goes. Under a milestone a change of general/enabled may move instances in or out of the
        subgraph (dgraph_update_general() -> eval_subgraph())."""
        if temporary:
            inst.override = value
        else:
            before = self.subgraph()
            inst.enabled = value
            inst.override = None
            self._subgraph_changed(before)
        if not value:
            self._admin_disable(inst)
        self.settle()

    def _admin_disable(self, inst: Instance, inside: set[str] | None = None) -> None:
        """ADMIN_DISABLE (restarter_process_events()): the start times reset, and an instance in
        maintenance leaves it (unmaintain_instance(), through uninitialized to disabled). A running one
        waits until its subtree is down (graph_enable_by_vertex()), or, disabled by a milestone (``inside``:
        its subgraph), until no dependent outside the milestone runs (disable_nonsubgraph_leaves()): what
        it must wait for is noted."""
        inst.deaths.clear()
        if inst.state in RUNNING:
            subtree = self.disable_subtree(inst) if inside is None else self.disable_subtree(inst, inside)
            up = frozenset(f for f in subtree if self.instances[f].state in RUNNING)
            if up:
                self.orders.append((up, inst.fmri))
            if inside is None:  # offline_subtree_leaves(): each running one stops (STOP_RESET, RSTOP_DEPENDENCY),
                for f in sorted(up):  # reached through an offline member too, where no stop propagates
                    dep = self.instances[f]
                    if dep.state in RUNNING:
                        dep.deaths.clear()
                        self._stop(dep, "offline", RESTART)
        if inst.state == "maintenance":
            inst.state, inst.reason, inst.faults = "uninitialized", "", 0

    def restart(self, fmri: str) -> None:
        """ADMIN_RESTART: only a running instance; a stop for RSTOP_RESTART, the start times reset."""
        inst = self.instances[fmri]
        if inst.state not in RUNNING:
            return
        inst.deaths.clear()
        self._stop(inst, "offline", RESTART)
        self.settle()

    def refresh(self, fmri: str) -> None:
        """A refresh of a running instance propagates RERR_REFRESH (gt_internal_online_or_degraded())."""
        inst = self.instances[fmri]
        if inst.state in RUNNING:
            self._propagate_stop(inst, REFRESH)
        self.settle()

    def clear(self, fmri: str) -> None:
        """ADMIN_MAINT_OFF (unmaintain_instance()): maintenance -> uninitialized -> offline or disabled;
        svcmgr's clear of degraded (svc.startd ignores ADMIN_DEGRADED) goes back to online."""
        inst = self.instances[fmri]
        if inst.state == "maintenance":
            inst.state, inst.reason, inst.faults = "uninitialized", "", 0
            inst.deaths.clear()
        elif inst.state == "degraded":
            inst.state = "online"
        self.settle()

    def mark_maintenance(self, fmri: str, *, immediate: bool = False) -> None:
        """ADMIN_MAINT_ON (maintain_instance()): a running instance stops with RERR_RESTART."""
        inst = self.instances[fmri]
        if inst.state == "maintenance":
            return
        if inst.state in RUNNING:
            self._stop(inst, "maintenance", RESTART)
        else:
            inst.state = "maintenance"
        inst.reason = "Maintenance requested by an administrator."
        self.settle()

    def mark_degraded(self, fmri: str) -> None:
        """svcmgr's degraded mark: online -> degraded; it still counts as running, so no propagation."""
        inst = self.instances[fmri]
        if inst.state == "online":
            inst.state = "degraded"

    def kill(self, fmri: str) -> None:
        """A process died of a signal from outside: RSTOP_SIGNAL, RERR_FAULT."""
        self._died(self.instances[fmri], FAULT)

    def exit(self, fmri: str) -> None:
        """Every process of the contract exited: RSTOP_EXIT, RERR_RESTART."""
        self._died(self.instances[fmri], RESTART)

    def _died(self, inst: Instance, err: int) -> None:
        """svcmgr's restart policy: ``limit`` deaths within ``period`` is maintenance; the stop propagates
        with the cause of the death either way (SMF notes "too quickly" at the next start)."""
        if inst.state not in RUNNING or not inst.has_process:
            return
        now = self.clock()
        inst.deaths.append(now)
        del inst.deaths[:-inst.limit]
        too_quick = len(inst.deaths) >= inst.limit and now - inst.deaths[0] <= inst.period
        if too_quick:
            self._stop(inst, "maintenance", err)
            inst.reason = "Restarting too quickly."
        else:
            self._stop(inst, "offline", err)
        self.settle()

    def fail_next(self, fmri: str, outcome: str) -> None:
        """The next start of ``fmri`` fails: "retry" (an exit status to retry) or "fatal" (SMF_EXIT_ERR_FATAL)."""
        self.instances[fmri].script.append(outcome)

    def set_milestone(self, target: str) -> None:
        """dgraph_set_milestone(): the subgraph is what ``target`` needs; overrides inside it (all of them
        for "all") are deleted, every enabled instance outside is disabled through its override."""
        self.milestone = None if target == "all" else target
        inside = self.subgraph()
        for inst in self.instances.values():
            if inside is None or inst.fmri in inside:
                inst.override = None
            elif inst.effective_enabled:
                inst.override = False
                self._admin_disable(inst, inside)
        self.settle()

    def disable_subtree(self, inst: Instance, inside: set[str] | None = None) -> set[str]:
        """mark_subtree(): the enabled dependents through require_* groups whose restart_on is restart or
        refresh (is_depgrp_bypassed() skips exclude_all, optional_all and lower levels), transitively; for a
        milestone, the dependents outside its subgraph (``inside``) through any grouping but exclude_all."""
        def takes_down(dep: Instance, g: Group) -> bool:
            if inside is not None:  # is_nonsubgraph_leaf(): up_state() is online, degraded or offline
                return (g.grouping != "exclude_all" and dep.fmri not in inside
                        and dep.state in ("online", "degraded", "offline"))
            return (g.grouping in ("require_all", "require_any") and LEVEL[g.restart_on] >= RESTART
                    and dep.effective_enabled)

        out: set[str] = set()
        stack = [inst]
        while stack:
            for dep, g in self.dependents(stack.pop()):
                if dep.fmri not in out and dep is not inst and takes_down(dep, g):
                    out.add(dep.fmri)
                    stack.append(dep)
        return out

    # ------------------------------------------------------------------ milestones
    def subgraph(self) -> set[str] | None:
        """GV_INSUBGRAPH (mark_subgraph()): the milestone and what it depends on, not through exclude_all;
        past an optional_all group only instances enabled in general/enabled count. None: no milestone."""
        if self.milestone is None:
            return None
        if self.milestone == "none" or self.milestone not in self.instances:
            return set()
        inside: set[str] = set()
        seen: set[tuple[str, bool]] = set()
        stack = [(self.milestone, False)]
        while stack:
            f, optional = stack.pop()
            if (f, optional) in seen:
                continue
            seen.add((f, optional))
            inst = self.instances[f]
            if optional and not inst.enabled:
                continue
            inside.add(f)
            for g in inst.groups:
                if g.grouping == "exclude_all":
                    continue
                for m in g.members:
                    stack.extend((t.fmri, optional or g.grouping == "optional_all") for t in self.targets(m))
        return inside

    def _subgraph_changed(self, before: set[str] | None) -> None:
        """eval_subgraph(): an instance that joined the subgraph loses its override; one that left is
        disabled through it."""
        after = self.subgraph()
        if before is None or after is None:
            return
        for f in after - before:
            self.instances[f].override = None
        for f in before - after:
            inst = self.instances[f]
            if inst.effective_enabled:
                inst.override = False
                self._admin_disable(inst, after)

    # ------------------------------------------------------------------ the machinery
    def settle(self) -> None:
        """Until nothing changes: an instance goes where its enabled property says (the restarter's
        enable_inst()), a running one that should be disabled stops, and then every enabled offline one
        whose dependencies are met starts (graph_start_if_satisfied(), re-evaluated everywhere as
        propagate_satbility() intends)."""
        for _ in range(10_000):
            if not self._step() and not self._start_wave():
                return
        raise AssertionError("the model did not settle")

    def _step(self) -> bool:
        """One move that runs no method to its end: enable_inst(), disable_inst(), a stop."""
        for inst in sorted(self.instances.values(), key=lambda i: i.fmri):
            wants = inst.effective_enabled
            if inst.state == "uninitialized":
                inst.state = "offline" if wants else "disabled"
                return True
            if inst.state == "disabled" and wants:
                inst.state = "offline"  # enable_inst(): disabled -> offline
                return True
            if inst.state == "offline" and not wants:
                inst.state = "disabled"
                return True
            if inst.state in RUNNING and not wants:
                self._stop(inst, "disabled", RESTART)  # RSTOP_DISABLE
                return True
        return False

    def _start_wave(self) -> bool:
        """Every offline instance whose dependencies are met now is sent its start at once; a start method
        takes time, so each was decided before any of them came online. They come online in that order
        (svcmgr's start jobs, first started first done), each propagating at once: one that comes online
        may exclude what a later one needs, and a stop that reaches an instance still starting aborts
        its start (the restarter's stop of an instance not yet online: no stop of a running instance)."""
        wave = [inst for inst in sorted(self.instances.values(), key=lambda i: i.fmri)
                if inst.state == "offline" and inst.effective_enabled and self.instance_satisfied(inst, False) == 1]
        self._starting = {inst.fmri for inst in wave}
        for inst in wave:
            if inst.fmri in self._starting:
                self._starting.discard(inst.fmri)
                if self._start(inst):
                    self._propagate_start(inst)
        self._starting = set()
        return bool(wave)

    def _start(self, inst: Instance) -> bool:
        """start_instance() and one run of the start method: a retryable failure leaves the instance offline,
        where graph_start_if_satisfied() (gt_enter_offline()) starts it again if its dependencies are still
        met, up to FAULT_THRESHOLD failures in a row; a fatal one is maintenance at once (method_thread()).
        Whether it came online."""
        if inst.script:
            outcome = inst.script.pop(0)
            if outcome == "fatal":
                inst.state, inst.reason = "maintenance", "Start method failed fatally."
                return False
            inst.faults += 1
            if inst.faults >= FAULT_THRESHOLD:
                inst.state, inst.reason = "maintenance", "Start method failed repeatedly."
            return False
        inst.faults = 0
        inst.state = "online"
        self.started.add(inst.fmri)
        return True

    def _propagate_start(self, inst: Instance) -> None:
        """propagate_start(): an exclude_all group whose member came up stops its dependent (as a
        propagate_stop() of RERR_RESTART); other dependents may start (``settle``)."""
        for dep, g in self.dependents(inst):
            if g.grouping == "exclude_all" and dep.state in RUNNING:
                dep.deaths.clear()  # STOP_RESET
                self._stop(dep, "offline", RESTART)
            elif g.grouping == "exclude_all":
                self._starting.discard(dep.fmri)

    def _stop(self, inst: Instance, to: str, err: int) -> None:
        """stop_instance() of a running instance, then the propagation of its stop with ``err``
        (gt_enter_offline(), gt_enter_disabled(), gt_enter_maint() from a running state)."""
        assert inst.state in RUNNING, inst
        inst.state = to
        self.stopped.add(inst.fmri)
        self._propagate_stop(inst, err)

    def _propagate_stop(self, inst: Instance, err: int) -> None:
        """propagate_stop(): each group that names ``inst`` stops its running dependent when the cause is
        within its restart_on, whatever the group's other members do; exclude_all never stops anything
        here (the dependent may start now). The dependent stops for RSTOP_DEPENDENCY, so its own stop
        propagates as RERR_RESTART; a RERR_RESTART or RERR_REFRESH cause is STOP_RESET (start times reset)."""
        for dep, g in self.dependents(inst):
            if g.grouping == "exclude_all" or err == NONE or err > LEVEL[g.restart_on]:
                continue
            if dep.state in RUNNING:
                if err in (RESTART, REFRESH):
                    dep.deaths.clear()
                self._stop(dep, "offline" if dep.effective_enabled else "disabled", RESTART)
            else:
                self._starting.discard(dep.fmri)  # a start of the same wave not done yet is aborted

    # ------------------------------------------------------------------ reading
    def states(self) -> dict[str, str]:
        return {f: i.state for f, i in sorted(self.instances.items())}


def _all_of(values: Iterable[int], satbility: bool) -> int:
    """What require_all_satisfied() makes of its members' values (lazily: without satbility the first
    unsatisfied one ends it; with it, the first unsatisfiable one)."""
    any_unsatisfied = False
    for i in values:
        if i == 1:
            continue
        if not satbility:
            return 0
        if i == -1:
            return -1
        any_unsatisfied = True
    return 0 if any_unsatisfied else 1
