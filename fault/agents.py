"""Response agents: what the fault manager does about a case.

* ``RetireAgent`` takes a faulty service out of service as its rule says
  (``degrade`` or ``maintenance``) through the engine's ``mark`` with the case's
  UUID, so ``svcs -x`` names the case; it keeps asserting a degrade while the case
  is solved (a restart brings a service back online, and it is marked again). It
  records the case on maintenance marks the restarter set by itself for suspects
  and impacted services, and when a case is repaired it clears what the case
  explains, so the services and their dependents come back.
* ``NotifyAgent`` publishes every change of a case on the bus: ``list.suspect``,
  ``list.updated``, ``list.repaired``, ``list.resolved`` (resource "", data from
  ``Case.event_data``), and the fault class itself (``fault.svc.flapping``) once per
  suspect when a case is solved.

Neither loops with the engine: clearing a service makes the engine emit
``svc.cleared`` with the case's UUID, and a case already repaired ignores it.
"""

from __future__ import annotations

import logging
from typing import Any

from fault.cases import Case, CaseState, Change
from svcmgr.eventclasses import LIST_REPAIRED, LIST_RESOLVED, LIST_SUSPECT, LIST_UPDATED
from svcmgr.services import InstanceInfo, Services

__all__ = ["NotifyAgent", "RetireAgent"]

log = logging.getLogger("fault.agents")

_MARK = {"degrade": "degraded", "maintenance": "maintenance"}
_EVENT = {"suspect": LIST_SUSPECT, "updated": LIST_UPDATED, "repaired": LIST_REPAIRED, "resolved": LIST_RESOLVED}


class RetireAgent:
    def __init__(self, services: Services) -> None:
        self.services = services
        #: fmri -> uuid of a solved case whose retire action waits for the service to be online
        self.waiting: dict[str, str] = {}
        self.marked = 0
        self.cleared = 0

    def apply(self, ch: Change) -> bool:
        """Carry out a change; True when the case itself changed (its ``retired`` record)."""
        if ch.kind in ("suspect", "updated"):
            changed = self._unretire(ch.case, ch.unretire) if ch.unretire else False
            return self.retire(ch.case) or changed
        if ch.kind == "repaired":
            return self._unretire(ch.case, ch.unretire)
        return False

    def _instance(self, fmri: str) -> InstanceInfo | None:
        return self.services.instance(fmri) if fmri.startswith("svc:") else None

    def retire(self, case: Case) -> bool:
        if case.state != CaseState.SOLVED:
            return False
        changed = False
        what = _MARK.get(case.response)
        reason = f"Retired by the fault manager: {case.cls} ({case.msgid})."
        for s in case.faulty:
            inst = self._instance(s.resource)
            if inst is None:
                continue
            state = inst.state.value
            if state == "maintenance" or (inst.next_state is not None and inst.next_state.value == "maintenance"):
                if self.services.mark([s.resource], "maintenance", by="fault", case=case.uuid):
                    case.retired[s.resource] = "annotated"
                    case.note("isolated", f"{s.resource} is in maintenance; its mark now names this case")
                    changed = True
                continue
            if what is None:
                continue
            if what == "degraded" and state == "degraded" and inst.marks.get("degraded", {}).get("case") == case.uuid:
                continue
            done = self.services.mark([s.resource], what, reason=reason, by="fault", case=case.uuid)
            if done:
                self.marked += 1
                if case.retired.get(s.resource) != what:
                    case.retired[s.resource] = what
                    case.note("isolated", f"{s.resource} marked {what} by the retire agent")
                    changed = True
                log.info("case %s: %s marked %s", case.uuid, s.resource, what)
            if what == "degraded":
                # a restart brings it back online: mark it again then, for as long as the case is solved
                self.waiting[s.resource] = case.uuid
        for f in case.impacted:
            inst = self._instance(f)
            if inst is not None and inst.state.value == "maintenance" and \
                    self.services.mark([f], "maintenance", by="fault", case=case.uuid):
                case.retired.setdefault(f, "annotated")
                case.note("isolated", f"impacted {f} is in maintenance; its mark now names this case")
                changed = True
        return changed

    def on_online(self, fmri: str, case: Case | None) -> bool:
        """``fmri`` came online: re-assert the degrade its solved case asks for."""
        if case is None or case.state != CaseState.SOLVED:
            self.waiting.pop(fmri, None)
            return False
        s = case.suspect(fmri)
        if s is None or s.status != "faulty":
            self.waiting.pop(fmri, None)
            return False
        return self.retire(case)

    def _unretire(self, case: Case, fmris: list[str]) -> bool:
        changed = False
        suspects = {s.resource for s in case.suspects}
        for f in fmris:
            if self.waiting.get(f) == case.uuid:
                del self.waiting[f]
            inst = self._instance(f)
            if inst is None:
                continue
            state = inst.state.value
            kind = "maintenance" if state == "maintenance" else "degraded" if state == "degraded" else None
            if kind is None:
                continue
            m = inst.marks.get(kind, {})
            ours = m.get("case") == case.uuid or (f in suspects and not m.get("case") and m.get("by") == "restarter")
            if not ours:
                continue
            if self.services.clear([f]):
                self.cleared += 1
                case.retired.pop(f, None)
                changed = True
                log.info("case %s: %s cleared (%s)", case.uuid, f, case.state)
        return changed


class NotifyAgent:
    def __init__(self, bus: Any) -> None:
        self.bus = bus
        self.published = 0

    def apply(self, ch: Change) -> None:
        case = ch.case
        data = dict(ch.data)
        if ch.kind in ("suspect", "updated"):
            data["retired"] = dict(case.retired)  # what the retire agent did since
        self.bus.emit(_EVENT[ch.kind], "", **data)
        self.published += 1
        if ch.kind == "suspect":
            for s in case.suspects:
                self.bus.emit(s.fault, s.resource, uuid=case.uuid, certainty=s.certainty, msgid=case.msgid,
                              severity=case.severity)
