"""A line of a service's log that a log pattern matches is an ereport's payload and a case's detail: the attacker
(uid 65534, docs/security.md) reads neither without the service's log right, and reads both with it. So is a line
of the kernel log (an OOM kill, a disk's I/O error): the attacker reads neither while the kernel denies it its log
(kernel.dmesg_restrict), but for the OOM kill of a process of a service that grants it log.

The attacker runs fmdump and fmadm on the system interpreter, and asks the socket itself (``fm.dump``,
``fm.faulty``), for the error log, the fault log, the diagnosis messages and the cases.
"""

from __future__ import annotations

import json
import time

import pytest

from fault_helpers import cases, child_service, errlog, fault_config, fm, rules_dir, wait_until

SECRET = "hunter2-7f3a9c"  # printed by the service nobody is granted
SHARED = "shared-51be02"  # printed by the service that grants the attacker [authorizations.read]
VAULT = "svc:/site/vault:default"
OPEN = "svc:/site/open:default"


def _service(name: str, token: str, grant: str = "") -> str:
    script = f"import time\nprint('ERROR login failed, token={token}', flush=True)\ntime.sleep(100000)\n"
    return child_service(name, script, extra=f"""
        [[log.patterns]]
        match = "ERROR login failed"
        class = "ereport.app.login.failed"
        {grant}
        """)


def _start(daemon) -> list[dict]:
    kb = daemon.root / "kb"
    kb.mkdir()
    (kb / "SITE.toml").write_text("\n".join([
        "[SITE-8000-2L]", 'title = "A login failed"', 'description = "{suspect} logged: {detail}"',
        'response = "None."', 'impact = "A client was refused."', 'action = "Check {suspect}."', ""]))
    rules = rules_dir(daemon, {"site.toml": 'rule = [{name = "app-login", match = ["ereport.app.login.failed"], '
                                            'resources = ["svc"], fault = "fault.app.login", severity = "minor", '
                                            'msgid = "SITE-8000-2L"}]\n'})
    cfg = fault_config(daemon, f'[fault]\nrules = ["{rules}"]\nknowledge = ["{kb}"]\n')
    daemon.manifest("vault.toml", _service("site/vault", SECRET))
    daemon.manifest("open.toml", _service("site/open", SHARED, '[authorizations.read]\nusers = ["65534"]'))
    daemon.start("--config", cfg)
    found = wait_until(lambda: len(got := cases(daemon)) == 2 and got, 20, what="a case for each service")
    assert all(SECRET in json.dumps(c) or SHARED in json.dumps(c) for c in found)  # root reads both
    return found


def test_finding_10_log_pattern_lines_only_to_the_services_log_right(daemon, attacker):
    found = _start(daemon)
    vault = next(c for c in found if c["suspects"][0]["resource"] == VAULT)
    shown = {
        "fmdump -eV": attacker.cli(daemon.root, "fmdump", "-eV"),
        "fmdump -e --json": attacker.cli(daemon.root, "fmdump", "-e", "--json"),
        "fmdump -eV -u": attacker.cli(daemon.root, "fmdump", "-eV", "-u", vault["uuid"]),
        "fmdump -m": attacker.cli(daemon.root, "fmdump", "-m"),
        "fmdump -V --json": attacker.cli(daemon.root, "fmdump", "-V", "--json"),
        "fmadm faulty": attacker.cli(daemon.root, "fmadm", "faulty"),
        "fmadm faulty --json": attacker.cli(daemon.root, "fmadm", "faulty", "--json"),
    }
    for what, r in shown.items():
        assert r.returncode == 0, (what, r.stderr)
        assert SECRET not in r.stdout + r.stderr, (what, r.stdout)
        assert SHARED in r.stdout or what.endswith("-u"), (what, r.stdout)  # granted: read as before
        assert r.stderr.count("withheld") == 1 and "[authorizations.read]" in r.stderr, (what, r.stderr)
    assert "fmdump: 1 event's payload is withheld" in shown["fmdump -eV"].stderr
    assert "fmadm: 1 case shown with its detail and history withheld" in shown["fmadm faulty"].stderr
    assert "ereport.app.login.failed" in shown["fmdump -eV -u"].stdout  # the record is there, its payload not
    assert f"{VAULT} logged: (withheld)" in shown["fmdump -m"].stdout
    raw = [attacker.call(daemon.root, "fm.dump", errlog=True), attacker.call(daemon.root, "fm.dump", xrefs=True),
           attacker.call(daemon.root, "fm.faulty", all=True)]
    assert all(r["ok"] and SECRET not in json.dumps(r) and SHARED in json.dumps(r) for r in raw), raw
    # root reads everything, and is told nothing is withheld
    for args in (("-eV",), ("-m",)):
        r = fm(daemon, "fmdump", *args)
        assert SECRET in r.stdout and "withheld" not in r.stderr, r
    r = fm(daemon, "fmadm", "faulty")
    assert SECRET in r.stdout and "withheld" not in r.stderr, r


