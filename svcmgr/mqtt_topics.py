"""The MQTT topic scheme and payloads: what the bridge publishes, and how telemetry becomes an ereport.

Pure functions, no I/O and no MQTT library, so that the bridge, the fleet view
and the tests share one definition of the wire format:

* an event of class ``a.b.c`` on node ``n`` goes to ``svcmgr/n/a/b/c`` with the
  JSON payload ``{"seq", "class", "time", "node", "resource", "data"}``; ``seq``
  rises by one for every message a node queues, so a subscriber can drop the
  duplicates QoS 1 allows and see gaps;
* each instance's current state is retained on
  ``svcmgr/n/state/<category>/<name>/<instance>``;
* each open fault case is retained on ``svcmgr/n/cases/<uuid>`` (the case's event
  data, with ``time`` its diagnosis time when given, ``updated`` and ``event`` the
  last ``list.*`` event) and cleared (an empty retained message) when it is
  repaired, acquitted, replaced or resolved;
* ``svcmgr/n/status`` is retained ``online``, and the last will turns it ``offline``.

Telemetry arrives on operator-chosen topics as ``{"class"?, "resource"?,
"time"?, "data"?}`` and is checked strictly before it becomes an ``ereport.*``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from svcmgr.eventclasses import CASE_CLOSED, CASE_CLOSED_STATES, state_class
from svcmgr.events import EREPORT_NAMESPACES, Event, EventError, check_class
from svcmgr.jsontext import unpaired_surrogate
from svcmgr.schema import FieldError

__all__ = [
    "PREFIX",
    "Outgoing",
    "case_message",
    "case_topic",
    "check_filter",
    "decode_state",
    "event_message",
    "event_payload",
    "event_topic",
    "filter_overlaps_prefix",
    "parse_retained_topic",
    "snapshot_state",
    "state_message",
    "state_topic",
    "status_payload",
    "status_topic",
    "telemetry_event",
    "under_prefix",
]

PREFIX = "svcmgr"
#: First topic levels the scheme keeps for itself; an event class starting with one is moved under ``_``.
RESERVED = frozenset({"state", "cases", "status"})
_CASE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_CLASS_LEVEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
_TELEMETRY_FIELDS = ("class", "resource", "time", "data")
_RESERVED_DATA = ("source", "topic")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT message to send."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


def _dumps(obj: Any) -> bytes:
    """Compact, strict JSON: values JSON cannot hold become strings, NaN and infinities null."""
    try:
        return json.dumps(obj, separators=(",", ":"), default=str, allow_nan=False).encode()
    except ValueError:
        return json.dumps(_finite(obj), separators=(",", ":"), default=str, allow_nan=False).encode()


# ``_dumps``'s encoder made once, for the payload of every event: ``json.dumps`` with arguments makes its
# C encoder again at each call (about a third of an event's payload). Without the circular check: an
# object that has a cycle fails here and takes ``_dumps``'s way, which reports it as before.
_STRING = json.encoder.encode_basestring_ascii
_C_ENCODER = None if json.encoder.c_make_encoder is None else json.encoder.c_make_encoder(
    None, str, _STRING, None, ":", ",", False, False, False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _level(text: str) -> str:
    """A topic level: MQTT forbids wildcards and NUL in topic names; escape them."""
    return text.replace("%", "%25").replace("+", "%2B").replace("#", "%23").replace("\x00", "%00")


def event_topic(ev: Event, prefix: str = PREFIX) -> str:
    parts = ev.cls.split(".")
    if parts[0] in RESERVED:
        parts[0] = "_" + parts[0]
    return "/".join([prefix, ev.node or "-", *parts])


def event_message(ev: Event, seq: int, qos: int, prefix: str = PREFIX) -> Outgoing:
    return Outgoing(event_topic(ev, prefix), event_payload(ev, seq), qos, False)


def event_payload(ev: Event, seq: int) -> bytes:
    """An event's JSON payload: ``{"seq", "class", "time", "node", "resource", "data"}``, compact.

    The envelope is written around the data's JSON (the bytes ``_dumps`` makes of the whole, made
    faster); anything out of the ordinary (a time that is not a finite number, a field that is not a
    string, data JSON cannot hold as it is) takes ``_dumps``'s way."""
    t, cls, node, resource = ev.time, ev.cls, ev.node, ev.resource
    if (_C_ENCODER is not None and ((type(t) is float and math.isfinite(t)) or type(t) is int)
            and type(cls) is str and type(node) is str and type(resource) is str and type(seq) is int):
        try:
            data = "".join(_C_ENCODER(ev.data, 0))
        except (ValueError, RecursionError):
            pass
        else:
            return (f'{{"seq":{seq},"class":{_STRING(cls)},"time":{t!r},"node":{_STRING(node)},'
                    f'"resource":{_STRING(resource)},"data":{data}}}').encode()
    return _dumps({"seq": seq, "class": cls, "time": t, "node": node, "resource": resource, "data": ev.data})


