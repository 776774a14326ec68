"""Health in: which followed services are healthy, from service states and open fault cases. No I/O.

A followed service is healthy while its instance is ``online`` and no open fault
case names it among its suspects or affected resources. Anything else (offline,
degraded, maintenance, disabled, absent, or retired by a case) is unhealthy and
costs the instance the follow's weight. Cases arrive as ``list.suspect`` or
``list.updated`` and leave with ``list.repaired`` (repaired, acquitted or replaced:
its ``state`` says which) or ``list.resolved`` (``svcmgr.eventclasses``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from svcmgr import fmri as fmri_mod
from vrrp.model import VrrpInstance

__all__ = ["Health", "case_resources", "effective_priority"]

_RESOURCE_KEYS = ("resource", "fmri", "asru", "fru")
_LIST_KEYS = ("suspects", "affected", "impacted", "resources")


def _norm(text: Any) -> str | None:
    if not isinstance(text, str) or (not text.startswith(("svc:", "/")) and "/" not in text):
        return None
    try:
        f = fmri_mod.parse(text)
    except fmri_mod.FmriError:
        return None
    return str(f)


def case_resources(resource: str, data: Mapping[str, Any]) -> set[str]:
    """Every service FMRI a case event names: its resource, and its suspects / affected / impacted lists
    (items as strings, or tables with ``resource``, ``fmri``, ``asru`` or ``fru``)."""
    out: set[str] = set()
    for cand in [resource, *(data.get(k) for k in _RESOURCE_KEYS)]:
        n = _norm(cand)
        if n:
            out.add(n)
    for key in _LIST_KEYS:
        items = data.get(key)
        if not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, dict):
                for k in _RESOURCE_KEYS:
                    n = _norm(item.get(k))
                    if n:
                        out.add(n)
            else:
                n = _norm(item)
                if n:
                    out.add(n)
    return out


class Health:
    """The health of followed services; ``changed()`` names those whose verdict moved since last asked."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.cases: dict[str, set[str]] = {}  # case uuid -> service FMRIs it names
        self._reported: dict[str, bool] = {}

    def set_state(self, fmri: str, state: str) -> None:
        if state == "deleted":
            self.states.pop(fmri, None)
        else:
            self.states[fmri] = state

    def open_case(self, uuid: str, resources: Iterable[str]) -> None:
        self.cases[uuid] = set(resources)

    def close_case(self, uuid: str) -> None:
        self.cases.pop(uuid, None)

    def retired_by(self, fmri: str) -> list[str]:
        """Open cases that name ``fmri`` (a case naming the service without instance names all of them)."""
        service = fmri.rsplit(":", 1)[0]
        return sorted(u for u, res in self.cases.items() if fmri in res or service in res)

    def healthy(self, fmri: str) -> bool:
        return self.states.get(fmri) == "online" and not self.retired_by(fmri)

    def why(self, fmri: str) -> str:
        """A short word for vrrpadm: online, the state, or the case that retires it."""
        cases = self.retired_by(fmri)
        if cases:
            return f"retired by case {cases[0]}"
        return self.states.get(fmri, "absent")

    def changed(self, followed: Iterable[str]) -> dict[str, bool]:
        """Followed services whose health differs from what was last reported (all, the first time)."""
        out = {}
        for f in followed:
            h = self.healthy(f)
            if self._reported.get(f) != h:
                out[f] = h
                self._reported[f] = h
        return out

    def forget(self, keep: Iterable[str]) -> None:
        keep = set(keep)
        for f in list(self._reported):
            if f not in keep:
                del self._reported[f]


def effective_priority(inst: VrrpInstance, health: Health) -> int:
    """The priority keepalived runs with, by its rules: 0 (FAULT) when a weight-0 follow is unhealthy,
    else the configured one lowered by the weight of each unhealthy follow, within 1..254."""
    p = inst.priority
    for f in inst.follows:
        if health.healthy(f.fmri):
            continue
        if f.weight == 0:
            return 0
        p += f.weight
    return max(1, min(254, p))
