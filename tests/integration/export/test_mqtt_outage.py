"""Nothing is lost while the broker is away: the outbox keeps every event, in order, across a broker
restart and across a daemon restart."""

from __future__ import annotations

from export_helpers import SLEEP_MANIFEST, mqtt_status, start_node, wait_for

SERVICES = ["svc:/site/a:default", "svc:/site/b:default", "svc:/site/c:default"]


def _flip(d, times: int) -> list[tuple[str, str]]:
    """Disable and enable each service ``times`` times; return the (fmri, state) each action ends in."""
    done = []
    for _ in range(times):
        for f in SERVICES:
            d.cli("svcadm", "disable", "-s", f, check=True)
            done.append((f, "disabled"))
            d.cli("svcadm", "enable", "-s", f, check=True)
            done.append((f, "online"))
    return done


def _unique_in_order(events: list[dict]) -> list[dict]:
    """QoS 1 may deliver a message twice; keep the first copy of each sequence number."""
    seen: set[int] = set()
    out = []
    for e in events:
        if e["seq"] not in seen:
            seen.add(e["seq"])
            out.append(e)
    return out


def _check_stream(events: list[dict], expected: list[tuple[str, str]]) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs), "events arrived out of order"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"a gap in the event stream: {seqs}"
    # each service went through the states the operator asked for, in that order
    for f in SERVICES:
        states = [e["data"]["state"] for e in events if e["resource"] == f and e["class"].startswith("svc.state.")]
        wanted = [s for g, s in expected if g == f]
        it = iter(states)
        assert all(s in it for s in wanted), f"{f}: states {states} do not contain {wanted} in order"


def _reconnected(classes: list[str]) -> bool:
    return "mqtt.connection.down" in classes and "mqtt.connection.up" in classes[classes.index("mqtt.connection.down"):]


def test_broker_restart_loses_no_event_and_keeps_order(svcmgrd, mosquitto, subscriber):
    broker = mosquitto()
    d = svcmgrd()
    for f in SERVICES:
        name = f[5:].split(":")[0]
        d.manifest(f"{name.replace('/', '-')}.toml", SLEEP_MANIFEST.format(name=name))
    cfg = d.root / "node.toml"
    cfg.write_text('[mqtt]\nreconnect_min = "100ms"\nreconnect_max = "1s"\n')
    # a persistent session: the broker keeps our subscription and queues for us across its restart
    sub = subscriber(broker.port, ["svcmgr/n1/#"], client_id="outage-watcher", persistent=True)
    start_node(d, "--node", "n1", "--mqtt", broker.url, "--metrics", "", "--config", str(cfg))
    for f in SERVICES:
        d.wait_state(f, "online")
    wait_for(lambda: mqtt_status(d)["outbox"]["depth"] == 0 and mqtt_status(d)["connected"], 15, "sent")

    broker.stop()
    wait_for(lambda: not mqtt_status(d)["connected"], 15, "the bridge to see the broker gone")
    expected = _flip(d, 3)
    st = mqtt_status(d)
    assert st["outbox"]["depth"] >= len(expected), st  # each action: an event and a retained state at least
    last_seq = st["events"]
    assert d.call("ping")

    broker.start()
    wait_for(lambda: mqtt_status(d)["connected"] and mqtt_status(d)["outbox"]["depth"] == 0, 30, "outbox drained")
    sub.wait(lambda s: any(e["seq"] == last_seq for e in s.events("n1")), 30, what=f"event {last_seq}")
    # the reconnection is announced once the bridge is back: it may come after the delayed events
    sub.wait(lambda s: _reconnected([e["class"] for e in _unique_in_order(s.events("n1"))]), 30,
             what="mqtt.connection.up after the loss")
    events = _unique_in_order(sub.events("n1"))
    _check_stream(events, expected)
    classes = [e["class"] for e in events]
    # the outage itself is on the record, between the events it delayed
    assert "mqtt.connection.down" in classes and "mqtt.connection.up" in classes
    down = classes.index("mqtt.connection.down")
    assert "mqtt.connection.up" in classes[down:], "the reconnection follows the loss"
    assert classes[down + 1:].count("svc.state.disabled") == 3 * len(SERVICES)
    # the retained picture is current again after the broker restart
    latest = sub.latest()
    for f in SERVICES:
        name = f[5:].split(":")[0]
        assert b'"state":"online"' in latest[f"svcmgr/n1/state/{name}/default"]
    assert mqtt_status(d)["outbox"]["dropped"] == 0