def state_topic(node: str, fmri: str, prefix: str = PREFIX) -> str | None:
    """``svc:/site/app:default`` -> ``svcmgr/n/state/site/app/default`` (None if not an instance FMRI)."""
    if not fmri.startswith("svc:/") or ":" not in fmri[5:]:
        return None
    service, _, instance = fmri[5:].rpartition(":")
    levels = [_level(s) for s in service.split("/") if s]
    if not levels or not instance:
        return None
    return "/".join([prefix, node, "state", *levels, _level(instance)])


def state_message(node: str, ev: Event, *, enabled: bool | None, prefix: str = PREFIX) -> Outgoing | None:
    """The retained picture of one instance after a ``svc.state.*`` event (an empty payload clears it)."""
    topic = state_topic(node, ev.resource, prefix)
    if topic is None:
        return None
    d = ev.data
    if ev.cls == state_class("deleted") or d.get("state") == "deleted":
        return Outgoing(topic, b"", 1, True)
    payload = {"fmri": ev.resource, "node": node, "state": d.get("state"), "next_state": d.get("next_state"),
               "previous": d.get("previous"), "reason": d.get("reason", ""), "stime": d.get("stime"),
               "enabled": enabled, "time": ev.time}
    return Outgoing(topic, _dumps(payload), 1, True)


def snapshot_state(node: str, fmri: str, state: str, next_state: str | None, reason: str, stime: float,
                   enabled: bool, now: float, prefix: str = PREFIX) -> Outgoing | None:
    """The retained picture of one instance read from the engine (at start and on reconnect)."""
    topic = state_topic(node, fmri, prefix)
    if topic is None:
        return None
    payload = {"fmri": fmri, "node": node, "state": state, "next_state": next_state, "previous": None,
               "reason": reason, "stime": stime, "enabled": enabled, "time": now}
    return Outgoing(topic, _dumps(payload), 1, True)


def case_topic(node: str, uuid: str, prefix: str = PREFIX) -> str | None:
    if not isinstance(uuid, str) or not _CASE_ID_RE.match(uuid):
        return None
    return f"{prefix}/{node}/cases/{uuid}"


def case_message(node: str, ev: Event, prefix: str = PREFIX) -> Outgoing | None:
    """The retained picture of one case after a ``list.*`` event; None if the event names no valid case."""
    d = ev.data
    topic = case_topic(node, d.get("uuid"), prefix)
    if topic is None:
        return None
    if ev.cls in CASE_CLOSED or d.get("state") in CASE_CLOSED_STATES:  # it leaves the retained picture
        return Outgoing(topic, b"", 1, True)
    payload = {k: d.get(k) for k in ("uuid", "class", "severity", "msgid", "suspects", "affected", "state")}
    payload.update({k: v for k, v in d.items() if k not in payload})
    t = d.get("time")
    payload.update({"node": node, "time": t if isinstance(t, int | float) and not isinstance(t, bool) else ev.time,
                    "updated": ev.time, "event": ev.cls})
    return Outgoing(topic, _dumps(payload), 1, True)


def status_topic(node: str, prefix: str = PREFIX) -> str:
    return f"{prefix}/{node}/status"


def status_payload(node: str, status: str, now: float, version: str = "") -> bytes:
    return _dumps({"node": node, "status": status, "time": now, "version": version})


def parse_retained_topic(topic: str, prefix: str = PREFIX) -> tuple[str, str] | None:
    """``svcmgr/n/state/...`` -> (n, "state"); ``.../cases/u`` -> (n, "cases"); ``.../status`` -> (n, "status")."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != prefix:
        return None
    kind = parts[2]
    if kind == "status" and len(parts) == 3:
        return parts[1], kind
    if kind == "cases" and len(parts) == 4:
        return parts[1], kind
    if kind == "state" and len(parts) >= 5:
        return parts[1], kind
    return None


def decode_state(payload: bytes) -> dict[str, Any] | None:
    """A retained state or case payload as a dict; None for a cleared or unreadable one."""
    if not payload:
        return None
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or unpaired_surrogate(payload, obj) is not None:
        return None  # text that is not Unicode: the fleet's table and the dashboard could not print it
    return obj


# ---------------------------------------------------------------- topic filters
def check_filter(text: str) -> str | None:
    """Why ``text`` is not a valid MQTT topic filter, or None if it is."""
    if not text:
        return "a topic filter must not be empty"
    if len(text.encode()) > 65535:
        return "a topic filter is limited to 65535 bytes"
    if "\x00" in text:
        return "a topic filter must not contain NUL"
    levels = text.split("/")
    for i, lv in enumerate(levels):
        if "#" in lv and (lv != "#" or i != len(levels) - 1):
            return f"'#' must be a whole level and the last one in {text!r}"
        if "+" in lv and lv != "+":
            return f"'+' must be a whole level in {text!r}"
    return None


def filter_overlaps_prefix(text: str, prefix: str = PREFIX) -> bool:
    """True when a filter names the bridge's own topics explicitly (``svcmgr/...``): a feedback loop."""
    first = text.split("/", 1)[0]
    return first == prefix


