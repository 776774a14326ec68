"""A real service killed by a signal again and again: one fault.svc.flapping case, retired, repaired.

Also both directions between SMF and FMA: ``fmadm repair`` clears the service (and
its dependents come back), ``svcadm clear`` repairs the case, and neither loops.
"""

from fault_helpers import cases, child_service, fault_config, fm, kill_running, rules_dir, wait_until

FLAP = "svc:/site/flap:default"
APP = "svc:/site/app:default"


def test_service_killed_by_signal_repeatedly_is_one_flapping_case(daemon):
    daemon.manifest("flap.toml", child_service("site/flap", "import time; time.sleep(100000)"))
    daemon.start()
    daemon.wait_state(FLAP, "online")
    for _ in range(3):
        kill_running(daemon, FLAP)
    (case,) = wait_until(lambda: cases(daemon), 15, what="a solved case")
    assert case["class"] == "fault.svc.flapping" and case["msgid"] == "SVC-8000-3Q"
    assert [s["resource"] for s in case["suspects"]] == [FLAP]
    # the retire agent marks it degraded (once it is back online), naming the case
    daemon.wait_state(FLAP, "degraded")
    out = daemon.cli("svcs", "-x", FLAP, check=True).stdout
    assert f"Case: {case['uuid']}" in out and "Retired by the fault manager: fault.svc.flapping" in out
    # two more kills: the restarter gives up (5 failures) and puts it in maintenance by itself
    kill_running(daemon, FLAP)
    kill_running(daemon, FLAP)
    daemon.wait_state(FLAP, "maintenance")
    wait_until(lambda: "defect.svc.maintenance" in cases(daemon)[0]["classes"], 15,
               what="the maintenance folded into the case")
    everything = cases(daemon, everything=True)
    assert [c["uuid"] for c in everything] == [case["uuid"]], everything
    one = everything[0]
    assert one["ereport_count"] >= 6
    assert one["affected"][0]["now"] == "faulted and taken out of service"
    # the restarter's own maintenance mark now names the case too
    out = daemon.cli("svcs", "-x", FLAP, check=True).stdout
    assert f"Case: {case['uuid']}" in out and "Restarting too quickly" in out
    text = fm(daemon, "fmadm", "faulty", check=True).stdout
    for want in (case["uuid"], "SVC-8000-3Q", "Major", "Fault class : fault.svc.flapping\n"
                 "              defect.svc.maintenance\n", f"Problem in  : {FLAP}",
                 "faulted and taken out of service", "Description : svc:/site/flap:default keeps failing"):
        assert want in text, (want, text)


def test_svcadm_clear_repairs_the_case_without_looping(daemon):
    daemon.manifest("flap.toml", child_service("site/flap", "import time; time.sleep(100000)"))
    daemon.start()
    daemon.wait_state(FLAP, "online")
    for _ in range(3):
        kill_running(daemon, FLAP)
    daemon.wait_state(FLAP, "degraded")
    (case,) = cases(daemon)
    daemon.cli("svcadm", "clear", FLAP, check=True)
    daemon.wait_state(FLAP, "online")
    wait_until(lambda: cases(daemon) == [], 10, what="the case to be closed")
    (closed,) = cases(daemon, everything=True)
    assert closed["uuid"] == case["uuid"] and closed["state"] == "resolved"
    assert closed["suspects"][0]["status"] == "repaired"
    events = [r["event"] for r in daemon.call("fm.dump", uuid=case["uuid"])["records"]]
    assert events.count("Repaired") == 1 and events.count("Resolved") == 1
    assert "svcadm clear" in closed["history"][-2]["text"]
    # no loop: the service stays online and no case reopens
    assert daemon.state(FLAP) == "online"
    assert [c["uuid"] for c in cases(daemon, everything=True)] == [case["uuid"]]


