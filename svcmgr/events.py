"""The event: one fact with a dotted class, a time, a node, a resource and a payload. A leaf module.

Every component speaks in events: ``svc.state.online``, ``ereport.svc.exit.signal``,
``list.suspect``, ``vrrp.state.master``. The MQTT bridge maps class ``a.b.c`` on node
``n`` to topic ``svcmgr/n/a/b/c``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CLASS_RE", "EREPORT_NAMESPACES", "Event", "EventError", "check_class", "ereport_owner"]

CLASS_RE = re.compile(r"^[a-z][a-z0-9_-]*(\.[A-Za-z0-9_-]+)+\Z")

#: The ereport classes each confined source owns: it may report only these, and no other
#: source may (the restarter is the daemon's own code). Log patterns may use any class no
#: confined source owns; ``fminject`` (root) any class. See docs/security.md.
EREPORT_NAMESPACES: dict[str, tuple[str, ...]] = {
    "restarter": ("ereport.svc.",),
    "kmsg": ("ereport.kernel.", "ereport.io."),
    "alertmanager": ("ereport.prometheus.",),
    "mqtt": ("ereport.telemetry.",),
}


def ereport_owner(cls: str) -> str | None:
    """The confined source that owns an ereport class, or None."""
    for source, prefixes in EREPORT_NAMESPACES.items():
        if cls.startswith(prefixes):
            return source
    return None


class EventError(ValueError):
    """A malformed event."""


def check_class(cls: object) -> str:
    if not isinstance(cls, str) or len(cls) > 200 or not CLASS_RE.match(cls):
        raise EventError(f"bad event class {cls!r}: expected dotted words such as ereport.svc.exit.signal")
    return cls


@dataclass(frozen=True, slots=True)
class Event:
    cls: str
    resource: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    node: str = ""
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.cls, "time": self.time, "node": self.node,
                "resource": self.resource, "data": self.data}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        if not isinstance(d, dict):
            raise EventError("event must be a JSON object")
        t = d.get("time", time.time())
        if isinstance(t, bool) or not isinstance(t, int | float):
            raise EventError(f"event time must be a number, not {t!r}")
        data = d.get("data", {})
        if not isinstance(data, dict):
            raise EventError("event data must be an object")
        resource = d.get("resource", "")
        node = d.get("node", "")
        if not isinstance(resource, str) or not isinstance(node, str):
            raise EventError("event resource and node must be strings")
        return cls(check_class(d.get("class")), resource, data, node, float(t))

    def topic(self, prefix: str = "svcmgr") -> str:
        return "/".join([prefix, self.node or "-", *self.cls.split(".")])
