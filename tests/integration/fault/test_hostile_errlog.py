"""A line of a service's log that a log pattern matches is an ereport's payload and a case's detail: the attacker
(uid 65534, docs/security.md) reads neither without the service's log right, and reads both with it.

The attacker runs fmdump and fmadm on the system interpreter, and asks the socket itself (``fm.dump``,
``fm.faulty``), for the error log, the fault log, the diagnosis messages and the cases.
"""

from __future__ import annotations

import json
import time

from fault_helpers import cases, child_service, fault_config, fm, rules_dir, wait_until

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
    r = fm(daemon, "fmdump", "-c", "[" * 300)
    assert r.returncode == 2 and "fmdump: class: " in r.stderr and "more than 256 characters" in r.stderr, r
