"""Hostile: anyone who can publish to the broker (docs/security.md, "broker publishers").

Finding 4 of issue 10: a telemetry message claiming ``ereport.svc.exit.signal`` for a
service, three times, made the fault manager retire it ("Retired by the fault
manager"). The attacker (uid 65534) speaks MQTT with a few lines of standard library on
an anonymous broker, as any local user could; telemetry may now only report
``ereport.telemetry.*``, so nothing it says is the restarter's word.
"""

from __future__ import annotations

import json

from export_helpers import SLEEP_MANIFEST, mqtt_status, start_node, wait_for

WEB = "svc:/site/web:default"

#: MQTT 3.1.1: CONNECT, PUBLISH at QoS 0 for each (topic, payload), DISCONNECT.
_PUBLISH = r"""
import json, socket, struct, sys

def frame(kind, body):
    n, size = len(body), b""
    while True:
        byte, n = n % 128, n // 128
        size += bytes([byte | (0x80 if n else 0)])
        if not n:
            return bytes([kind]) + size + body

def text(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b

s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(frame(0x10, text("MQTT") + bytes([4, 2]) + struct.pack("!H", 60) + text("intruder")))
ack = s.recv(4)
assert ack[:2] == b"\x20\x02" and ack[3] == 0, ack
for topic, payload in json.loads(sys.argv[2]):
    s.sendall(frame(0x30, text(topic) + payload.encode()))
s.sendall(b"\xe0\x00")
s.close()
"""


def test_finding_4_a_publisher_cannot_speak_for_the_restarter(svcmgrd, mosquitto, attacker):
    broker = mosquitto()
    d = svcmgrd()
    d.manifest("web.toml", SLEEP_MANIFEST.format(name="site/web"))
    cfg = d.root / "node.toml"
    cfg.write_text('[mqtt]\ntelemetry = ["telemetry/#"]\n[fault]\ncorrelation_skew = "0s"\n')
    start_node(d, "--node", "n1", "--mqtt", broker.url, "--metrics", "", "--config", str(cfg))
    d.wait_state(WEB, "online")
    wait_for(lambda: mqtt_status(d)["connected"], 15, "the bridge to connect")
    pid = d.pids(WEB)[0]
    forged = [("telemetry/x", json.dumps({"class": cls, "resource": WEB, "data": {"pid": pid, "signal": 9}}))
              for cls in ("ereport.svc.exit.signal", "ereport.svc.exit.signal", "ereport.svc.exit.signal",
                          "ereport.svc.maintenance", "ereport.prometheus.Down", "ereport.kernel.oom")]
    forged.append(("svc/exit/signal", json.dumps({"resource": WEB})))  # a topic named like the class
    r = attacker.python(_PUBLISH, str(broker.port), json.dumps(forged))
    assert r.returncode == 0, r.stderr
    st = wait_for(lambda: (s := mqtt_status(d)).get("telemetry_rejected", 0) >= 6 and s, 15, "the refusals")
    assert st["telemetry_rejected"] == 6 and st.get("telemetry_received", 0) == 0, st
    assert d.call("fm.faulty") == []
    entries = d.call("fm.dump", errlog=True, limit=100)["entries"]
    assert not [e for e in entries if e["source"] == "mqtt"], entries
    assert d.state(WEB) == "online" and d.pids(WEB) == [pid]
    assert "reports only ereport.telemetry.*" in d.log_text()


def test_a_retained_state_or_case_is_text_in_the_fleet_listings(svcmgrd, mosquitto, attacker):
    """What any publisher retains under ``svcmgr/NODE/...`` is another node's picture for ``svcs --fleet`` and
    ``fmadm faulty --fleet``: its escape sequences are shown, never sent to the operator's terminal (a window
    title set, the screen cleared, a line of the listing faked)."""
    broker = mosquitto()
    d = svcmgrd()
    d.manifest("web.toml", SLEEP_MANIFEST.format(name="site/web"))
    start_node(d, "--node", "n1", "--mqtt", broker.url, "--metrics", "")
    d.wait_state(WEB, "online")
    wait_for(lambda: mqtt_status(d)["connected"], 15, "the bridge to connect")
    esc = "\x1b]0;owned\x07\x1b[2J"
    forged = [("svcmgr/evil/state/site/web/default", json.dumps({"fmri": WEB, "state": f"online{esc}"})),
              ("svcmgr/evil/cases/11111111-2222-4333-8444-555555555555",
               json.dumps({"uuid": "11111111-2222-4333-8444-555555555555", "class": f"fault.x{esc}",
                           "msgid": f"X{esc}", "severity": "major", "state": "solved", "affected": [WEB]}))]
    r = attacker.python(_PUBLISH.replace("frame(0x30,", "frame(0x31,"), str(broker.port), json.dumps(forged))
    assert r.returncode == 0, r.stderr
    for argv in (("svcs", "--fleet", "--mqtt", broker.url),
                 ("fault.cli.fmadm", "faulty", "--fleet", "--mqtt", broker.url)):
        out = d.cli(*argv, check=True).stdout
        assert "evil" in out and "\x1b" not in out and "\x07" not in out, (argv, out)
        assert r"\x1b]0;owned\x07\x1b[2J" in out, (argv, out)
