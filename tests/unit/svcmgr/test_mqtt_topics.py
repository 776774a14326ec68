"""The MQTT wire format: topics for events, states and cases, and the strict reading of telemetry."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svcmgr import mqtt_topics as wire
from svcmgr.events import Event
from svcmgr.schema import FieldError

NOW = 1_800_000_000.0


def test_event_topic_is_the_class_under_the_node():
    ev = Event("ereport.svc.exit.signal", "svc:/site/a:default", {"signal": 9}, "n1", NOW)
    m = wire.event_message(ev, 42, 1)
    assert m.topic == "svcmgr/n1/ereport/svc/exit/signal" == ev.topic()
    assert (m.qos, m.retain) == (1, False)
    assert json.loads(m.payload) == {"seq": 42, "class": "ereport.svc.exit.signal", "time": NOW, "node": "n1",
                                     "resource": "svc:/site/a:default", "data": {"signal": 9}}


def test_classes_cannot_collide_with_the_retained_topics():
    for cls in ("state.x.y", "cases.a", "status.up"):
        topic = wire.event_topic(Event(cls, "", {}, "n1", NOW))
        assert wire.parse_retained_topic(topic) is None, topic
        assert topic.startswith("svcmgr/n1/_")


def test_payload_with_values_json_cannot_carry():
    ev = Event("svc.test.odd", "", {"nan": float("nan"), "deep": [{"inf": float("-inf")}], "obj": object(),
                                    "n": 1.5}, "n1", NOW)
    payload = wire.event_message(ev, 1, 1).payload
    body = json.loads(payload, parse_constant=lambda c: pytest.fail(f"{c} in the payload"))
    assert body["data"]["nan"] is None and body["data"]["deep"] == [{"inf": None}] and body["data"]["n"] == 1.5
    assert isinstance(body["data"]["obj"], str)


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5) | st.integers(), kids, max_size=3),
    max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(cls=st.from_regex(r"[a-z]{1,5}(\.[A-Za-z0-9_-]{1,5}){1,3}", fullmatch=True), resource=st.text(max_size=12),
       node=st.text(max_size=6), t=st.floats() | st.integers(min_value=0, max_value=2**40) | st.booleans(),
       data=st.dictionaries(st.text(max_size=6), _JSONISH, max_size=4), seq=st.integers(min_value=1))
def test_event_payload_is_the_whole_envelope_as_dumps_writes_it(cls, resource, node, t, data, seq):
    """The payload written around the data's JSON is byte for byte what encoding the envelope makes."""
    ev = Event(cls, resource, data, node, t)
    whole = {"seq": seq, "class": cls, "time": t, "node": node, "resource": resource, "data": data}
    assert wire.event_payload(ev, seq) == wire._dumps(whole)
    assert wire.event_message(ev, seq, 1).payload == wire._dumps(whole)


@pytest.mark.parametrize(("fmri", "topic"), [
    ("svc:/site/app:default", "svcmgr/n1/state/site/app/default"),
    ("svc:/system/filesystem/local:default", "svcmgr/n1/state/system/filesystem/local/default"),
    ("svc:/a+b:x#1", "svcmgr/n1/state/a%2Bb/x%231"),
    ("svc:/site/app", None),
    ("file://localhost/etc/x", None),
])
def test_state_topic(fmri, topic):
    assert wire.state_topic("n1", fmri) == topic


def test_state_message_is_retained_and_deleted_clears_it():
    ev = Event("svc.state.maintenance", "svc:/site/db:default",
               {"state": "maintenance", "previous": "online", "next_state": None, "reason": "Start method failed",
                "stime": NOW - 5}, "n1", NOW)
    m = wire.state_message("n1", ev, enabled=True)
    assert (m.topic, m.qos, m.retain) == ("svcmgr/n1/state/site/db/default", 1, True)
    assert wire.parse_retained_topic(m.topic) == ("n1", "state")
    body = wire.decode_state(m.payload)
    assert body["state"] == "maintenance" and body["enabled"] is True and body["reason"] == "Start method failed"
    gone = wire.state_message("n1", Event("svc.state.deleted", "svc:/site/db:default", {"state": "deleted"},
                                          "n1", NOW), enabled=None)
    assert (gone.payload, gone.retain) == (b"", True)
    assert wire.decode_state(gone.payload) is None


def _case(cls: str, state: str = "open", uuid: str = "0d6b7c1e-3a52-4c1b-9d0e-7f2b1c3d4e5f") -> Event:
    return Event(cls, "", {"uuid": uuid, "class": "fault.svc.flapping", "severity": "major", "msgid": "SVC-8000-3Q",
                           "suspects": [], "affected": ["svc:/site/a:default"], "state": state, "extra": 1},
                 "n1", NOW)