def test_outbox_survives_a_daemon_restart(svcmgrd, mosquitto, subscriber):
    broker = mosquitto()
    d = svcmgrd()
    d.manifest("a.toml", SLEEP_MANIFEST.format(name="site/a"))
    cfg = d.root / "node.toml"
    cfg.write_text('[mqtt]\nreconnect_min = "100ms"\nreconnect_max = "1s"\n')
    sub = subscriber(broker.port, ["svcmgr/n1/#"], client_id="restart-watcher", persistent=True)
    start_node(d, "--node", "n1", "--mqtt", broker.url, "--metrics", "", "--config", str(cfg))
    d.wait_state("svc:/site/a:default", "online")
    wait_for(lambda: mqtt_status(d)["outbox"]["depth"] == 0 and mqtt_status(d)["connected"], 15, "sent")
    broker.stop()
    wait_for(lambda: not mqtt_status(d)["connected"], 15, "disconnected")
    d.cli("svcadm", "disable", "-s", "svc:/site/a:default", check=True)
    before = mqtt_status(d)
    assert before["outbox"]["depth"] > 0
    assert d.stop() == 0  # the daemon stops while the broker is away: the outbox stays in the repository

    broker.start()
    start_node(d, "--node", "n1", "--mqtt", broker.url, "--metrics", "", "--config", str(cfg))
    wait_for(lambda: mqtt_status(d)["connected"] and mqtt_status(d)["outbox"]["depth"] == 0, 30, "drained")
    sub.wait(lambda s: any(e["class"] == "svc.state.disabled" and e["resource"] == "svc:/site/a:default"
                           for e in s.events("n1")), 30, what="the disable made while the broker was away")
    events = _unique_in_order(sub.events("n1"))
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert mqtt_status(d)["events"] >= before["events"]


def test_outbox_bound_drops_the_oldest_and_counts_them(svcmgrd, mosquitto, subscriber):
    broker = mosquitto()
    d = svcmgrd()
    cfg = d.root / "node.toml"
    cfg.write_text('[mqtt]\noutbox_limit = 40\nreconnect_min = "100ms"\nreconnect_max = "1s"\n')
    sub = subscriber(broker.port, ["svcmgr/n1/#"], client_id="bound-watcher", persistent=True)
    start_node(d, "--node", "n1", "--mqtt", broker.url, "--metrics", "", "--config", str(cfg))
    wait_for(lambda: mqtt_status(d)["connected"] and mqtt_status(d)["outbox"]["depth"] == 0, 15, "sent")
    first = mqtt_status(d)["events"] + 1
    broker.stop()
    wait_for(lambda: not mqtt_status(d)["connected"], 15, "disconnected")
    d.call("test.emit", **{"class": "ereport.test.flood", "count": 100})
    st = mqtt_status(d)
    assert st["outbox"]["depth"] == 40
    dropped = st["outbox"]["dropped"]
    assert dropped >= 100 + 1 - 40  # 100 events and the connection.down event, into 40 places
    assert d.call("ping")

    broker.start()
    wait_for(lambda: mqtt_status(d)["connected"] and mqtt_status(d)["outbox"]["depth"] == 0, 30, "drained")
    sub.wait(lambda s: any(e["class"] == "mqtt.connection.up" and e["seq"] > first for e in s.events("n1")), 30,
             what="the reconnection")
    flood = [e for e in _unique_in_order(sub.events("n1")) if e["class"] == "ereport.test.flood"]
    # the newest 40 - 1 flood events survived (the connection.up event took a place), in order, without gaps
    ns = [e["data"]["n"] for e in flood]
    assert ns == list(range(100 - len(ns), 100)) and 30 <= len(ns) < 40, ns
    seqs = [e["seq"] for e in flood]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert seqs[0] - first == 100 + 1 - len(ns), "the gap in seq is what was dropped"
