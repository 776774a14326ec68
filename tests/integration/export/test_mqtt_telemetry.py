"""Telemetry in: messages on the configured filters become ereports; malformed ones are survived and counted."""

from __future__ import annotations

import json

import paho.mqtt.publish as publish

from export_helpers import mqtt_status, start_node, wait_for

#: (what it shows, topic, payload, words the refusal names)
MALFORMED = [
    ("not JSON", "telemetry/disk/errors", b"{nope", "not JSON"),
    ("not an object", "telemetry/disk/errors", b"[1, 2]", "must be a JSON object"),
    ("not UTF-8", "telemetry/disk/errors", b"\xff\xfe{}", "not UTF-8"),
    ("empty", "telemetry/disk/errors", b"", "empty payload"),
    ("unknown field", "telemetry/disk/errors", b'{"klass": "ereport.x.y"}', "klass: unknown field"),
    ("not an ereport", "telemetry/disk/errors", b'{"class": "list.suspect", "data": {"uuid": "x"}}',
     "reports only ereport.telemetry"),
    ("the restarter's class", "telemetry/disk/errors", b'{"class": "ereport.svc.exit.signal"}',
     "reports only ereport.telemetry"),
    ("bad class", "telemetry/disk/errors", b'{"class": "ereport..x"}', "bad event class"),
    ("class not a string", "telemetry/disk/errors", b'{"class": 7}', "class: expected a string"),
    ("time not a number", "telemetry/disk/errors", b'{"time": "yesterday"}', "time: expected seconds"),
    ("time NaN", "telemetry/disk/errors", b'{"time": NaN}', "NaN is not allowed"),
    ("data not an object", "telemetry/disk/errors", b'{"data": [1]}', "data: expected an object"),
    ("reserved data key", "telemetry/disk/errors", b'{"data": {"source": "me"}}', "data.source"),
    ("resource not a string", "telemetry/disk/errors", b'{"resource": {"a": 1}}', "resource: expected a string"),
    ("topic cannot form a class", "telemetry/disk errors", b"{}", "cannot form a class"),
    ("too deep", "telemetry/deep", b"[" * 5000 + b"]" * 5000, "nests too deeply"),
    ("too big", "telemetry/big", b'{"data": {"x": "' + b"a" * 70000 + b'"}}', "more than the limit"),
    ("not Unicode", "telemetry/disk/errors", b'{"data": {"s": "\\ud800"}}', "not Unicode"),
]


def _config(d) -> str:
    p = d.root / "node.toml"
    p.write_text('[mqtt]\ntelemetry = ["telemetry/#", "sensors/+/alarm"]\n')
    return str(p)


def _pub(port: int, topic: str, payload: bytes) -> None:
    publish.single(topic, payload, qos=1, hostname="127.0.0.1", port=port)


def test_telemetry_becomes_ereports(svcmgrd, mosquitto, subscriber):
    broker = mosquitto()
    d = svcmgrd()
    start_node(d, "--node", "n1", "--mqtt", broker.url, "--metrics", "", "--config", _config(d))
    wait_for(lambda: mqtt_status(d)["connected"], 15, "connected")
    sub = subscriber(broker.port, ["svcmgr/n1/ereport/#"])
    _pub(broker.port, "telemetry/disk/errors", json.dumps(
        {"resource": "svc:/site/db:default", "time": 1_700_000_000.5, "data": {"device": "sda", "count": 3}}).encode())
    _pub(broker.port, "sensors/rack1/alarm", json.dumps({"class": "ereport.telemetry.hw.temperature.high",
                                                          "data": {"celsius": 81}}).encode())
    sub.wait(lambda s: len(s.events("n1")) >= 2, what="two ereports")
    by_class = {e["class"]: e for e in sub.events("n1")}
    disk = by_class["ereport.telemetry.disk.errors"]
    assert disk["resource"] == "svc:/site/db:default" and disk["time"] == 1_700_000_000.5
    assert disk["data"] == {"device": "sda", "count": 3, "source": "mqtt", "topic": "telemetry/disk/errors"}
    temp = by_class["ereport.telemetry.hw.temperature.high"]
    assert temp["data"]["celsius"] == 81 and temp["data"]["topic"] == "sensors/rack1/alarm"
    assert mqtt_status(d)["telemetry_received"] == 2


