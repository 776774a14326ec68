"""Every event class the daemon publishes, with its payload: the bus's vocabulary, spelled once. A leaf.

Publishers and subscribers name classes through these constants (``SVC_STOPPING``,
``state_class("online")``, ``CASE_OPEN``...), never as string literals, so a class
that nothing publishes cannot be waited for. ``CLASSES`` documents each class (or
family, where the last word varies) with the payload keys it carries; a test checks
that every class published in the code is here and that every constant names one.
Ereports (``ereport.*``) and fault classes (``fault.*``) are open families: rules,
log patterns and outside sources name their own (``svcmgr.events.EREPORT_NAMESPACES``
says who owns which).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CASE_CLASSES", "CASE_CLOSED", "CASE_CLOSED_STATES", "CASE_OPEN", "CLASSES", "DAEMON_READY", "EREPORT", "LB_SERVER",
    "LB_SERVER_DRAINED", "LIST", "LIST_REPAIRED", "LIST_RESOLVED", "LIST_SUSPECT", "LIST_UPDATED",
    "MQTT_DOWN", "MQTT_REJECTED", "MQTT_UP", "SVC_CLEARED", "SVC_CONFIG", "SVC_IMPORTED", "SVC_REFRESHED",
    "SVC_STATE", "SVC_STOPPING", "VRRP_STATE", "EventClass", "known", "lb_server_class", "state_class",
    "state_of", "vrrp_state_class",
]


@dataclass(frozen=True)
class EventClass:
    """One class, or a family (``name`` ending in ``.*``: the words after it vary), and its payload keys."""

    name: str
    payload: tuple[str, ...]
    publisher: str
    doc: str

    @property
    def family(self) -> bool:
        return self.name.endswith(".*")

    def covers(self, cls: str) -> bool:
        if self.family:
            return cls.startswith(self.name[:-1]) and len(cls) > len(self.name) - 1
        return cls == self.name


# ---------------------------------------------------------------- services (svcmgr.engine)
SVC_STATE = "svc.state"  # svc.state.<state>, and svc.state.deleted
SVC_STOPPING = "svc.stopping"
SVC_CLEARED = "svc.cleared"
SVC_CONFIG = "svc.config"
SVC_IMPORTED = "svc.config.imported"
SVC_REFRESHED = "svc.config.refreshed"
DAEMON_READY = "svc.daemon.ready"

# ---------------------------------------------------------------- fault cases (fault.agents)
LIST = "list"
LIST_SUSPECT = "list.suspect"
LIST_UPDATED = "list.updated"
LIST_REPAIRED = "list.repaired"
LIST_RESOLVED = "list.resolved"
#: Every case event, in the order of a case's life.
CASE_CLASSES = (LIST_SUSPECT, LIST_UPDATED, LIST_REPAIRED, LIST_RESOLVED)
#: A case opened or changed (its suspects may be new).
CASE_OPEN = (LIST_SUSPECT, LIST_UPDATED)
#: After these a case retires nothing (an acquittal or a replacement is told as list.repaired with its
#: ``state``; the case's ``state`` field says which).
CASE_CLOSED = (LIST_REPAIRED, LIST_RESOLVED)
#: The ``state`` of a case event after which the case retires nothing.
CASE_CLOSED_STATES = ("repaired", "acquitted", "replaced", "resolved")

# ---------------------------------------------------------------- components
VRRP_STATE = "vrrp.state"
LB_SERVER = "lb.server"
LB_SERVER_DRAINED = "lb.server.drained"
MQTT_UP = "mqtt.connection.up"
MQTT_DOWN = "mqtt.connection.down"
MQTT_REJECTED = "mqtt.telemetry.rejected"
EREPORT = "ereport"

_STATE_PAYLOAD = ("state", "previous", "next_state", "reason", "stime")
_CASE_PAYLOAD = ("uuid", "class", "classes", "severity", "msgid", "state", "rule", "suspects", "impacted",
                 "affected", "retired", "ereports", "time", "node", "announced")

CLASSES: tuple[EventClass, ...] = (
    EventClass(SVC_STATE + ".*", _STATE_PAYLOAD, "svcmgr.engine",
               "An instance entered a state (uninitialized, offline, online, degraded, maintenance, disabled); "
               "svc.state.deleted when it left the repository (payload: state only)."),
    EventClass(SVC_STOPPING, ("state", "next_state", "cause", "planned", "reason"), "svcmgr.engine",
               "A running instance starts to stop; planned: asked for (stop gates run), else a death or failure."),
    EventClass(SVC_CLEARED, ("state", "by", "case"), "svcmgr.engine",
               "svcadm clear (or the fault manager) took an instance out of maintenance or degraded."),
    EventClass(SVC_IMPORTED, ("services",), "svcmgr.engine", "Manifests were imported (resource '')."),
    EventClass(SVC_REFRESHED, ("services",), "svcmgr.engine", "Running configuration refreshed (resource '')."),
    EventClass(DAEMON_READY, ("online", "instances"), "svcmgr.daemon", "Every instance settled after boot."),
    EventClass(LIST_SUSPECT, _CASE_PAYLOAD, "fault.agents", "A case was solved: its suspects are faulty."),
    EventClass(LIST_UPDATED, _CASE_PAYLOAD, "fault.agents",
               "A solved case changed (new evidence, a suspect added), or was announced again after a restart."),
    EventClass(LIST_REPAIRED, _CASE_PAYLOAD, "fault.agents",
               "A case was repaired, acquitted or replaced (its state says which)."),
    EventClass(LIST_RESOLVED, _CASE_PAYLOAD, "fault.agents", "A case was closed."),
    EventClass("fault.*", ("uuid", "certainty", "msgid", "severity"), "fault.agents",
               "The fault class of each suspect of a solved case (fault.svc.flapping...), resource the suspect."),
    EventClass(EREPORT + ".*", (), "restarter, log patterns, fault sources, components",
               "Error telemetry, one class per kind of error (owners: svcmgr.events.EREPORT_NAMESPACES)."),
    EventClass(VRRP_STATE + ".*", ("instance", "state", "previous", "priority", "time", "configured_priority",
                                   "effective_priority", "addresses", "router_id", "interface"), "vrrp.agent",
               "keepalived moved an instance to master, backup, fault or stop (resource vrrp:/NAME)."),
    EventClass(LB_SERVER + ".*", ("frontend", "server", "fmri", "state"), "lb.agent",
               "HAProxy was told to put a backend server in ready, drain or maint (resource lb:/FRONTEND/SERVER)."),
    EventClass(LB_SERVER_DRAINED, ("frontend", "server", "fmri", "seconds", "connections_at_start",
                                   "connections_left", "time"), "lb.agent",
               "A planned stop's drain ended (connections_left > 0: it timed out)."),
    EventClass(MQTT_UP, ("broker", "queued"), "svcmgr.mqtt", "The bridge connected to its broker."),
    EventClass(MQTT_DOWN, ("broker", "error"), "svcmgr.mqtt", "The bridge lost its broker."),
    EventClass(MQTT_REJECTED, ("topic", "error"), "svcmgr.mqtt", "A telemetry message was refused."),
)


def state_class(state: str) -> str:
    """``svc.state.<state>``."""
    return f"{SVC_STATE}.{state}"


def state_of(cls: str) -> str | None:
    """The state a ``svc.state.*`` class names, else None."""
    return cls[len(SVC_STATE) + 1:] if cls.startswith(SVC_STATE + ".") else None


def vrrp_state_class(state: str) -> str:
    return f"{VRRP_STATE}.{state}"


def lb_server_class(want: str) -> str:
    return f"{LB_SERVER}.{want}"


def known(cls: str) -> bool:
    """Whether ``cls`` is a class the daemon publishes (or one of its open families)."""
    return any(c.covers(cls) for c in CLASSES)