def test_finding_11_a_class_glob_cannot_hold_the_event_loop(daemon, attacker):
    """fnmatch makes a glob a regular expression in time quadratic in its unclosed brackets: one ``fm.dump`` of
    ``class`` 100,000 ``[`` held the event loop (every service's restarts, SIGTERM) for minutes."""
    _start(daemon)
    for req in ({"class": "[" * 100_000}, {"class": "[" * 100_000, "errlog": True},
                {"class": ["[" * 200 + str(i) for i in range(1000)]}):
        t = time.monotonic()
        r = attacker.call(daemon.root, "fm.dump", **req)
        assert time.monotonic() - t < 5 and not r["ok"] and r["code"] == 2, r
        assert "class: " in r["error"] and "characters" in r["error"], r
    r = attacker.call(daemon.root, "fm.dump", **{"class": "fault.app.*"})
    assert r["ok"] and len(r["result"]["records"]) == 2  # a glob of a class's length still selects
    # 1,000 patterns, as many as a request may hold: ORed one by one they were an expression deeper than SQLite
    # takes (an internal error), and fnmatch of each pattern for each record held the loop a minute on 100,000
    many = [f"ereport.x{i}" for i in range(500)] + [f"e[x]{i}*" for i in range(498)]
    r = attacker.call(daemon.root, "fm.dump", **{"class": [*many, "fault.app.*", "ereport.app.*"]})
    assert r["ok"] and len(r["result"]["records"]) == 2, r
    r = attacker.call(daemon.root, "fm.dump", errlog=True, **{"class": [*many, "fault.app.*", "ereport.app.*"]})
    assert r["ok"] and r["result"]["entries"] and {e["class"] for e in r["result"]["entries"]} <= {
        "ereport.app.login.failed"}, r
    # a case named 1,000 times is read once: its ereports were read, and given, once for each
    uuid = attacker.call(daemon.root, "fm.faulty")["result"][0]["uuid"]
    once = attacker.call(daemon.root, "fm.dump", errlog=True, uuid=uuid)["result"]["entries"]
    r = attacker.call(daemon.root, "fm.dump", errlog=True, uuids=[uuid] * 999, uuid=uuid)
    assert once and r["ok"] and r["result"]["entries"] == once, r
    r = fm(daemon, "fmdump", "-c", "[" * 300)
    assert r.returncode == 2 and "fmdump: class: " in r.stderr and "more than 256 characters" in r.stderr, r


