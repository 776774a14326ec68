"""What operators ask of instances: enable, disable, restart, clear, mark (``svcadm``).

Part of the engine (``svcmgr.engine.Engine`` mixes it in); the fault manager's retire
agent uses ``mark`` and ``clear`` too (``svcmgr.services.ServiceCommands``). Each verb
changes what is stored (enable state, marks), on disk before anything acts on it when
it is persistent, then feeds the state table and returns the instances it acted on.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from svcmgr.eventclasses import SVC_CLEARED
from svcmgr.machine import STOPPING, Ev, Phase

if TYPE_CHECKING:
    from svcmgr.bus import Bus
    from svcmgr.graph import Graph
    from svcmgr.instance import Instance

__all__ = ["OperatorVerbs"]

#: In maintenance, or on the way there.
_TO_MAINTENANCE = frozenset({Phase.MAINTENANCE, Phase.STOPPING_MAINT})


class OperatorVerbs:
    """svcadm's verbs (a part of ``Engine``)."""

    # What this part uses of the engine's state...
    instances: dict[str, Instance]
    graph: Graph
    bus: Bus
    # ... and of the other parts:
    dispatch: Callable[..., bool]
    save: Callable[[Instance], None]
    record_settings: Callable[[Iterable[Instance], Callable[[Instance], None]], None]
    mark_dirty: Callable[[Iterable[str]], None]
    disabled_reason: Callable[[Instance], str]
    reconsider_subgraph: Callable[[], None]
    begin_disable: Callable[..., bool]
    outside_milestone: Callable[[Instance], Callable[[str], bool] | None]

    def enable_walk(self, fmris: list[str]) -> list[dict[str, Any]]:
        """What ``svcadm enable -r`` enables, in svcadm.c's order (``enable_fmri_rec``): each instance, then
        the members of its ``require_all`` and ``require_any`` groups, depth first. Steps: ``{"enable":
        fmri}``; ``{"fmri", "requires_one_of": [...]}`` for a require_any group whose members come to more
        than one instance (the operator's choice, not enabled); ``{"fmri", "multiple": member}`` for a
        member that is a service of several instances (not enabled); ``{"fmri", "absent": member}``."""
        steps: list[dict[str, Any]] = []
        seen: set[str] = set()

        def groups(f: str) -> Iterator[dict[str, Any]]:
            """The steps of one instance's groups; ``{"visit": member}`` for each member to walk into."""
            for d in self.graph.deps.get(f, ()):
                if d.type == "path" or d.grouping not in ("require_all", "require_any"):
                    continue
                members = self.graph.members(d)
                if d.grouping == "require_any" and sum(len(insts or ()) for _, insts in members) > 1:
                    yield {"fmri": f, "requires_one_of": list(d.fmris)}
                    continue
                for declared, insts in members:
                    if insts is None:
                        yield {"fmri": f, "absent": declared}
                    elif len(insts) > 1:
                        yield {"fmri": f, "multiple": declared}
                    else:
                        yield {"visit": insts[0]}

        for root in fmris:  # depth first, as the recursion of enable_fmri_rec, with a stack of its own
            walks: list[Iterator[dict[str, Any]]] = [iter([{"visit": root}])]
            while walks:
                step = next(walks[-1], None)
                if step is None:
                    walks.pop()
                elif "visit" not in step:
                    steps.append(step)
                elif step["visit"] not in seen:
                    seen.add(step["visit"])
                    steps.append({"enable": step["visit"]})
                    walks.append(groups(step["visit"]))
        return steps

    def enable(self, fmris: list[str], *, temporary: bool) -> list[str]:
        """Enable instances (``svcadm enable -r`` gives the ones ``enable_walk`` names)."""
        targets = list(fmris)

        def enabled(inst: Instance) -> None:
            inst.set_enabled(True, temporary=temporary)
            inst.comment = ""

        self._settle([self.instances[f] for f in targets], enabled, persistent=not temporary)
        for f in targets:
            inst = self.instances[f]
            self.dispatch(inst, Ev.ENABLE, "")
            self.save(inst)
            self.mark_dirty([f, *self.graph.all_dependents(f)])
        if not temporary:
            self.reconsider_subgraph()
        return targets

    def disable(self, fmris: list[str], *, temporary: bool, milestone: bool = False, comment: str = "") -> None:
        """Disable instances (``milestone``: the milestone holds them back, their dependents outside it stop
        first, whatever their restart_on; otherwise those that go down with each one), ``comment`` the
        administrator's reason (svcadm disable -c)."""
        def disabled(inst: Instance) -> None:
            inst.comment = comment
            inst.set_enabled(False, temporary=temporary)
            if inst.phase in _TO_MAINTENANCE:  # the disable wins: it ends disabled, now and after a restart
                inst.marks.pop("maintenance", None)

        insts = [self.instances[f] for f in fmris]
        self._settle(insts, disabled, persistent=not temporary or any(i.phase in _TO_MAINTENANCE for i in insts))
        for f in fmris:
            inst = self.instances[f]
            reason = self.disabled_reason(inst)
            inst.history.reset()  # as SMF: an operator's disable forgets the restart history
            if inst.phase == Phase.MAINTENANCE:
                inst.start_failures = 0  # out of maintenance: three new tries, as after clear
            outside = self.outside_milestone(inst) if milestone else None
            if not self.begin_disable(inst, outside):  # its dependents stop first
                self.dispatch(inst, Ev.DISABLE, reason)
            if inst.phase in STOPPING or inst.phase == Phase.DISABLED:
                inst.reason = reason
            self.save(inst)
        if not temporary:
            self.reconsider_subgraph()

    def _settle(self, insts: list[Instance], change: Callable[[Instance], None], *, persistent: bool) -> None:
        """Apply an operator's change to the settings; a persistent one is on disk before anything acts on
        it (``record_settings``: refused with ``Unwritable`` when it cannot be written)."""
        if persistent:
            self.record_settings(insts, change)
        else:
            for inst in insts:
                change(inst)

    def restart(self, fmris: list[str], *, dump: bool = False) -> list[str]:
        """Restart online or degraded instances; with ``dump``, SIGABRT to every process first (their core
        dumps), which the restart's stop then finds gone."""
        done = []
        for f in fmris:
            inst = self.instances[f]
            if inst.phase not in (Phase.ONLINE, Phase.DEGRADED):
                continue
            inst.history.reset()
            if dump and inst.contract is not None:
                inst.contract.signal(signal.SIGABRT)
            if self.dispatch(inst, Ev.RESTART, "Restarting on request of an administrator."):
                done.append(f)
        return done

    def clear(self, fmris: list[str]) -> list[str]:
        insts = [self.instances[f] for f in fmris]
        marks = {i.fmri: dict(i.marks) for i in insts}

        def cleared(inst: Instance) -> None:
            if inst.phase in (Phase.MAINTENANCE, Phase.STOPPING_MAINT):
                inst.marks.pop("maintenance", None)
            elif inst.phase == Phase.DEGRADED:
                inst.marks.pop("degraded", None)

        self._settle(insts, cleared, persistent=True)
        done = []
        for inst in insts:
            f = inst.fmri
            if inst.phase in (Phase.MAINTENANCE, Phase.STOPPING_MAINT):
                mark = marks[f].get("maintenance")
                inst.history.reset()
                inst.start_failures = 0
                self.dispatch(inst, Ev.CLEAR, "")
                done.append(f)
                self.bus.emit(SVC_CLEARED, f, state="maintenance", by=(mark or {}).get("by"),
                              case=(mark or {}).get("case"))
            elif inst.phase == Phase.DEGRADED:
                mark = marks[f].get("degraded")
                self.dispatch(inst, Ev.CLEAR, "")
                done.append(f)
                self.bus.emit(SVC_CLEARED, f, state="degraded", by=(mark or {}).get("by"),
                              case=(mark or {}).get("case"))
            self.save(inst)
        return done

    def mark(self, fmris: list[str], what: str, *, temporary: bool, immediate: bool,
             reason: str | None = None, by: str = "operator", case: str | None = None) -> list[str]:
        extra = {"case": case} if case else {}
        texts: dict[str, str] = {}

        def marked(inst: Instance) -> None:
            if what == "maintenance":
                if inst.phase in (Phase.MAINTENANCE, Phase.STOPPING_MAINT):
                    return
                text = reason or ("Maintenance requested by an administrator." if by == "operator"
                                  else "Put in maintenance.")
            else:
                if inst.phase != Phase.ONLINE:
                    return
                text = reason or ("Degraded by an administrator." if by == "operator" else "Degraded.")
            texts[inst.fmri] = text
            inst.marks[what] = {"reason": text, "by": by, "temporary": temporary, "time": time.time(), **extra}

        self._settle([self.instances[f] for f in fmris], marked, persistent=not temporary)
        done = []
        for f in fmris:
            inst = self.instances[f]
            if f not in texts:
                if (what == "maintenance" or inst.phase == Phase.DEGRADED) and self._annotate(inst, what, case):
                    done.append(f)
                continue
            if what == "maintenance":
                self.dispatch(inst, Ev.MARK_MAINT, texts[f], cause="error" if by != "operator" else "other",
                              immediate=immediate)
            else:
                self.dispatch(inst, Ev.MARK_DEGRADED, texts[f])
            done.append(f)
            self.save(inst)
        return done

    def _annotate(self, inst: Instance, kind: str, case: str | None) -> bool:
        """A fault case explains a mark it did not set (the restarter's maintenance): record its UUID."""
        m = inst.marks.get(kind)
        if not case or m is None or m.get("case"):
            return False
        m["case"] = case
        self.save(inst)
        return True
