"""The MQTT bridge against a real mosquitto: topics, retained state and cases, last will, status."""

from __future__ import annotations

import json

from export_helpers import SLEEP_MANIFEST, mqtt_status, start_node, wait_for

CASE = "0d6b7c1e-3a52-4c1b-9d0e-7f2b1c3d4e5f"


def _case_data(state: str = "open") -> dict:
    return {"uuid": CASE, "class": "fault.svc.flapping", "severity": "major", "msgid": "SVC-8000-3Q",
            "suspects": [{"fault": "fault.svc.flapping", "resource": "svc:/site/a:default", "certainty": 100}],
            "affected": ["svc:/site/a:default"], "state": state}


def test_states_arrive_on_event_and_retained_topics(svcmgrd, mosquitto, subscriber):
    broker = mosquitto()
    d = svcmgrd()
    d.manifest("a.toml", SLEEP_MANIFEST.format(name="site/a"))
    d.manifest("b.toml", SLEEP_MANIFEST.format(name="site/b"))
    sub = subscriber(broker.port, ["svcmgr/#"])
    start_node(d, "--node", "n1", "--mqtt", broker.url, "--metrics", "")
    d.wait_state("svc:/site/a:default", "online")
    d.wait_state("svc:/site/b:default", "online")

    state_a = "svcmgr/n1/state/site/a/default"
    sub.wait(lambda s: any(p and p["state"] == "online" for p in s.payloads(state_a)), what="a online retained")
    both = {"svc:/site/a:default", "svc:/site/b:default"}  # b's event may still be on its way when a's state is in
    sub.wait(lambda s: {e["resource"] for e in s.events("n1") if e["class"] == "svc.state.online"} >= both,
             what="a's and b's online events")
    online = [e for e in sub.events("n1") if e["class"] == "svc.state.online"]
    assert {e["resource"] for e in online} >= {"svc:/site/a:default", "svc:/site/b:default"}
    ev = next(e for e in online if e["resource"] == "svc:/site/a:default")
    assert set(ev) >= {"seq", "class", "time", "node", "resource", "data"}
    assert ev["node"] == "n1" and ev["data"]["state"] == "online"
    # the event topic is the class under the node
    topics = {t for t, _, _ in sub.snapshot()}
    assert "svcmgr/n1/svc/state/online" in topics
    assert json.loads(sub.latest()["svcmgr/n1/status"])["status"] == "online"

    d.cli("svcadm", "disable", "-s", "svc:/site/a:default", check=True)
    sub.wait(lambda s: (s.payloads(state_a) or [None])[-1] and s.payloads(state_a)[-1]["state"] == "disabled",
             what="a disabled retained")
    last = sub.payloads(state_a)[-1]
    assert last["fmri"] == "svc:/site/a:default" and last["previous"] == "online" and last["enabled"] is False
    # the stop was announced when it began, with its cause
    stopping = sub.wait(lambda s: [e for e in s.events("n1") if e["class"] == "svc.stopping"], what="svc.stopping")
    assert stopping[0]["resource"] == "svc:/site/a:default"
    assert stopping[0]["data"]["next_state"] == "disabled" and stopping[0]["data"]["cause"] == "other"
    # every event carries a per-node sequence number without gaps
    seqs = [e["seq"] for e in sub.events("n1")]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert mqtt_status(d)["connected"] is True


def test_late_subscriber_sees_retained_state_and_status(svcmgrd, mosquitto, subscriber):
    broker = mosquitto()
    d = svcmgrd()
    d.manifest("a.toml", SLEEP_MANIFEST.format(name="site/a"))
    start_node(d, "--node", "late", "--mqtt", broker.url, "--metrics", "")
    d.wait_state("svc:/site/a:default", "online")
    d.cli("svcadm", "disable", "-s", "svc:/site/a:default", check=True)

    def sent(_: object = None) -> bool:
        st = mqtt_status(d)
        return st["connected"] and st["outbox"]["depth"] == 0 and st["outbox"]["sent"] > 0

    wait_for(sent, 15, "the outbox to drain")
    late = subscriber(broker.port, ["svcmgr/late/state/#", "svcmgr/late/status"])
    # the broker sends each subscription's retained messages as it takes that subscription: wait for both
    late.wait(lambda s: {"svcmgr/late/state/site/a/default", "svcmgr/late/status"} <= s.latest().keys(),
              what="retained state and status")
    msgs = late.snapshot()
    assert all(retain for _, _, retain in msgs), "a late subscriber gets only retained messages"
    picture = json.loads(late.latest()["svcmgr/late/state/site/a/default"])
    assert picture["state"] == "disabled" and picture["node"] == "late"
    assert json.loads(late.latest()["svcmgr/late/status"])["status"] == "online"


def test_cases_retained_then_cleared_when_repaired(svcmgrd, mosquitto, subscriber):
    broker = mosquitto()
    d = svcmgrd()
    start_node(d, "--node", "n1", "--mqtt", broker.url, "--metrics", "")
    topic = f"svcmgr/n1/cases/{CASE}"
    d.call("test.emit", **{"class": "list.suspect", "resource": "", "data": _case_data()})
    sub = subscriber(broker.port, [topic])
    sub.wait(lambda s: s.payloads(topic), what="retained case")
    got = sub.payloads(topic)[-1]
    assert got["uuid"] == CASE and got["class"] == "fault.svc.flapping" and got["severity"] == "major"
    assert got["msgid"] == "SVC-8000-3Q" and got["affected"] == ["svc:/site/a:default"]
    assert got["node"] == "n1" and got["suspects"][0]["certainty"] == 100

    d.call("test.emit", **{"class": "list.updated", "resource": "", "data": _case_data("solved")})
    sub.wait(lambda s: s.payloads(topic)[-1] and s.payloads(topic)[-1]["state"] == "solved", what="update")

    d.call("test.emit", **{"class": "list.repaired", "resource": "", "data": _case_data("repaired")})
    sub.wait(lambda s: s.payloads(topic)[-1] is None, what="the case cleared (empty retained message)")
    late = subscriber(broker.port, ["svcmgr/n1/cases/#", "svcmgr/n1/status"])
    late.wait(lambda s: "svcmgr/n1/status" in s.latest(), what="status")
    assert topic not in late.latest(), "a repaired case is no longer retained"