def test_finding_12_a_user_other_than_root_gets_at_most_its_share_of_the_error_log(daemon, attacker):
    """A reply of the whole error log (100,000 entries) was built and encoded on the event loop, every restart
    waiting behind it, as often as any user asked: another user than root gets at most 10,000 records a reply,
    and fmdump says how to reach older ones."""
    _start(daemon)
    for k in range(2):  # 10,000 a request at most
        daemon.call("fm.inject", ereports=[{"class": "ereport.app.many", "resource": OPEN, "payload": {"i": i}}
                                           for i in range(k * 5001, (k + 1) * 5001)])
    wait_until(lambda: len(errlog(daemon, "ereport.app.many")) == 10_002, 20, what="the ereports in the error log")
    r = attacker.call(daemon.root, "fm.dump", errlog=True, limit=10**30, **{"class": "ereport.app.many"})
    got = r["result"]
    assert r["ok"] and (len(got["entries"]), got["more"], got["limit"]) == (10_000, True, 10_000), got["limit"]
    assert [e["payload"]["i"] for e in got["entries"]] == list(range(2, 10_002))  # the newest
    out = attacker.cli(daemon.root, "fmdump", "-e", "-c", "ereport.app.many", "--last", "50000")
    assert out.returncode == 0 and "at most 10000 a request for a user other than root" in out.stderr, out.stderr
    r = daemon.call("fm.dump", errlog=True, limit=50_000, **{"class": "ereport.app.many"})
    assert len(r["entries"]) == 10_002 and not r["more"]  # root's own


# ---------------------------------------------------------------- the kernel log (kernel.dmesg_restrict)
HOG = "svc:/site/hog:default"  # grants the attacker [authorizations.read]: its own OOM kills are the attacker's
KEPT = "svc:/site/kept:default"  # grants nobody
KMSG_SECRET = {KEPT: "oom-kept-3e9d1a", HOG: "oom-hog-b75c40", "stray": "oom-stray-c0ffee"}  # memory cgroups
SECTOR = 918273640  # the disk's errors are at sectors from here: its digits are the disk's secret


def _oom(pid: int, memcg: str) -> str:
    return (f"[ 9.000000] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
            f"oom_memcg=/{memcg},task_memcg=/{memcg},task=python3,pid={pid},uid=0\n"
            f"[ 9.000001] Memory cgroup out of memory: Killed process {pid} (python3) total-vm:9000kB, "
            "anon-rss:8000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0\n")


def _kernel_log_cases(daemon) -> list[dict]:
    """A daemon following a kernel log file, and four cases of the kernel log: OOM kills of a process of each
    service and of a process no service owns, and a disk's I/O errors."""
    kern = daemon.root / "kern.log"
    kern.write_text("")
    sleeper = "import time\ntime.sleep(100000)\n"
    daemon.manifest("kept.toml", child_service("site/kept", sleeper))
    daemon.manifest("hog.toml", child_service("site/hog", sleeper, extra='[authorizations.read]\nusers = ["65534"]'))
    daemon.start("--config", fault_config(daemon, f'[fault]\nkmsg = "{kern}"\n'))
    wait_until(lambda: daemon.call("fm.stat")["kmsg"] == str(kern), 10)
    lines = [_oom(daemon.wait_state(f, "online") and daemon.pids(f)[0], KMSG_SECRET[f]) for f in (KEPT, HOG)]
    lines.append(_oom(3999999, KMSG_SECRET["stray"]))  # a pid no service had: sw:///python3
    lines.extend(f"[ 9.{i:06d}] blk_update_request: I/O error, dev sdq1, sector {SECTOR + i} op 0x1:(WRITE) "
                 "flags 0x800 phys_seg 1 prio class 0\n" for i in range(5))  # five: the disk-errors rule fires
    with kern.open("a") as f:
        f.write("".join(lines))
    found = wait_until(lambda: len(got := cases(daemon)) == 4 and got, 20, what="the four kernel log cases")
    assert {c["msgid"] for c in found} == {"SVC-8000-7T", "KERN-8000-2A", "DISK-8000-3E"}
    return found


