"""Ereport validation: every field of untrusted input is checked and named in the error."""

import json
import math
import time

import pytest

from fault.events import EreportError, check_resource, class_matches, detail_of, validate


def test_a_good_ereport():
    e = validate("ereport.io.disk.error", resource="dev:///dev/sda", payload={"sector": 12, "op": "READ"},
                 source="test", default_node="n1")
    assert e.cls == "ereport.io.disk.error" and e.node == "n1" and e.resource == "dev:///dev/sda"
    assert e.payload_json == '{"sector":12,"op":"READ"}'
    assert abs(e.time - time.time()) < 5


def test_service_resources_are_normalised():
    assert check_resource("svc://localhost/site/db:default") == "svc:/site/db:default"
    assert check_resource("") == ""


@pytest.mark.parametrize(("kwargs", "field", "text"), [
    ({"cls": "fault.svc.flapping"}, "class", "not an ereport class"),
    ({"cls": "ereport"}, "class", "not an ereport class"),
    ({"cls": "ereport.has space"}, "class", "not an ereport class"),
    ({"cls": 42}, "class", "expected a string"),
    ({"resource": "svc:/bad name:x"}, "resource", "bad service name"),
    ({"resource": "just words"}, "resource", "is not an FMRI"),
    ({"resource": "dev:///dev/sda\n"}, "resource", "is not an FMRI"),
    ({"payload": [1, 2]}, "payload", "expected a table"),
    ({"payload": {"x": math.nan}}, "payload.x", "not a finite number"),
    ({"payload": {"bad key": 1}}, "payload", "bad key"),
    ({"payload": {"sector": 1, 7: 1}}, "payload", "bad key"),
    ({"payload": {"sector": object()}}, "payload.sector", "cannot be stored"),
    ({"payload": {"sector": [1, {"bad key": 2}]}}, "payload.sector[1]", "bad key"),
    ({"payload": {"x": {"a": {"b": {"c": {"d": 1}}}}}}, "payload.x.a.b.c", "nested deeper"),
    ({"payload": {"x": "y" * 20000}}, "payload", "more than"),
    ({"time_": "yesterday"}, "time", "expected seconds"),
    ({"time_": time.time() + 10 * 86400}, "time", "not a plausible time"),
    ({"time_": 12.0}, "time", "not a plausible time"),
    ({"node": "bad node"}, "node", "not a node name"),
    # JSON's "\ud800" decodes to an unpaired surrogate, which UTF-8 (and so the error log) cannot hold: an
    # ereport that held one stopped every later write of the error log (found publishing telemetry as nobody)
    ({"payload": {"s": "\ud800"}}, "payload", "unpaired surrogate"),
    ({"payload": {"t": {"deep": ["x\udfffy"]}}}, "payload", "unpaired surrogate"),
    ({"resource": "dev:///disk\ud800"}, "resource", "is not an FMRI"),
])
def test_malformed_ereports_name_the_field(kwargs, field, text):
    args = {"cls": "ereport.io.disk.error", **kwargs}
    cls = args.pop("cls")
    with pytest.raises(EreportError) as ei:
        validate(cls, source="src", **args)
    assert ei.value.field == field
    assert text in str(ei.value)
    assert str(ei.value).startswith("src: ")


def test_brief_and_detail_are_made_once_and_follow_the_id():
    e = validate("ereport.svc.exit.signal", resource="svc:/a/b:default", payload={"pid": 5, "signal": 9})
    first = e.brief()
    assert first["id"] == 0 and e.brief() is first
    e.id = 42  # the error log gives the id on receipt
    assert e.brief()["id"] == 42 and e.brief() is e.brief()
    assert detail_of(e) == "a process (pid 5) died on SIGKILL (9)" and detail_of(e) is detail_of(e)


def test_class_patterns():
    assert class_matches("ereport.svc.exit.*", "ereport.svc.exit.signal")
    assert class_matches("ereport.*", "ereport.io.disk.error")
    assert not class_matches("ereport.svc.exit.*", "ereport.svc.exit")
    assert not class_matches("ereport.svc.exit.*", "ereport.svc.exited.x")
    assert class_matches("ereport.kernel.oom", "ereport.kernel.oom")


@pytest.mark.parametrize("payload", [{}, {"pid": 1, "signal": 9, "core": False},
                                     {"text": "é \"quoted\" \\ \u2028", "n": [1, 2.5, {"deep": None}], "big": 1e300}])
def test_the_stored_payload_is_compact_json_with_utf8_kept(payload):
    e = validate("ereport.app.x", payload=payload)
    assert e.payload_json == json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    assert json.loads(e.payload_json) == payload


def test_a_class_seen_valid_is_still_checked_by_type():
    validate("ereport.app.seen")
    for bad in (["ereport.app.seen"], 3, None):
        with pytest.raises(EreportError, match="class"):
            validate(bad)


@pytest.mark.parametrize(("cls", "payload", "text"), [
    ("ereport.svc.exit.signal", {"pid": 7, "signal": 9, "core": True},
     "a process (pid 7) died on SIGKILL (9) and dumped core"),
    ("ereport.svc.exit.signal", {"signal": 200}, "a process died on signal 200 (200)"),
    ("ereport.svc.exit.code", {"pid": 7, "code": 3, "reason": "bad config"}, "bad config"),
    ("ereport.svc.exit.signal", {"pid": True, "signal": True}, "ereport.svc.exit.signal"),
    ("ereport.svc.exit.code", {"pid": "7", "code": False}, "ereport.svc.exit.code"),
    ("ereport.kernel.oom", {}, "process ? (?) killed, ? kB resident"),
    ("ereport.app.x", {}, "ereport.app.x"),
])
def test_the_detail_of_an_ereport(cls, payload, text):
    assert detail_of(validate(cls, payload=payload)) == text