def test_fmadm_repair_clears_the_retire_action_and_dependents_come_back(daemon):
    rules = rules_dir(daemon, {"flap.toml": """
        [[rule]]
        name = "flap-to-maintenance"
        match = ["ereport.svc.exit.*"]
        resources = ["svc"]
        serd = { n = 1, t = "10m" }
        fault = "fault.svc.flapping"
        severity = "critical"
        msgid = "SVC-8000-3Q"
        response = "maintenance"
        """})
    cfg = fault_config(daemon, f"""
        [fault]
        builtin_rules = false
        rules = ["{rules}"]
        """)
    daemon.manifest("flap.toml", child_service("site/flap", "import time; time.sleep(100000)"))
    daemon.manifest("app.toml", """
        name = "site/app"
        duration = "child"
        [methods.start]
        exec = ["sleep", "100000"]
        [[dependencies]]
        name = "flap"
        grouping = "require_all"
        restart_on = "error"
        fmris = ["svc:/site/flap:default"]
        """)
    daemon.start("--config", cfg)
    daemon.wait_state(APP, "online")
    kill_running(daemon, FLAP)
    kill_running(daemon, FLAP)
    daemon.wait_state(FLAP, "maintenance")
    daemon.wait_state(APP, "offline")
    (case,) = cases(daemon)
    assert case["retired"] == {FLAP: "maintenance"}
    assert case["severity"] == "Critical"
    r = fm(daemon, "fmadm", "repair", case["uuid"], check=True)
    assert r.stdout == f"fmadm: recorded repair to {case['uuid']}\n"
    daemon.wait_state(FLAP, "online")
    daemon.wait_state(APP, "online")
    assert cases(daemon) == []
    (closed,) = cases(daemon, everything=True)
    assert closed["state"] == "resolved" and closed["retired"] == {}
    assert daemon.info(FLAP)["marks"] == {}
    # repairing again is refused: the case is closed
    again = fm(daemon, "fmadm", "repair", case["uuid"])
    assert again.returncode == 1 and again.stderr.startswith(f"fmadm: failed to record repair to {case['uuid']}: ")
    assert "already resolved" in again.stderr
    dump = fm(daemon, "fmdump", "-u", case["uuid"], check=True).stdout.splitlines()
    assert [line.split()[-1] for line in dump[1:]] == ["Diagnosed", "Isolated", "Repaired", "Resolved"]


def test_fmadm_repair_by_fmri_and_acquit(daemon):
    daemon.manifest("flap.toml", child_service("site/flap", "import time; time.sleep(100000)"))
    daemon.start()
    daemon.wait_state(FLAP, "online")
    for _ in range(3):
        kill_running(daemon, FLAP)
    daemon.wait_state(FLAP, "degraded")
    assert len(cases(daemon)) == 1
    r = fm(daemon, "fmadm", "acquit", "site/flap", check=True)
    assert r.stdout == "fmadm: recorded acquital of site/flap\n"  # fmadm's spelling
    daemon.wait_state(FLAP, "online")
    (closed,) = cases(daemon, everything=True)
    assert closed["suspects"][0]["status"] == "acquitted" and closed["state"] == "resolved"
    none = fm(daemon, "fmadm", "repair", "site/flap")
    assert none.returncode == 1 and "failed to record repair to site/flap: " in none.stderr
    assert "no open case names it" in none.stderr


def test_a_service_the_restarter_gives_up_on_by_itself_is_a_defect_case_that_svcadm_clear_repairs(daemon):
    flag = daemon.root / "fixed"
    daemon.manifest("bad.toml", f"""
        name = "site/bad"
        duration = "transient"
        [methods.start]
        exec = ["test", "-e", "{flag}"]
        """)
    daemon.start()
    bad = "svc:/site/bad:default"
    daemon.wait_state(bad, "maintenance", timeout=30)
    (case,) = wait_until(lambda: cases(daemon), 15, what="the defect case")
    assert case["class"] == "defect.svc.maintenance" and case["msgid"] == "SVC-8000-4H"
    assert case["suspects"][0]["resource"] == bad
    # the failures that led there are part of the evidence
    classes = [e["class"] for e in case["ereports"]]
    assert classes[-1] == "ereport.svc.maintenance" and len(classes) >= 2, classes
    out = fm(daemon, "fmdump", "-e", "-u", case["uuid"], check=True).stdout
    assert "ereport.svc.maintenance" in out
    wait_until(lambda: f"Case: {case['uuid']}" in daemon.cli("svcs", "-x", bad, check=True).stdout, 10)
    flag.touch()
    daemon.cli("svcadm", "clear", bad, check=True)
    daemon.wait_state(bad, "online")
    wait_until(lambda: cases(daemon) == [], 10)
    assert cases(daemon, everything=True)[0]["state"] == "resolved"