def test_case_event_with_a_bad_uuid_is_not_retained(svcmgrd, mosquitto, subscriber):
    broker = mosquitto()
    d = svcmgrd()
    start_node(d, "--node", "n1", "--mqtt", broker.url, "--metrics", "")
    sub = subscriber(broker.port, ["svcmgr/n1/#"])
    d.call("test.emit", **{"class": "list.suspect", "resource": "", "data": {**_case_data(), "uuid": "a/b/#"}})
    sub.wait(lambda s: any(e["class"] == "list.suspect" for e in s.events("n1")), what="the event")
    assert not [t for t, _, _ in sub.snapshot() if "/cases/" in t]
    assert d.call("ping")["node"] == "n1"
    assert "without a valid case uuid" in d.log_text()


def test_last_will_marks_a_killed_node_offline(svcmgrd, mosquitto, subscriber):
    broker = mosquitto()
    d = svcmgrd()
    start_node(d, "--node", "n9", "--mqtt", broker.url, "--metrics", "", "--config",
               str(_keepalive_config(d)))
    sub = subscriber(broker.port, ["svcmgr/n9/status"])
    sub.wait(lambda s: s.payloads("svcmgr/n9/status") and s.payloads("svcmgr/n9/status")[-1]["status"] == "online",
             what="online")
    d.kill9()
    # the broker notices the dead connection (closed socket) and publishes the will
    sub.wait(lambda s: s.payloads("svcmgr/n9/status")[-1]["status"] == "offline", 30, what="will")


def test_clean_stop_says_offline(svcmgrd, mosquitto, subscriber):
    broker = mosquitto()
    d = svcmgrd()
    d.manifest("a.toml", SLEEP_MANIFEST.format(name="site/a"))
    start_node(d, "--node", "n8", "--mqtt", broker.url, "--metrics", "")
    d.wait_state("svc:/site/a:default", "online")
    sub = subscriber(broker.port, ["svcmgr/n8/#"])
    sub.wait(lambda s: "svcmgr/n8/status" in s.latest(), what="status")
    assert d.stop() == 0
    sub.wait(lambda s: s.payloads("svcmgr/n8/status")[-1]["status"] == "offline", what="offline")
    # the final state changes made it out before the goodbye
    final = json.loads(sub.latest()["svcmgr/n8/state/site/a/default"])
    assert final["state"] != "online"


def _keepalive_config(d):
    p = d.root / "node.toml"
    p.write_text('[mqtt]\nkeepalive = "5s"\n')
    return p


def test_daemon_stops_cleanly_while_the_broker_is_away(svcmgrd, mosquitto):
    """Regression: a session that failed just as the daemon was told to stop swallowed the stop
    (an asyncio.TaskGroup in Python 3.11 does), and the bridge went on reconnecting for ever."""
    broker = mosquitto()
    d = svcmgrd()
    start_node(d, "--node", "n7", "--mqtt", broker.url, "--metrics", "")
    wait_for(lambda: mqtt_status(d)["connected"], 15, "connected")
    d.call("test.emit", **{"class": "ereport.test.burst", "count": 20000})  # publishes in flight ...
    broker.stop()                                                          # ... when the broker goes
    assert d.stop() == 0, d.log_text()[-2000:]                             # ... and the daemon is told to stop
    d2 = svcmgrd()
    start_node(d2, "--node", "n6", "--mqtt", broker.url, "--metrics", "")
    assert d2.stop() == 0, d2.log_text()[-2000:]  # never connected at all


def test_deleted_instance_and_former_node_name_leave_no_retained_state(svcmgrd, mosquitto, subscriber):
    broker = mosquitto()
    d = svcmgrd()
    d.manifest("a.toml", SLEEP_MANIFEST.format(name="site/a"))
    d.manifest("b.toml", SLEEP_MANIFEST.format(name="site/b"))
    start_node(d, "--node", "old", "--mqtt", broker.url, "--metrics", "")
    d.wait_state("svc:/site/b:default", "online")
    wait_for(lambda: mqtt_status(d)["connected"] and mqtt_status(d)["outbox"]["depth"] == 0, 15, "sent")
    d.cli("svccfg", "delete", "site/b", check=True)
    wait_for(lambda: mqtt_status(d)["outbox"]["depth"] == 0, 15, "sent")
    late = subscriber(broker.port, ["svcmgr/#"])
    late.wait(lambda s: "svcmgr/old/state/site/a/default" in s.latest(), what="a")
    assert "svcmgr/old/state/site/b/default" not in late.latest(), "a deleted instance is cleared"
    late.close()

    # the same state folder comes back under another node name: the old name's topics go
    assert d.stop() == 0
    start_node(d, "--node", "new", "--mqtt", broker.url, "--metrics", "")
    wait_for(lambda: mqtt_status(d)["connected"] and mqtt_status(d)["outbox"]["depth"] == 0, 15, "sent")
    later = subscriber(broker.port, ["svcmgr/#"])
    later.wait(lambda s: "svcmgr/new/state/site/a/default" in s.latest(), what="the new name")
    assert not [t for t in later.latest() if t.startswith("svcmgr/old/")], later.latest().keys()
    assert "of former node names old" in d.log_text()