def test_malformed_telemetry_is_survived_and_counted(svcmgrd, mosquitto, subscriber):
    broker = mosquitto()
    d = svcmgrd()
    start_node(d, "--node", "n1", "--mqtt", broker.url, "--metrics", "", "--config", _config(d))
    wait_for(lambda: mqtt_status(d)["connected"], 15, "connected")
    sub = subscriber(broker.port, ["svcmgr/n1/#"])
    for _, topic, payload, _words in MALFORMED:
        _pub(broker.port, topic, payload)
    # a good one after the bad ones still goes through
    _pub(broker.port, "telemetry/ok", b'{"data": {"after": "the bad ones"}}')
    sub.wait(lambda s: any(e["class"] == "ereport.telemetry.ok" for e in s.events("n1")), what="the good one")
    wait_for(lambda: mqtt_status(d).get("telemetry_rejected", 0) == len(MALFORMED), 15, "all refusals counted")
    st = mqtt_status(d)
    assert st["connected"] and st["telemetry_received"] == 1
    # each refusal went out as an event that names the topic and the problem
    sub.wait(lambda s: len([e for e in s.events("n1") if e["class"] == "mqtt.telemetry.rejected"]) == len(MALFORMED),
             what="rejection events")
    rejected = [e["data"] for e in sub.events("n1") if e["class"] == "mqtt.telemetry.rejected"]
    for (what, topic, _, words), r in zip(MALFORMED, rejected, strict=True):
        assert r["topic"] == topic, what
        assert words in r["error"], f"{what}: {r['error']!r}"
        assert f"mqtt topic {topic}" in r["error"], what
    # telemetry can never forge a case or a service state
    assert not [t for t, _, _ in sub.snapshot() if "/cases/" in t]
    assert not [e for e in sub.events("n1") if e["class"] == "list.suspect"]
    log = d.log_text()
    assert log.count("telemetry refused") == 10, "logged, but rate-limited to 10 lines a minute"
    assert d.call("ping")["node"] == "n1"


def test_own_topics_and_retained_telemetry_are_not_ereports(svcmgrd, mosquitto, subscriber):
    broker = mosquitto()
    d = svcmgrd()
    # a retained message waiting on a telemetry topic before the node connects
    publish.single("telemetry/old", b'{"data": {"stale": true}}', qos=1, retain=True, hostname="127.0.0.1",
                   port=broker.port)
    cfg = d.root / "node.toml"
    cfg.write_text('[mqtt]\ntelemetry = ["#"]\n')
    start_node(d, "--node", "n1", "--mqtt", broker.url, "--metrics", "", "--config", str(cfg))
    wait_for(lambda: mqtt_status(d)["connected"], 15, "connected")
    _pub(broker.port, "telemetry/new", b"{}")
    wait_for(lambda: mqtt_status(d).get("telemetry_received") == 1, 15, "the live message")
    st = mqtt_status(d)
    assert st["telemetry_retained_skipped"] >= 1
    # with '#' the bridge hears its own messages: they are ignored, not fed back in a loop
    assert st["telemetry_ignored"] > 0
    assert st.get("telemetry_rejected", 0) == 0


def test_telemetry_reaches_the_fault_manager_and_trips_its_rules(svcmgrd, mosquitto):
    """A disk reporting errors over MQTT: the fault manager logs each ereport and diagnoses a case."""
    broker = mosquitto()
    d = svcmgrd()
    cfg = d.root / "node.toml"
    rules = d.root / "rules"
    rules.mkdir()
    (rules / "disk.toml").write_text(
        '[[rule]]\nname = "remote-disk"\nmatch = ["ereport.telemetry.disk.errors"]\nresources = ["dev"]\n'
        'serd = { n = 2, t = "1m" }\nfault = "fault.io.disk.degraded"\nmsgid = "DISK-8000-3E"\n')
    cfg.write_text(f'[mqtt]\ntelemetry = ["telemetry/#"]\n[fault]\nrules = ["{rules}"]\n')
    start_node(d, "--node", "n1", "--mqtt", broker.url, "--metrics", "", "--config", str(cfg))
    wait_for(lambda: mqtt_status(d)["connected"], 15, "connected")
    for n in range(3):
        body = {"resource": "dev:///dev/sdq", "data": {"n": n}}
        _pub(broker.port, "telemetry/disk/errors", json.dumps(body).encode())

    def errlog():
        return d.call("fm.dump", errlog=True, limit=100, **{"class": "ereport.telemetry.disk.errors"})["entries"]

    logged = wait_for(lambda: len(e := errlog()) == 3 and e, 15, "three ereports in the error log")
    assert all(x["resource"] == "dev:///dev/sdq" for x in logged)
    (case,) = wait_for(lambda: d.call("fm.faulty", all=False), 15, "a case")
    assert case["class"] == "fault.io.disk.degraded" and case["suspects"][0]["resource"] == "dev:///dev/sdq"
