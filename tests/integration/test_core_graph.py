"""Dependencies with real processes: parallel start, ordering, every grouping, every restart_on value."""

import os
import signal

import pytest

from svctest import wait_until


def recorder(path, seconds):
    """A start method that notes when it began and ended."""
    return (f'exec = "echo start $(date +%%s%%N) >> {path}; sleep {seconds}; echo end $(date +%%s%%N) >> {path}"')


def times(path):
    out = {}
    for line in path.read_text().split("\n"):
        if line:
            k, v = line.split()
            out[k] = int(v)
    return out["start"], out["end"]


def test_independent_services_start_in_parallel(daemon, tmp_path):
    for n in range(4):
        daemon.manifest(f"p{n}.toml", f"""
            name = "par/p{n}"
            duration = "transient"
            [methods.start]
            {recorder(tmp_path / f"p{n}", 1)}
            """)
    daemon.start()
    for n in range(4):
        daemon.wait_state(f"svc:/par/p{n}:default", "online")
    spans = [times(tmp_path / f"p{n}") for n in range(4)]
    # Every start began before any of them ended: they ran together, not one after another.
    assert max(s for s, _ in spans) < min(e for _, e in spans)


def test_a_chain_starts_in_order_as_soon_as_each_link_is_ready(daemon, tmp_path):
    prev = None
    for name in ("a", "b", "c"):
        dep = f"""
            [[dependencies]]
            name = "prev"
            fmris = ["svc:/chain/{prev}"]
            """ if prev else ""
        daemon.manifest(f"{name}.toml", f"""
            name = "chain/{name}"
            duration = "transient"
            [methods.start]
            {recorder(tmp_path / name, 0.3)}
            {dep}""")
        prev = name
    daemon.start()
    daemon.wait_state("svc:/chain/c:default", "online")
    a, b, c = (times(tmp_path / n) for n in "abc")
    assert a[1] <= b[0] and b[1] <= c[0]


def _svc(name, deps="", start='exec = ["sleep", "1000"]', extra=""):
    return f"""
        name = "{name}"
        duration = "child"
        {extra}
        [methods.start]
        {start}
        {deps}
        """


def _dep(grouping, *fmris, restart_on="none", name="d"):
    quoted = ", ".join(f'"{f}"' for f in fmris)
    return f"""
        [[dependencies]]
        name = "{name}"
        grouping = "{grouping}"
        restart_on = "{restart_on}"
        fmris = [{quoted}]
        """


def test_require_all_waits_for_every_member(daemon):
    daemon.manifest("db1.toml", _svc("g/db1"))
    daemon.manifest("db2.toml", _svc("g/db2", extra="enabled = false"))
    daemon.manifest("app.toml", _svc("g/app", _dep("require_all", "svc:/g/db1", "svc:/g/db2")))
    daemon.start()
    daemon.wait_state("svc:/g/db1:default", "online")
    daemon.wait_state("svc:/g/app:default", "offline")
    x = daemon.cli("svcs", "-x", "app", check=True).stdout
    assert "Reason: Service svc:/g/db2:default is disabled." in x
    daemon.cli("svcadm", "enable", "-s", "db2", check=True)
    daemon.wait_state("svc:/g/app:default", "online")


def test_require_any_is_met_by_one_member(daemon):
    daemon.manifest("x.toml", _svc("g/x", start='exec = "exit 96"'))
    daemon.manifest("y.toml", _svc("g/y"))
    daemon.manifest("app.toml", _svc("g/app", _dep("require_any", "svc:/g/x", "svc:/g/y")))
    daemon.start()
    daemon.wait_state("svc:/g/x:default", "maintenance")
    daemon.wait_state("svc:/g/app:default", "online")


def test_optional_all_skips_disabled_and_absent_members(daemon):
    daemon.manifest("z.toml", _svc("g/z", extra="enabled = false"))
    daemon.manifest("app.toml", _svc("g/app", _dep("optional_all", "svc:/g/z", "svc:/g/nowhere")))
    daemon.start()
    daemon.wait_state("svc:/g/app:default", "online")
    assert daemon.state("svc:/g/z:default") == "disabled"


def test_optional_all_waits_for_a_member_that_can_still_start(daemon, tmp_path):
    gate = tmp_path / "gate"
    daemon.manifest("slow.toml", _svc("g/slow", start=f'exec = "while [ ! -e {gate} ]; do sleep 0.05; done; '
                                                  f'exec sleep 1000"', extra="") +
                    f'\n[readiness]\ncommand = ["test", "-e", "{gate}"]\n')
    daemon.manifest("app.toml", _svc("g/app", _dep("optional_all", "svc:/g/slow")))
    daemon.start()
    daemon.wait_state("svc:/g/slow:default", "offline", settled=False)
    assert daemon.state("svc:/g/app:default") == "offline"
    gate.touch()
    daemon.wait_state("svc:/g/app:default", "online")


def test_exclude_all_keeps_a_service_offline_while_the_excluded_one_runs(daemon):
    daemon.manifest("e.toml", _svc("g/e"))
    daemon.manifest("app.toml", _svc("g/app", _dep("exclude_all", "svc:/g/e")))
    daemon.start()
    daemon.wait_state("svc:/g/e:default", "online")
    daemon.wait_state("svc:/g/app:default", "offline")
    assert "Reason: Service svc:/g/e:default is running." in daemon.cli("svcs", "-x", "app").stdout
    daemon.cli("svcadm", "disable", "-s", "e", check=True)
    daemon.wait_state("svc:/g/app:default", "online")
    daemon.cli("svcadm", "enable", "e", check=True)
    # Enabled again, the excluded service starts (it depends on nothing) and the dependent stops.
    daemon.wait_state("svc:/g/e:default", "online")
    daemon.wait_state("svc:/g/app:default", "offline")


