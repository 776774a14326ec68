"""What operators ask of instances: enable, disable, restart, clear, mark (``svcadm``).

Part of the engine (``svcmgr.engine.Engine`` mixes it in); the fault manager's retire
agent uses ``mark`` and ``clear`` too (``svcmgr.services.ServiceCommands``). Each verb
changes what is stored (enable state, marks), feeds the state table and returns the
instances it acted on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from svcmgr.eventclasses import SVC_CLEARED
from svcmgr.machine import STOPPING, Ev, Phase

if TYPE_CHECKING:
    from svcmgr.bus import Bus
    from svcmgr.graph import Graph
    from svcmgr.instance import Instance
    from svcmgr.repository import Repository

__all__ = ["OperatorVerbs"]


class OperatorVerbs:
    """svcadm's verbs (a part of ``Engine``)."""

    # What this part uses of the engine's state...
    instances: dict[str, Instance]
    graph: Graph
    repo: Repository
    bus: Bus
    # ... and of the other parts:
    dispatch: Callable[..., bool]
    save: Callable[[Instance], None]
    mark_dirty: Callable[[Iterable[str]], None]
    disabled_reason: Callable[[Instance], str]
    reconsider_subgraph: Callable[[], None]
    begin_disable: Callable[..., bool]
    outside_milestone: Callable[[Instance], Callable[[str], bool] | None]

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
            self.save(inst)
            self.mark_dirty([f, *self.graph.all_dependents(f)])
        if not temporary:
            self.reconsider_subgraph()
        self.repo.flush()
        return targets

    def disable(self, fmris: list[str], *, temporary: bool, milestone: bool = False) -> None:
        """Disable instances (``milestone``: the milestone holds them back, their dependents outside it stop
        first, whatever their restart_on; otherwise those that go down with each one)."""
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
                inst.start_failures = 0  # out of maintenance: three new tries, as after clear
            outside = self.outside_milestone(inst) if milestone else None
            if not self.begin_disable(inst, outside):  # its dependents stop first
                self.dispatch(inst, Ev.DISABLE, reason)
            if inst.phase in STOPPING or inst.phase == Phase.DISABLED:
                inst.reason = reason
            self.save(inst)
        if not temporary:
            self.reconsider_subgraph()
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
            self.save(inst)
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
            self.save(inst)
        self.repo.flush()
        return done

    def _annotate(self, inst: Instance, kind: str, case: str | None) -> bool:
        """A fault case explains a mark it did not set (the restarter's maintenance): record its UUID."""
        m = inst.marks.get(kind)
        if not case or m is None or m.get("case"):
            return False
        m["case"] = case
        self.save(inst)
        return True
