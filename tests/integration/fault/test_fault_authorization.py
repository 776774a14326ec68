"""Reading the fault manager is open to everyone; closing a case needs root or the service's authorization.

The requests come from processes running as other users (``nobody``, ``daemon``): the
daemon learns who asks from the socket (SO_PEERCRED), not from anything they say.
"""

import os

import pytest

from fault_helpers import call_as, cases, child_service, kill_running, wait_until

FLAP = "svc:/site/flap:default"


@pytest.fixture
def flapped(daemon):
    if os.geteuid() != 0:
        pytest.skip("needs root to ask as other users")
    daemon.manifest("flap.toml", child_service("site/flap", "import time; time.sleep(100000)", extra="""
        [authorizations.action]
        users = ["daemon"]
        """))
    daemon.start()
    for _ in range(3):
        kill_running(daemon, FLAP)
    (case,) = wait_until(lambda: cases(daemon), 15)
    return case


def test_anyone_reads_but_only_authorized_users_repair(daemon, flapped):
    r = call_as(daemon, "nobody", "fm.faulty")
    assert r["ok"] and [c["uuid"] for c in r["result"]] == [flapped["uuid"]]
    r = call_as(daemon, "nobody", "fm.dump", errlog=True)
    assert r["ok"] and len([e for e in r["result"]["entries"] if e["class"] == "ereport.svc.exit.signal"]) == 3
    assert call_as(daemon, "nobody", "fm.stat")["ok"]
    r = call_as(daemon, "nobody", "fm.verdict", target=flapped["uuid"], verdict="repair")
    assert not r["ok"] and r["code"] == 1
    assert "permission denied: uid 65534 (nobody) may not repair svc:/site/flap:default" in r["error"]
    r = call_as(daemon, "nobody", "fm.inject", ereports=[{"class": "ereport.x.y"}])
    assert not r["ok"] and "may not inject ereports" in r["error"]
    r = call_as(daemon, "daemon", "fm.inject", ereports=[{"class": "ereport.x.y"}])
    assert not r["ok"], "a service's action grant does not allow injecting"
    assert cases(daemon)[0]["state"] == "solved"
    # the user the service's manifest authorizes may close its case
    r = call_as(daemon, "daemon", "fm.verdict", target=flapped["uuid"], verdict="repair")
    assert r["ok"], r
    wait_until(lambda: cases(daemon) == [], 10)
    daemon.wait_state(FLAP, "online")