def test_absent_dependency_waits_and_is_explained(daemon):
    daemon.manifest("app.toml", _svc("g/app", _dep("require_all", "svc:/g/missing:default")))
    v = daemon.cli("svccfg", "validate", str(daemon.mdir / "app.toml"))
    assert v.returncode == 0 and "svc:/g/missing:default" in v.stderr and "warning" in v.stderr
    daemon.start()
    daemon.wait_state("svc:/g/app:default", "offline")
    x = daemon.cli("svcs", "-x", check=True).stdout
    assert "Reason: Dependency svc:/g/missing:default is absent." in x
    d = daemon.cli("svcs", "-d", "app", check=True).stdout
    assert "absent" in d and "svc:/g/missing:default" in d
    # Importing the missing service later lets the dependent start.
    daemon.import_(daemon.manifest("missing.toml", _svc("g/missing")))
    daemon.wait_state("svc:/g/app:default", "online")


RESTART_ON = ("none", "error", "restart", "refresh")


@pytest.fixture
def restart_on_stack(daemon):
    daemon.manifest("db.toml", _svc("r/db", extra='[restart]\nlimit = 100\n') +
                    '\n[methods.refresh]\nexec = ":true"\n')
    for r in RESTART_ON:
        daemon.manifest(f"{r}.toml", _svc(f"r/{r}", _dep("require_all", "svc:/r/db", restart_on=r)))
    daemon.start()
    for r in RESTART_ON:
        daemon.wait_state(f"svc:/r/{r}:default", "online")
    return daemon


def _pids(d):
    return {r: d.pids(f"svc:/r/{r}:default") for r in RESTART_ON}


def _settle(d):
    for f in ("db", *RESTART_ON):
        d.wait_state(f"svc:/r/{f}:default", "online")


@pytest.mark.parametrize("how,restarted", [
    ("kill", {"error", "restart", "refresh"}),  # stopped by an error
    ("restart", {"restart", "refresh"}),  # stopped otherwise
    ("refresh", {"refresh"}),  # refreshed
])
def test_restart_on_decides_which_dependents_restart(restart_on_stack, how, restarted):
    d = restart_on_stack
    before = _pids(d)
    if how == "kill":
        os.kill(d.pids("svc:/r/db:default")[0], signal.SIGKILL)
        wait_until(lambda: d.pids("svc:/r/db:default") and True)
    else:
        d.cli("svcadm", how, "svc:/r/db:default", check=True)
    for r in restarted:
        wait_until(lambda r=r: (p := d.pids(f"svc:/r/{r}:default")) and p != before[r],
                   what=f"restart_on={r} dependent to restart after {how}")
    _settle(d)
    after = _pids(d)
    for r in RESTART_ON:
        assert (after[r] != before[r]) == (r in restarted), (r, how)


def _running(name, deps=""):
    """A contract service online as soon as its process is spawned (no throttle between restarts)."""
    return f"""
        name = "{name}"
        duration = "contract"
        [methods.start]
        exec = ["python3", "-c", "import time; time.sleep(1000)"]
        [readiness]
        spawn = true
        [restart]
        limit = 1000
        {deps}
        """


def test_the_stop_of_a_restart_on_error_dependent_is_no_failure_of_its_own(daemon):
    """A dependency's crash stops its restart_on=error dependents with the restarter's own SIGTERM: their
    exits are no failure of theirs (svc.startd sent that signal), no ereport and no restart of their own.
    A stopped process's end may be reaped after its contract emptied and its dependent started again (the
    daemon spawns here, and reaps all but the first of the ends of a burst 10 ms later): it is no death of
    the new contract's. Twenty crashes: on 1f06c5c every run reported some dependents as dead of SIGTERM."""
    db, apps = "svc:/x/db:default", [f"svc:/x/app{i}:default" for i in range(6)]
    daemon.manifest("db.toml", _running("x/db"))
    for i in range(6):
        daemon.manifest(f"app{i}.toml", _running(f"x/app{i}", _dep("require_all", db, restart_on="error")))
    daemon.env["SVCMGR_NO_SPAWN_HELPER"] = "1"
    daemon.start()

    def running():
        rows = daemon.call("list", fmris=[db, *apps], pids=True)
        return {r["fmri"]: r for r in rows if r["state"] in ("online", "degraded") and r["nstate"] is None}

    def renewed(old):
        now = running()
        return len(now) == 7 and all(r["pids"] and not set(r["pids"]) & set(old[f]["pids"]) for f, r in now.items()) \
            and now

    rows = wait_until(lambda: (now := running()) and len(now) == 7 and all(r["pids"] for r in now.values()) and now)
    rounds = 20
    for n in range(rounds):
        os.kill(rows[db]["pids"][0], signal.SIGKILL)
        rows = wait_until(lambda old=rows: renewed(old), 20, what=f"all seven running again after crash {n + 1}")
    exits = [(e["resource"], e["class"]) for e in daemon.call("fm.dump", errlog=True, limit=100000)["entries"]
             if e["class"].startswith("ereport.svc.exit.")]
    assert exits == [(db, "ereport.svc.exit.signal")] * rounds
    assert {f: rows[f]["restarts"] for f in apps} == dict.fromkeys(apps, 0)  # each start lasted to its stop
