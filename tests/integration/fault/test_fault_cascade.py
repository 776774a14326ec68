"""A database whose crash takes its three dependents down is one case naming the database."""

import os
import signal

from fault_helpers import cases, child_service, fm, free_port, kill_running, wait_until

DB = "svc:/site/db:default"
APPS = [f"svc:/site/app{i}:default" for i in (1, 2, 3)]


def _stack(daemon):
    port = free_port()
    # The database takes a second to come back (as a real one replays its log), so each application
    # sees it gone even when a loaded machine schedules them late; a restart in milliseconds could hide it.
    db = ("import socket, time\n"
          "time.sleep(1)\n"
          "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          f"s.bind(('127.0.0.1', {port})); s.listen(64)\n"
          "while True:\n    c, _ = s.accept(); c.close()\n")
    daemon.manifest("db.toml", child_service("site/db", db, extra=f"""
        [readiness]
        tcp = "127.0.0.1:{port}"
        """))
    # Each application needs the database: it exits with an error the moment it cannot reach it.
    app = ("import socket, sys, time\n"
           "while True:\n"
           f"    try:\n        socket.create_connection(('127.0.0.1', {port}), 1).close()\n"
           "    except OSError as e:\n        print('database unreachable:', e, flush=True); sys.exit(1)\n"
           "    time.sleep(0.05)\n")
    for i in (1, 2, 3):
        daemon.manifest(f"app{i}.toml", child_service(f"site/app{i}", app, deps=[DB]))
    daemon.start()
    for f in (DB, *APPS):
        daemon.wait_state(f, "online")


def test_database_crash_taking_three_dependents_down_is_one_case(daemon):
    _stack(daemon)
    (pid,) = daemon.pids(DB)
    os.kill(pid, signal.SIGKILL)

    def diagnosed():
        cs = cases(daemon)
        return cs if cs and len(cs[0]["impacted"]) == 3 else None

    (case,) = wait_until(diagnosed, 20, what="one case with three impacted services")
    assert case["class"] == "fault.svc.cascade" and case["msgid"] == "SVC-8000-5C"
    assert [(s["resource"], s["certainty"]) for s in case["suspects"]] == [(DB, 100)]
    assert sorted(case["impacted"]) == APPS
    assert case["severity"] == "Critical"
    convicting = {e["resource"] for e in case["ereports"]}
    assert convicting == {DB, *APPS}
    # each application really failed (the restarter saw it exit with an error) ...
    codes = daemon.call("fm.dump", errlog=True, **{"class": "ereport.svc.exit.code"})["entries"]
    assert {e["resource"] for e in codes} == set(APPS)
    # ... yet no application is a suspect of any case, open or solved
    for f in APPS:
        wait_until(lambda f=f: daemon.state(f) == "online", 15)
    everything = cases(daemon, everything=True)
    assert [c["uuid"] for c in everything if c["state"] == "solved"] == [case["uuid"]]
    assert not [c for c in everything if any(s["resource"] in APPS for s in c["suspects"])]
    text = fm(daemon, "fmadm", "faulty", check=True).stdout
    assert f"Problem in  : {DB}" in text
    affects = text.split("Affects     :")[1].split("Problem in")[0]
    assert all(f" {f}\n" in affects for f in (DB, *APPS)), affects
    assert "what depends on it failed after it: " in " ".join(text.split())
    assert "Dependents interrupted (3): " in " ".join(text.split())


def test_the_database_flapping_afterwards_folds_into_the_same_case(daemon):
    _stack(daemon)
    for _ in range(3):
        kill_running(daemon, DB)
    wait_until(lambda: cases(daemon) and "fault.svc.flapping" in cases(daemon)[0]["classes"], 20,
               what="the flapping diagnosis folded into the cascade case")
    solved = cases(daemon)
    assert len(solved) == 1 and solved[0]["classes"][:2] == ["fault.svc.cascade", "fault.svc.flapping"]
    # the flapping response (degrade) applies to the suspect, the database
    daemon.wait_state(DB, "degraded")
    assert solved[0]["uuid"] in daemon.cli("svcs", "-x", DB, check=True).stdout


def test_dependents_put_in_maintenance_by_a_sick_dependency_come_back_when_its_case_is_repaired(daemon):
    port = free_port()
    broken = daemon.root / "db-broken"
    # A database that keeps running but stops accepting connections while the file db-broken exists.
    db = ("import os, socket, time\n"
          f"while True:\n    if os.path.exists('{broken}'):\n        time.sleep(0.05); continue\n"
          "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          f"    s.bind(('127.0.0.1', {port})); s.listen(64); s.settimeout(0.05)\n"
          f"    while not os.path.exists('{broken}'):\n"
          "        try:\n            c, _ = s.accept(); c.close()\n        except OSError:\n            pass\n"
          "    s.close()\n")
    daemon.manifest("db.toml", child_service("site/db", db, extra=f"""
        [readiness]
        tcp = "127.0.0.1:{port}"
        [health]
        tcp = "127.0.0.1:{port}"
        interval = "300ms"
        timeout = "200ms"
        failures = 1
        action = "degrade"
        """))
    app = ("import socket, sys, time\n"
           "while True:\n"
           f"    try:\n        socket.create_connection(('127.0.0.1', {port}), 0.5).close()\n"
           "    except OSError:\n        sys.exit(1)\n"
           "    time.sleep(0.05)\n")
    for i in (1, 2, 3):
        daemon.manifest(f"app{i}.toml", child_service(f"site/app{i}", app, deps=[DB], extra="""
            [restart]
            limit = 3
            period = "60s"
            """))
    daemon.start()
    for f in (DB, *APPS):
        daemon.wait_state(f, "online")
    broken.touch()
    # the database still runs (its probe marks it degraded); the applications fail until the restarter gives up
    for f in APPS:
        daemon.wait_state(f, "maintenance", timeout=30)
    (case,) = wait_until(lambda: [c for c in cases(daemon) if len(c["impacted"]) == 3], 20)
    assert [s["resource"] for s in case["suspects"]] == [DB] and case["class"] == "fault.svc.cascade"
    for f in APPS:
        wait_until(lambda f=f: f"Case: {case['uuid']}" in daemon.cli("svcs", "-x", f, check=True).stdout, 10,
                   what=f"the maintenance of {f} to name the database's case")
        assert not any(s["resource"] == f for c in cases(daemon, everything=True) for s in c["suspects"])
    # the operator fixes the database and repairs its case: the applications come back by themselves
    broken.unlink()
    daemon.wait_state(DB, "online", timeout=20)
    fm(daemon, "fmadm", "repair", case["uuid"], check=True)
    for f in APPS:
        daemon.wait_state(f, "online", timeout=20)
    # the fault manager hears of the applications' return a moment after they are online (its bus lag, and under
    # load more): the repaired case leaves the list then, and no other opens
    wait_until(lambda: cases(daemon) == [], 10, what="the repaired case to leave fmadm faulty")