def test_finding_11_the_kernel_log_only_to_whom_the_kernel_gives_it(daemon, attacker):
    found = _kernel_log_cases(daemon)
    hidden = [*(KMSG_SECRET[k] for k in (KEPT, "stray")), str(SECTOR // 10)]  # each sector's first 8 digits
    everything = json.dumps([found, errlog(daemon)])
    assert all(s in everything for s in [*hidden, KMSG_SECRET[HOG]])  # root reads all of it
    # The kernel itself says whether the attacker may read its log (kernel.dmesg_restrict): svcmgr agrees.
    kmsg = attacker.run("/usr/bin/python3", "-c", "open('/dev/kmsg', 'rb')")
    restricted = "PermissionError" in kmsg.stderr
    if kmsg.returncode != 0 and not restricted:
        pytest.skip(f"cannot ask the kernel whether uid 65534 may read its log: {kmsg.stderr.strip()[-200:]}")
    shown = {
        "fmdump -eV": attacker.cli(daemon.root, "fmdump", "-eV"),
        "fmdump -e --json": attacker.cli(daemon.root, "fmdump", "-e", "--json"),
        "fmdump -v": attacker.cli(daemon.root, "fmdump", "-v"),
        "fmdump -m": attacker.cli(daemon.root, "fmdump", "-m"),
        "fmdump -V --json": attacker.cli(daemon.root, "fmdump", "-V", "--json"),
        "fmadm faulty": attacker.cli(daemon.root, "fmadm", "faulty"),
        "fmadm faulty --json": attacker.cli(daemon.root, "fmadm", "faulty", "--json"),
    }
    raw = [attacker.call(daemon.root, "fm.dump", errlog=True), attacker.call(daemon.root, "fm.dump", xrefs=True),
           attacker.call(daemon.root, "fm.faulty", all=True)]
    assert all(r["ok"] for r in raw), raw
    for what, r in shown.items():
        assert r.returncode == 0, (what, r.stderr)
        out = r.stdout + r.stderr
        assert all((s not in out) == restricted for s in hidden), (what, restricted, out)
        if what != "fmdump -v":  # its records show no text
            assert KMSG_SECRET[HOG] in r.stdout, (what, r.stdout)  # the granted service's own OOM kill
        if restricted:
            assert r.stderr.count("withheld") == 1 and "the kernel log" in r.stderr, (what, r.stderr)
            assert "[authorizations.read]" not in r.stderr, (what, r.stderr)  # no service's log is withheld
        else:
            assert "withheld" not in r.stderr, (what, r.stderr)
    assert all((s not in json.dumps(raw)) == restricted for s in hidden), raw
    # the records are all there: each class and resource, each case's suspects
    for cls in ("ereport.kernel.oom", "ereport.io.disk.error"):
        assert cls in shown["fmdump -eV"].stdout
    kernel = [e for e in json.loads(shown["fmdump -e --json"].stdout) if e["source"] == "kmsg"]
    assert {e["resource"] for e in kernel} == {KEPT, HOG, "sw:///python3", "dev:///dev/sdq"}
    assert len(kernel) == 8
    if not restricted:
        return
    assert all(e.get("quotes") == ["kmsg"] and e["payload"] == {} for e in kernel if e["resource"] != HOG), kernel
    assert "fmdump: 7 events' payloads are withheld: they hold a line of the kernel log" in shown["fmdump -eV"].stderr
    assert "fmadm: 3 cases shown with their detail and history withheld: they may quote a line of the kernel log" \
        in shown["fmadm faulty"].stderr
    views = {c["suspects"][0]["resource"]: c for c in json.loads(shown["fmadm faulty --json"].stdout)}
    assert set(views) == {KEPT, HOG, "sw:///python3", "dev:///dev/sdq"}
    assert "(withheld)" in views[KEPT]["description"] and views[KEPT]["quotes"] == ["kmsg"]
    assert "withheld" not in views[HOG]
    assert f"killed a process of {KEPT}: (withheld)." in shown["fmdump -m"].stdout
    # root reads everything, and is told nothing is withheld
    for args in (("-eV",), ("-m",)):
        r = fm(daemon, "fmdump", *args)
        assert all(s in r.stdout for s in hidden) and "withheld" not in r.stderr, r
    r = fm(daemon, "fmadm", "faulty")
    assert all(s in r.stdout for s in (KMSG_SECRET[KEPT], KMSG_SECRET["stray"])) and "withheld" not in r.stderr, r
