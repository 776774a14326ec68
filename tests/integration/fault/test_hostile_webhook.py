"""Hostile: a local user posts to the Alertmanager webhook (docs/security.md, "webhook senders").

Finding 3 of issue 10: one unauthenticated POST could open a case on any service, and a
``resolved`` POST could close a real ``fault.svc.flapping`` case that ``fmadm repair``
refuses to the same user. The attacker (uid 65534) tries every way a local user or a
web page in a browser has; then even the credential's holder (Alertmanager) finds that
its ``resolved`` closes only what it opened.
"""

from __future__ import annotations

import json

from fault_helpers import (
    cases,
    child_service,
    errlog,
    free_port,
    kill_running,
    wait_until,
    webhook_config,
    webhook_secret,
)

FLAP = "svc:/site/flap:default"

_POSTS = r"""
import base64, http.client, json, sys
port = int(sys.argv[1])

def alert(status):
    return json.dumps({"version": "4", "status": status, "receiver": "svcmgr", "alerts": [
        {"status": status, "labels": {"alertname": "Pwned", "fmri": sys.argv[2]},
         "startsAt": "2025-01-01T00:00:00Z", "endsAt": "2025-01-01T00:01:00Z"}]})

tries = [
    ("no credential", alert("firing"), {"Content-Type": "application/json"}),
    ("no credential, resolved", alert("resolved"), {"Content-Type": "application/json"}),
    ("a guessed bearer", alert("resolved"), {"Content-Type": "application/json", "Authorization": "Bearer guess"}),
    ("basic, guessed", alert("resolved"),
     {"Content-Type": "application/json", "Authorization": "Basic " + base64.b64encode(b"admin:admin").decode()}),
    ("a browser's form", alert("resolved"),
     {"Content-Type": "text/plain", "Origin": "http://evil.example", "Host": "evil.example"}),
]
out = {}
for name, body, headers in tries:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/", body=body, headers=headers)
    out[name] = c.getresponse().status
    c.close()
print(json.dumps(out))
"""


def _post(port: int, body: bytes, secret: str) -> int:
    import http.client

    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/", body=body, headers={"Content-Type": "application/json", "Authorization": f"Bearer {secret}"})
    status = c.getresponse().status
    c.close()
    return status


def _alert(status: str, fmri: str) -> bytes:
    return json.dumps({"version": "4", "status": status, "alerts": [
        {"status": status, "labels": {"alertname": "DbDown", "fmri": fmri}}]}).encode()


def test_finding_3_only_alertmanager_posts_and_its_resolved_closes_only_its_own(daemon, attacker):
    daemon.manifest("flap.toml", child_service("site/flap", "import time; time.sleep(100000)"))
    port = free_port()
    daemon.start("--config", webhook_config(daemon, port))
    for _ in range(3):
        kill_running(daemon, FLAP)
    (case,) = wait_until(lambda: cases(daemon), 15, what="the flapping case")
    assert case["class"] == "fault.svc.flapping"
    wait_until(lambda: daemon.call("fm.stat")["webhook"], 10)

    r = attacker.python(_POSTS, str(port), FLAP)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got == {"no credential": 401, "no credential, resolved": 401, "a guessed bearer": 401,
                   "basic, guessed": 401, "a browser's form": 403}, got
    assert errlog(daemon, "ereport.prometheus.*") == []
    (still,) = cases(daemon)
    assert still["uuid"] == case["uuid"] and still["state"] == "solved"
    st = daemon.call("fm.stat")["sources"]["alertmanager"]
    assert st["webhook_unauthorized"] == 4 and st["webhook_alerts"] == 0

    # The credential's holder: its alert on the service folds into the case; its "resolved" does not close it.
    secret = webhook_secret(daemon).read_text().strip()
    assert _post(port, _alert("firing", FLAP), secret) == 200
    assert _post(port, _alert("resolved", FLAP), secret) == 200
    wait_until(lambda: len(errlog(daemon, "ereport.prometheus.DbDown")) == 2, 10)
    wait_until(lambda: any("the case stays open" in h["text"] for h in cases(daemon)[0]["history"]), 10)
    (still,) = cases(daemon)
    assert still["uuid"] == case["uuid"] and still["state"] == "solved"
    # A body nested beyond reason is a clear 400, not a crash of the receiver.
    deep = b'{"version": "4", "alerts": ' + b"[" * 200000 + b"]" * 200000 + b"}"
    assert _post(port, deep, secret) == 400
    assert _post(port, _alert("firing", "alert:///After"), secret) == 200
