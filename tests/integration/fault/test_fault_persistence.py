"""Cases, the error log and SERD evidence survive kill -9 of the daemon."""


from fault_helpers import cases, child_service, errlog, fm, kill_running, wait_until

FLAP = "svc:/site/flap:default"


def test_cases_survive_kill_9_and_restart(daemon):
    daemon.manifest("flap.toml", child_service("site/flap", "import time; time.sleep(100000)"))
    daemon.start()
    for _ in range(3):
        kill_running(daemon, FLAP)
    (case,) = wait_until(lambda: cases(daemon), 15)
    daemon.wait_state(FLAP, "degraded")
    # SERD evidence in progress on a disk: 2 of the 5 errors the shipped rule needs
    fm(daemon, "fminject", "-n", "2", "-r", "dev:///dev/sdk", "ereport.io.disk.error", check=True)
    wait_until(lambda: len(errlog(daemon, "ereport.io.disk.error")) == 2, 10)
    wait_until(lambda: daemon.call("fm.stat", engines=True)["engines"], 10)

    def saved():
        st = daemon.call("fm.stat")
        return st["diagnosis"]["unsaved"] == 0 and st["errlog"]["pending"] == 0

    wait_until(saved, 10, what="the fault manager to write what it holds")
    before = len(errlog(daemon))
    daemon.kill9()
    daemon.start()
    again = cases(daemon)
    assert [c["uuid"] for c in again] == [case["uuid"]]
    assert again[0]["state"] == "solved" and again[0]["class"] == "fault.svc.flapping"
    assert len(errlog(daemon)) >= before
    assert f"Case: {case['uuid']}" in daemon.cli("svcs", "-x", FLAP, check=True).stdout
    # the disk's engine kept its two errors: three more make five
    fm(daemon, "fminject", "-n", "3", "-r", "dev:///dev/sdk", "ereport.io.disk.error", check=True)
    disk = wait_until(lambda: [c for c in cases(daemon) if c["class"] == "fault.io.disk.degraded"], 10)
    assert disk[0]["ereport_count"] == 5
    # and the case repairs as usual after the restart
    fm(daemon, "fmadm", "repair", case["uuid"], check=True)
    daemon.wait_state(FLAP, "online")


def test_open_cases_are_announced_again_after_a_restart(daemon):
    """Metrics (and the MQTT bridge, and the VRRP agent) learn a case opened before the restart."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    daemon.manifest("flap.toml", child_service("site/flap", "import time; time.sleep(100000)"))
    daemon.start("--metrics", f"127.0.0.1:{port}")
    for _ in range(3):
        kill_running(daemon, FLAP)
    wait_until(lambda: cases(daemon), 15)
    wait_until(lambda: daemon.call("fm.stat")["diagnosis"]["unsaved"] == 0, 10)
    daemon.kill9()
    daemon.start("--metrics", f"127.0.0.1:{port}")

    def scrape():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return r.read().decode()

    line = wait_until(lambda: [x for x in scrape().splitlines()
                               if x.startswith('svcmgr_fault_cases_open{class="fault.svc.flapping"')], 10)
    assert line[0].endswith(" 1.0")
