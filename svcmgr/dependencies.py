"""When each instance may start or must stop: dependency evaluation, milestones, and the waits of ``svcadm -s``.

Part of the engine (``svcmgr.engine.Engine`` mixes it in). An evaluation is
scheduled whenever something an instance depends on changed (``mark_dirty``) and
runs once per turn of the loop over every instance marked; it feeds ``DEPS_MET``
or ``DISABLE`` to the state table. A stop of a running instance stops the dependents
its ``restart_on`` values name (``propagate_stop``); an instance coming up stops its
``exclude_all`` dependents. Waiters (``svcadm enable -s``) are answered here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from svcmgr.graph import NEVER
from svcmgr.graphwalks import subgraph
from svcmgr.machine import ACTIVE, Ev, Phase, stop_target
from svcmgr.states import State

if TYPE_CHECKING:
    from svcmgr.graph import Graph
    from svcmgr.instance import Instance

__all__ = ["RESTART_ON", "Dependencies", "Waiter"]

#: restart_on value -> stop causes of a dependency that restart the dependent
RESTART_ON = {
    "none": frozenset(),
    "error": frozenset({"error"}),
    "restart": frozenset({"error", "other"}),
    "refresh": frozenset({"error", "other", "refresh"}),
}


@dataclass
class Waiter:
    fmri: str
    want: str  # "online" | "disabled"
    future: asyncio.Future[int]


class Dependencies:
    """Dependency evaluation and waiters (a part of ``Engine``)."""

    # What this part reads of the engine: its instances and graph, whether it is stopping, and
    # ``dispatch`` to feed the state table.
    instances: dict[str, Instance]
    graph: Graph
    shutting_down: bool
    dispatch: Callable[..., bool]
    disable: Callable[..., None]
    disabling: Callable[[str], bool]
    held_offline: Callable[[str], str | None]
    advance_disables: Callable[[], None]

    def __init__(self) -> None:
        self.milestone: str | None = None  # None: all
        self._subgraph: set[str] | None = None  # what the milestone runs (None: no milestone)
        self._dirty: set[str] = set()  # to evaluate at the next turn of the loop
        self._eval_scheduled = False
        self._waiters: list[Waiter] = []
        #: While the boot imports ``--manifests`` (``begin_boot_import``): the services imported so far.
        self._boot_imported: set[str] | None = None

    def view(self, f: str) -> tuple[State, bool] | None:
        """(state for dependency evaluation, enabled) of an instance; stopping counts as its target."""
        inst = self.instances.get(f)
        if inst is None:
            return None
        return stop_target(inst.phase) or inst.state, self._wants_enabled(inst)

    def in_transition(self) -> list[Instance]:
        """Instances starting or stopping now."""
        return [i for i in self.instances.values() if i.next_state is not None or i.phase == Phase.STARTING]

    def settled(self) -> bool:
        """Nothing in transition and no evaluation pending: every instance is where it will stay for now."""
        return not self._dirty and not self._eval_scheduled and not self.in_transition()

    def evaluation_pending(self) -> bool:
        """Whether an evaluation is scheduled for the next turn of the loop."""
        return self._eval_scheduled

    def _wants_enabled(self, inst: Instance) -> bool:
        return inst.effective_enabled

    def mark_dirty(self, fmris: Iterable[str]) -> None:
        self._dirty.update(fmris)
        if self._dirty and not self._eval_scheduled:
            self._eval_scheduled = True
            asyncio.get_running_loop().call_soon(self._run_evaluations)

    def _run_evaluations(self) -> None:
        self._eval_scheduled = False
        self.advance_disables()
        rounds = 0
        while self._dirty and rounds < 10_000:
            rounds += 1
            batch, self._dirty = self._dirty, set()
            for f in sorted(batch):
                inst = self.instances.get(f)
                if inst is not None:
                    self.evaluate(inst)
            self.advance_disables()
        self.check_waiters()

    def evaluate(self, inst: Instance) -> None:
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
            elif (held := self.held_offline(inst.fmri)) is not None:
                inst.reason = f"Held offline while its dependency {held} is disabled."
            elif not self._boot_settled(inst):
                inst.reason = "Waiting for the manifests to be imported."
            elif self.graph.met(inst.fmri, self.view):
                self.dispatch(inst, Ev.DEPS_MET, "")
            else:
                inst.reason = "Waiting for dependencies."
        elif p in ACTIVE and not wants and not self.disabling(inst.fmri):
            self.dispatch(inst, Ev.DISABLE, self.disabled_reason(inst))
        elif p == Phase.STOPPING_DISABLE and wants:
            # let in again while its stop runs (a milestone held it back, then no more): back once stopped
            self.dispatch(inst, Ev.ENABLE, "")

    def begin_boot_import(self) -> None:
        """The boot imports its manifests in parts, starting what it may as it goes (``svcmgr.bootimport``):
        until ``end_boot_import`` an instance starts only once its own service and every instance its
        dependencies name have been imported in this boot. What a later manifest declares cannot be judged
        before it is read: a dependency not imported yet is waited for, not found missing, and an instance
        known only from the repository waits for a manifest that may bring it a new configuration."""
        self._boot_imported = set()

    def boot_imported(self, services: Iterable[str]) -> None:
        """These services' manifests are imported (during the boot's import)."""
        if self._boot_imported is not None:
            self._boot_imported.update(services)

    def end_boot_import(self) -> None:
        """Every manifest of the boot is imported or refused: from now on the graph alone decides."""
        self._boot_imported = None
        self.mark_dirty(self.instances)

    def _boot_settled(self, inst: Instance) -> bool:
        """No manifest still to be imported at boot can change whether ``inst`` may start: its own service
        and every instance its dependency groups name are imported (always true outside the boot's import)."""
        done = self._boot_imported
        if done is None:
            return True
        if inst.service not in done:
            return False
        for d in self.graph.deps.get(inst.fmri, ()):
            if d.type == "path":
                continue
            for _, members in self.graph.members(d):
                if members is None or any(self.instances[m].service not in done for m in members):
                    return False
        return True

    def outside_milestone(self, inst: Instance) -> Callable[[str], bool] | None:
        """For an instance the milestone holds back: what else lies outside the milestone (None otherwise)."""
        inside = self._subgraph
        if inside is None or inst.fmri in inside:
            return None
        # is_nonsubgraph_leaf(): what is disabled or in maintenance is down already and hides nothing
        return lambda f: f not in inside and self.instances[f].state in (State.ONLINE, State.DEGRADED, State.OFFLINE)

    def disabled_reason(self, inst: Instance) -> str:
        if self._subgraph is not None and inst.fmri not in self._subgraph and inst.enabled_temp is False:
            return f"Held back by milestone {self.milestone}."
        if inst.enabled_temp is False:
            return "Temporarily disabled by an administrator."
        return "Disabled by an administrator."

    def propagate_stop(self, inst: Instance, cause: str) -> None:
        """A running instance is stopping: stop the dependents whose restart_on names the cause, through
        every grouping but exclude_all, whatever the group's other members do (propagate_stop() in
        graph.c: a require_any dependent restarts, and starts again at once if its group is still met)."""
        for dep_fmri, d in self.graph.dependents_of(inst.fmri):
            dep = self.instances.get(dep_fmri)
            if dep is None or dep.phase not in ACTIVE or d.grouping == "exclude_all":
                continue
            if cause not in RESTART_ON[d.restart_on]:
                continue
            if cause != "error":
                dep.history.reset()  # STOP_RESET: a restart a dependency asked for is no failure of its own
            self.dispatch(dep, Ev.DEPS_LOST, f"Dependency {inst.fmri} stopped (restart_on={d.restart_on}).")

    def exclude_dependents(self, inst: Instance) -> None:
        """``inst`` came up: stop its ``exclude_all`` dependents that are running or starting, in the order of
        ``Graph.dependents_of`` (which sorts only those: most instances have none). Most graphs have no
        ``exclude_all`` dependency at all: then none is looked for."""
        if not self.graph.excludes:
            return
        for dep_fmri, _d in self.graph.dependents_of(inst.fmri, grouping="exclude_all"):
            dep = self.instances.get(dep_fmri)
            if dep is not None and dep.phase in ACTIVE:
                dep.history.reset()  # STOP_RESET
                self.dispatch(dep, Ev.DEPS_LOST, f"Excluded by {inst.fmri}, which is running.")

    def set_milestone(self, target: str) -> str:
        """Run only what ``target`` needs ("all": everything, "none": nothing), as dgraph_set_milestone():
        the temporary enable of every instance inside the milestone's subgraph (of every instance for
        "all") is removed, every enabled instance outside it is disabled temporarily. An operator may
        still enable one with ``svcadm enable -t``; "all" undoes it all."""
        self.milestone = None if target == "all" else target
        self._subgraph = self._milestone_subgraph()
        for inst in self.instances.values():
            if self._subgraph is None or inst.fmri in self._subgraph:
                inst.enabled_temp = None
            else:
                self._hold_back(inst)
        self.mark_dirty(self.instances)
        return self.milestone or "all"

    def _milestone_subgraph(self) -> set[str] | None:
        if self.milestone is None:
            return None
        if self.milestone == "none":
            return set()
        return subgraph(self.graph, self.milestone, lambda f: self.instances[f].enabled)

    def _hold_back(self, inst: Instance) -> None:
        """Out of the milestone: a temporary disable, as an operator's (out of maintenance too)."""
        if inst.effective_enabled:
            self.disable([inst.fmri], temporary=True, milestone=True)

    def reconsider_subgraph(self, new: Iterable[str] = ()) -> None:
        """The graph or an instance's persistent enable changed (eval_subgraph()): an instance that joined
        the milestone's subgraph loses its temporary disable, one that left it (or a ``new`` one outside
        it) is disabled temporarily."""
        if self.milestone is None:
            return
        before, self._subgraph = self._subgraph or set(), self._milestone_subgraph()
        assert self._subgraph is not None
        for f in self._subgraph - before:
            self.instances[f].enabled_temp = None
        for f in (before - self._subgraph) | (set(new) - self._subgraph):
            if f in self.instances:
                self._hold_back(self.instances[f])
        self.mark_dirty(self.instances)

    def wait_for(self, fmri: str, want: str) -> asyncio.Future[int]:
        """A future giving 0 when ``fmri`` reaches ``want``, 3 when it cannot, 4 when its dependencies cannot."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(Waiter(fmri, want, fut))
        self.check_waiters()
        return fut

    def release_waiters(self, code: int) -> None:
        """The engine is going away: answer every waiter with ``code``."""
        for w in self._waiters:
            if not w.future.done():
                w.future.set_result(code)
        self._waiters = []

    def check_waiters(self) -> None:
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

    def _wait_result(self, w: Waiter) -> int | None:
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