def test_case_retained_while_open_and_cleared_when_closed():
    m = wire.case_message("n1", _case("list.suspect"))
    assert (m.topic, m.qos, m.retain) == ("svcmgr/n1/cases/0d6b7c1e-3a52-4c1b-9d0e-7f2b1c3d4e5f", 1, True)
    body = json.loads(m.payload)
    assert body["class"] == "fault.svc.flapping" and body["extra"] == 1 and body["event"] == "list.suspect"
    assert body["time"] == NOW and body["updated"] == NOW and body["node"] == "n1"
    diagnosed = _case("list.updated", "solved")
    diagnosed.data["time"] = NOW - 60
    assert json.loads(wire.case_message("n1", diagnosed).payload)["time"] == NOW - 60
    assert wire.case_message("n1", _case("list.updated", "solved")).payload
    for cls, state in (("list.repaired", "repaired"), ("list.resolved", "resolved"), ("list.updated", "acquitted")):
        assert wire.case_message("n1", _case(cls, state)).payload == b""
    assert wire.case_message("n1", _case("list.suspect", uuid="a/b")) is None
    assert wire.case_message("n1", _case("list.suspect", uuid="")) is None


@pytest.mark.parametrize(("f", "ok"), [
    ("telemetry/#", True), ("#", True), ("+/alarm", True), ("a/+/b", True),
    ("a/#/b", False), ("a#", False), ("a/b+", False), ("", False), ("a\x00b", False),
])
def test_check_filter(f, ok):
    assert (wire.check_filter(f) is None) == ok


def test_telemetry_with_a_class():
    ev = wire.telemetry_event("sensors/r1/alarm", b'{"class": "ereport.telemetry.hw.temp.high", "resource": "hw:/r1", '
                              b'"time": 1700000000, "data": {"c": 81}}', max_bytes=1024, now=NOW)
    assert (ev.cls, ev.resource, ev.time) == ("ereport.telemetry.hw.temp.high", "hw:/r1", 1_700_000_000.0)
    assert ev.data == {"c": 81, "source": "mqtt", "topic": "sensors/r1/alarm"}


def test_telemetry_class_from_the_topic():
    ev = wire.telemetry_event("telemetry/disk-1/io_errors", b"{}", max_bytes=1024, now=NOW)
    assert ev.cls == "ereport.telemetry.disk-1.io_errors" and ev.time == NOW and ev.resource == ""
    ev = wire.telemetry_event("sensors/r1/alarm", b"{}", max_bytes=1024, now=NOW)
    assert ev.cls == "ereport.telemetry.sensors.r1.alarm"


@pytest.mark.parametrize(("topic", "payload", "field", "words"), [
    ("t/x", b"", "", "empty payload"),
    ("t/x", b"   ", "", "empty payload"),
    ("t/x", b"\xc3\x28", "", "not UTF-8"),
    ("t/x", b"{", "", "not JSON"),
    ("t/x", b'"text"', "", "must be a JSON object, got a string"),
    ("t/x", b"null", "", "got null"),
    ("t/x", b'{"x": Infinity}', "", "Infinity is not allowed"),
    ("t/x", b"[" * 3000 + b"]" * 3000, "", "nests too deeply"),
    ("t/x", b'{"a": 1}', "a", "unknown field"),
    ("t/x", b'{"class": ["ereport.a"]}', "class", "expected a string, got an array"),
    ("t/x", b'{"class": "svc.state.online"}', "class", "reports only ereport.telemetry.*"),
    ("t/x", b'{"class": "ereport.svc.exit.signal"}', "class", "reports only ereport.telemetry.*"),
    ("t/x", b'{"class": "ereport.hw.temp.high"}', "class", "reports only ereport.telemetry.*"),
    ("t/x\n", b"{}", "class", "cannot form a class"),
    ("t/x", b'{"class": "ereport"}', "class", "bad event class"),
    ("t/x", b'{"class": "ereport.a b"}', "class", "bad event class"),
    ("t/x y", b"{}", "class", "cannot form a class"),
    ("t/" + "x" * 65, b"{}", "class", "cannot form a class"),
    ("t/x", b'{"resource": 5}', "resource", "expected a string, got a number"),
    ("t/x", b'{"resource": "a\\nb"}', "resource", "printable"),
    ("t/x", b'{"time": true}', "time", "got a boolean"),
    ("t/x", b'{"time": -1}', "time", "not a plausible time"),
    ("t/x", b'{"time": 1e300}', "time", "not a plausible time"),
    ("t/x", b'{"data": "x"}', "data", "expected an object, got a string"),
    ("t/x", b'{"data": {"topic": "forged"}}', "data.topic", "set by the bridge"),
])
def test_telemetry_refusals_name_topic_field_and_problem(topic, payload, field, words):
    with pytest.raises(FieldError) as e:
        wire.telemetry_event(topic, payload, max_bytes=64 * 1024, now=NOW)
    assert e.value.source == f"mqtt topic {topic}"
    assert e.value.field == field
    assert words in e.value.message, e.value.message


def test_telemetry_size_limit():
    payload = json.dumps({"data": {"x": "a" * 2000}}).encode()
    with pytest.raises(FieldError, match="more than the limit of 1024"):
        wire.telemetry_event("t/x", payload, max_bytes=1024, now=NOW)
    assert wire.telemetry_event("t/x", payload, max_bytes=4096, now=NOW).data["x"] == "a" * 2000


def test_own_topics_are_recognised():
    assert wire.under_prefix("svcmgr/n1/ereport/x")
    assert wire.under_prefix("svcmgr")
    assert not wire.under_prefix("svcmgr-fleet/abc")
    assert wire.filter_overlaps_prefix("svcmgr/#") and not wire.filter_overlaps_prefix("#")
