"""An administrator's disable of a running instance: the dependents that go down with it stop first.

Part of the engine (``svcmgr.engine.Engine`` mixes it in), after graph.c's
``graph_enable_by_vertex()``: the dependents an administrator's disable takes down
(``graphwalks.disable_subtree``: through ``require_*`` groups whose ``restart_on`` is
``restart`` or ``refresh``) are stopped leaves first, each once nothing of the subtree
that depends on it still runs (``offline_subtree_leaves()``), and held offline meanwhile
(``GV_TOOFFLINE``); the disabled instance's own stop begins when they are all down. So a
database disabled under its application sees the application stop while it still serves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from svcmgr.graphwalks import disable_subtree, held_by
from svcmgr.machine import ACTIVE, RUNNING_PHASES, STOPPING, Ev

if TYPE_CHECKING:
    from svcmgr.graph import Graph
    from svcmgr.instance import Instance

__all__ = ["SubtreeDisable"]

_UP = ACTIVE | STOPPING


class SubtreeDisable:
    """Disables that wait for their dependents (a part of ``Engine``)."""

    # What this part uses of the engine's state and of the other parts:
    instances: dict[str, Instance]
    graph: Graph
    shutting_down: bool
    dispatch: Callable[..., bool]
    mark_dirty: Callable[[Iterable[str]], None]
    disabled_reason: Callable[[Instance], str]

    def __init__(self) -> None:
        #: instance being disabled -> (its subtree, whether every grouping but exclude_all takes it down)
        self._disabling: dict[str, tuple[set[str], bool]] = {}

    def begin_disable(self, inst: Instance, outside: Callable[[str], bool] | None = None) -> bool:
        """``inst`` (running) is being disabled: stop its subtree first. False when nothing of it runs (the
        caller disables ``inst`` at once). A milestone's disable passes what lies ``outside`` the milestone:
        every dependent outside it stops first, whatever its grouping but exclude_all (graph.c disables the
        leaves of what is not in the subgraph first, is_nonsubgraph_leaf())."""
        if inst.phase not in RUNNING_PHASES:
            return False
        if outside is None:
            subtree = disable_subtree(self.graph, inst.fmri, lambda f: self.instances[f].effective_enabled)
        else:
            subtree = disable_subtree(self.graph, inst.fmri, outside, every_grouping=True)
        if not any(self.instances[f].phase in _UP for f in subtree):
            return False
        self._disabling[inst.fmri] = (subtree, outside is not None)
        inst.reason = "Disabling: stopping its dependents first."
        self.advance_disables()
        return True

    def disables_pending(self) -> bool:
        return bool(self._disabling)

    def disabling(self, fmri: str) -> bool:
        """Whether ``fmri`` waits for its dependents to stop before its own disable."""
        return fmri in self._disabling

    def held_offline(self, fmri: str) -> str | None:
        """The instance whose disable keeps ``fmri`` from starting again, if any."""
        return next((x for x, (subtree, _) in self._disabling.items() if fmri in subtree), None)

    def advance_disables(self) -> None:
        """Stop the subtree leaves now exposed; disable an instance whose subtree is down; forget a disable
        that no longer applies (re-enabled, stopped otherwise, deleted)."""
        if self.shutting_down:
            return
        for x, (subtree, every) in list(self._disabling.items()):
            inst = self.instances.get(x)
            if inst is None or inst.phase not in RUNNING_PHASES or inst.effective_enabled:
                del self._disabling[x]
                self.mark_dirty(subtree | {x})
                continue
            up = {f for f in subtree if f in self.instances and self.instances[f].phase in _UP}
            if not up:
                del self._disabling[x]
                self.dispatch(inst, Ev.DISABLE, self.disabled_reason(inst))
                self.mark_dirty(subtree)
                continue
            held = held_by(self.graph, up, subtree.__contains__, every_grouping=every)
            for f in sorted(up - held):
                dep = self.instances[f]
                if dep.phase in ACTIVE:
                    dep.history.reset()  # offline_vertex() sends STOP_RESET
                    self.dispatch(dep, Ev.DEPS_LOST, f"Stopping before its dependency {x} is disabled.")