def under_prefix(topic: str, prefix: str = PREFIX) -> bool:
    return topic == prefix or topic.startswith(prefix + "/")


# ---------------------------------------------------------------- telemetry in
#: The class namespace of telemetry (``EREPORT_NAMESPACES`` gives every source's).
TELEMETRY_CLASS = EREPORT_NAMESPACES["mqtt"][0]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def telemetry_event(topic: str, payload: bytes, *, max_bytes: int, now: float) -> Event:
    """Turn one telemetry message into an ereport event, or raise FieldError naming what is wrong.

    The payload is a JSON object with only ``class`` (``ereport.telemetry.*``: a broker
    publisher may not speak for the restarter or any other source; if absent it is
    ``ereport.telemetry.`` + the topic's levels, the first one dropped when it is
    ``telemetry``), ``resource`` (a string, usually an FMRI),
    ``time`` (seconds since the epoch) and ``data`` (an object). The event's data
    gains ``source = "mqtt"`` and the ``topic``.
    """
    src = f"mqtt topic {topic}"
    if len(payload) > max_bytes:
        raise FieldError(src, "", f"payload is {len(payload)} bytes, more than the limit of {max_bytes}")
    if not payload.strip():
        raise FieldError(src, "", "empty payload (expected a JSON object)")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FieldError(src, "", f"payload is not UTF-8 (byte {e.start})") from None
    try:
        obj = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise FieldError(src, "", "payload nests too deeply") from None
    except ValueError as e:
        raise FieldError(src, "", f"payload is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise FieldError(src, "", f"payload must be a JSON object, got {_jsontype(obj)}")
    bad = unpaired_surrogate(payload, obj)
    if bad is not None:
        raise FieldError(src, "", f"payload holds text that is not Unicode (an unpaired surrogate, {bad})")
    for k in obj:
        if k not in _TELEMETRY_FIELDS:
            raise FieldError(src, str(k)[:64], f"unknown field (allowed: {', '.join(_TELEMETRY_FIELDS)})")
    cls = obj.get("class")
    if cls is None:
        levels = topic.split("/")
        for lv in levels:
            if not _CLASS_LEVEL_RE.fullmatch(lv):
                raise FieldError(src, "class", f"absent, and topic level {lv[:64]!r} cannot form a class "
                                 "(letters, digits, _ and - only): give a class in the payload")
        if levels[0] == "telemetry":
            levels = levels[1:]
        cls = TELEMETRY_CLASS + ".".join(levels)
    elif not isinstance(cls, str):
        raise FieldError(src, "class", f"expected a string, got {_jsontype(cls)}")
    try:
        check_class(cls)
    except EventError as e:
        raise FieldError(src, "class", str(e)) from None
    if not cls.startswith(TELEMETRY_CLASS):
        raise FieldError(src, "class", f"{cls!r}: telemetry reports only {TELEMETRY_CLASS}* classes (the restarter, "
                         "the kernel log and Alertmanager speak for themselves)")
    resource = obj.get("resource", "")
    if not isinstance(resource, str):
        raise FieldError(src, "resource", f"expected a string, got {_jsontype(resource)}")
    if len(resource) > 1024 or any(ord(c) < 32 or ord(c) == 127 for c in resource):
        raise FieldError(src, "resource", "must be at most 1024 printable characters")
    t = obj.get("time", now)
    if isinstance(t, bool) or not isinstance(t, int | float):
        raise FieldError(src, "time", f"expected seconds since the epoch, got {_jsontype(t)}")
    if not math.isfinite(t) or t <= 0 or t > 1e11:
        raise FieldError(src, "time", f"{t!r} is not a plausible time in seconds since the epoch")
    data = obj.get("data", {})
    if not isinstance(data, dict):
        raise FieldError(src, "data", f"expected an object, got {_jsontype(data)}")
    for k in _RESERVED_DATA:
        if k in data:
            raise FieldError(src, f"data.{k}", "is set by the bridge and may not be given")
    data = dict(data)
    data["source"] = "mqtt"
    data["topic"] = topic
    return Event(cls, resource, data, "", float(t))


def _jsontype(v: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)
