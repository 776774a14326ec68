"""The commands as scripts use them: columns, --json, exit statuses, and life without a daemon."""

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from svcmgr.client import ClientError

from svctest import REPO, wait_until


def _child(name, extra=""):
    return f"""
        name = "{name}"
        description = "the {name} service"
        duration = "child"
        {extra}
        [methods.start]
        exec = ["sleep", "1000"]
        """


@pytest.fixture
def stack(daemon):
    daemon.manifest("db.toml", _child("c/db"))
    daemon.manifest("app.toml", _child("c/app") + '[[dependencies]]\nname = "db"\nfmris = ["svc:/c/db"]\n')
    daemon.manifest("off.toml", _child("c/off", "enabled = false"))
    daemon.start()
    daemon.wait_state("svc:/c/app:default", "online")
    return daemon


@pytest.mark.parametrize("argv", [["svcs"], ["svcs", "-x"], ["svcadm", "enable", "x"], ["svcprop", "x"],
                                  ["svccfg", "export", "x"]])
def test_without_a_daemon_every_command_says_so_in_one_line(daemon, argv):
    r = daemon.cli(*argv)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "svcmgrd is not running" in r.stderr


def test_svccfg_validate_needs_no_daemon(daemon):
    good = daemon.manifest("g.toml", _child("c/g"))
    assert daemon.cli("svccfg", "validate", str(good)).returncode == 0
    bad = daemon.manifest("b.toml", 'name = "c/b"\n')
    r = daemon.cli("svccfg", "validate", str(bad))
    assert r.returncode == 1 and "b.toml: methods.start: is required" in r.stderr


@pytest.mark.parametrize("argv", [["svcadm", "frob", "x"],
                                  ["svcadm", "mark", "sleepy", "x"], ["svcs", "-l"], ["svcs", "-d", "-D", "x"],
                                  ["svccfg", "-x"], ["svcprop"]])
def test_bad_usage_exits_2(stack, argv):
    r = stack.cli(*argv)
    assert r.returncode == 2, (argv, r.stderr)
    assert r.stderr.strip()


def test_default_listing_columns_and_order(stack):
    lines = stack.cli("svcs", check=True).stdout.splitlines()
    assert lines[0].split() == ["STATE", "STIME", "FMRI"]
    fmris = [line.split()[2] for line in lines[1:]]
    assert "svc:/c/off:default" not in fmris  # disabled: only with -a
    every = stack.cli("svcs", "-a", check=True).stdout.splitlines()[1:]
    assert every[0].split()[0] == "disabled"  # sorted by state: disabled first, as SMF does
    assert len(every) == 3


def test_H_o_for_scripts(stack):
    out = stack.cli("svcs", "-H", "-o", "state,fmri", check=True).stdout.splitlines()
    rows = [line.split() for line in out]
    assert ["online", "svc:/c/app:default"] in rows and all(len(r) == 2 for r in rows)
    out = stack.cli("svcs", "-H", "-o", "sta,svc,inst,desc", "app", check=True).stdout
    assert out.split() == ["ON", "c/app", "default", "the", "c/app", "service"]


def test_json_listing(stack):
    items = json.loads(stack.cli("svcs", "-a", "--json", "-p", check=True).stdout)
    app = next(i for i in items if i["fmri"] == "svc:/c/app:default")
    assert set(app) == {"state", "stime", "fmri", "pids"}
    assert app["state"] == "online" and len(app["pids"]) == 1
    assert dt.datetime.fromisoformat(app["stime"]).tzinfo is not None
    one = json.loads(stack.cli("svcs", "-l", "--json", "app", check=True).stdout)
    assert isinstance(one, dict) and one["fmri"] == "svc:/c/app:default"


def test_list_sends_only_the_fields_asked_for(stack):
    """What svcs asks for (the fields its columns read), and nothing a client did not name."""
    full = {i["fmri"]: i for i in stack.call("list")}
    some = stack.call("list", fields=["fmri", "state", "stime_epoch"])
    assert len(some) == len(full) and all(set(i) == {"fmri", "state", "stime_epoch"} for i in some)
    assert all(full[i["fmri"]]["state"] == i["state"] for i in some)
    with pytest.raises(ClientError) as ei:
        stack.call("list", fields=["fmri", "password"])
    assert ei.value.code == 2 and "unknown fields 'password'" in str(ei.value)


def test_long_listing_and_dependencies(stack):
    out = stack.cli("svcs", "-l", "app", check=True).stdout
    assert "fmri         svc:/c/app:default" in out
    assert "dependency   require_all/none svc:/c/db (online)" in out
    assert "state        online" in out and "contract_id" in out
    assert "svc:/c/db:default" in stack.cli("svcs", "-d", "app", check=True).stdout
    assert "svc:/c/app:default" in stack.cli("svcs", "-D", "db", check=True).stdout


def test_enable_s_exits_3_when_the_service_cannot_and_4_when_its_dependencies_cannot(daemon):
    daemon.manifest("broken.toml", """
        name = "c/broken"
        enabled = false
        [methods.start]
        exec = "exit 96"
        """)
    daemon.manifest("needs.toml", _child("c/needs", "enabled = false")
                    + '[[dependencies]]\nname = "b"\nfmris = ["svc:/c/broken"]\n')
    daemon.start()
    r = daemon.cli("svcadm", "enable", "-s", "broken")
    assert r.returncode == 3 and 'Instance "svc:/c/broken:default" is in maintenance state.' in r.stderr
    r = daemon.cli("svcadm", "enable", "-s", "needs")
    assert r.returncode == 4 and 'Instance "svc:/c/needs:default" has unsatisfied dependencies.' in r.stderr
    assert daemon.cli("svcadm", "disable", "-s", "needs").returncode == 0


def test_enable_r_enables_what_it_requires(daemon):
    daemon.manifest("db.toml", _child("c/db", "enabled = false"))
    daemon.manifest("app.toml", _child("c/app", "enabled = false")
                    + '[[dependencies]]\nname = "db"\nfmris = ["svc:/c/db"]\n')
    daemon.start()
    assert daemon.cli("svcadm", "enable", "-r", "-s", "app").returncode == 0
    assert daemon.state("svc:/c/db:default") == "online"


def test_enable_r_leaves_a_choice_to_the_operator(daemon):
    """As svcadm.c's enable_fmri_rec: a require_any group whose members come to several instances is not
    enabled (svcadm prints what the instance requires one of), nor a required service of several instances
    (a warning names it), nor an optional_all member; the rest is, the named instance first."""
    daemon.manifest("db.toml", _child("c/db", "enabled = false"))
    daemon.manifest("alt.toml", _child("c/alt", "enabled = false"))
    daemon.manifest("opt.toml", _child("c/opt", "enabled = false"))
    daemon.manifest("pair.toml", _child("c/pair", "enabled = false") + "[instances.a]\n[instances.b]\n")
    daemon.manifest("app.toml", _child("c/app", "enabled = false") + """
        [[dependencies]]
        name = "db"
        fmris = ["svc:/c/db"]
        [[dependencies]]
        name = "either"
        grouping = "require_any"
        fmris = ["svc:/c/alt:default", "svc:/c/db:default"]
        [[dependencies]]
        name = "pair"
        fmris = ["svc:/c/pair"]
        [[dependencies]]
        name = "opt"
        grouping = "optional_all"
        fmris = ["svc:/c/opt", "svc:/c/nosuch"]
        """)
    daemon.start()
    r = daemon.cli("svcadm", "-v", "enable", "-r", "app")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("svc:/c/app:default enabled.\nsvc:/c/db:default enabled.\n"
                        "svc:/c/app:default requires one of:\n  svc:/c/alt:default\n  svc:/c/db:default\n")
    assert r.stderr == "svcadm: svc:/c/app:default depends on svc:/c/pair, which has multiple instances.\n"
    enabled = {i["fmri"] for i in daemon.instances().values() if i["enabled"]}
    assert enabled == {"svc:/c/app:default", "svc:/c/db:default"}


def test_restart_acts_only_on_running_instances(stack):
    r = stack.cli("svcadm", "restart", "off")
    assert r.returncode == 0 and "not online or degraded" in r.stderr


def test_mark_degraded_and_clear(stack):
    stack.cli("svcadm", "mark", "degraded", "app", check=True)
    stack.wait_state("svc:/c/app:default", "degraded")
    assert "Reason: Degraded by an administrator." in stack.cli("svcs", "-x", "app", check=True).stdout
    stack.cli("svcadm", "clear", "app", check=True)
    stack.wait_state("svc:/c/app:default", "online")


def test_mark_maintenance_stops_and_clear_restores(stack):
    pids = stack.pids("svc:/c/db:default")
    stack.cli("svcadm", "mark", "maintenance", "db", check=True)
    stack.wait_state("svc:/c/db:default", "maintenance")
    assert stack.pids("svc:/c/db:default") == [] and pids
    x = stack.cli("svcs", "-xv", check=True).stdout
    assert "Maintenance requested by an administrator." in x
    stack.cli("svcadm", "clear", "db", check=True)
    stack.wait_state("svc:/c/db:default", "online")


def test_milestone_none_and_all(stack):
    stack.cli("svcadm", "milestone", "none", check=True)
    stack.wait_state("svc:/c/app:default", "disabled")
    stack.wait_state("svc:/c/db:default", "disabled")
    assert "Held back by milestone none." in stack.cli("svcs", "-x", "app").stdout
    stack.cli("svcadm", "milestone", "db", check=True)
    stack.wait_state("svc:/c/db:default", "online")
    assert stack.state("svc:/c/app:default") == "disabled"
    stack.cli("svcadm", "milestone", "all", check=True)
    stack.wait_state("svc:/c/app:default", "online")


def test_svcprop_and_tokens(daemon, tmp_path):
    out = tmp_path / "out"
    daemon.manifest("p.toml", f"""
        name = "c/props"
        duration = "transient"
        [methods.start]
        exec = "echo %f %i %m %{{config/port}} %% > {out}"
        [properties.config]
        port = 8080
        hosts = ["a", "b c"]
        debug = true
        """)
    daemon.start()
    daemon.wait_state("svc:/c/props:default", "online")
    assert out.read_text().split() == ["svc:/c/props:default", "default", "start", "8080", "%"]
    assert daemon.cli("svcprop", "-p", "config/port", "props", check=True).stdout == "8080\n"
    assert daemon.cli("svcprop", "-p", "config/hosts", "props", check=True).stdout == "a b\\ c\n"
    all_props = daemon.cli("svcprop", "props", check=True).stdout
    assert "config/debug boolean true" in all_props and "start/exec astring" in all_props
    assert daemon.cli("svcprop", "-q", "-p", "config/nope", "props").returncode == 1
    assert daemon.cli("svcprop", "-q", "-p", "config/port", "props").returncode == 0


def test_export_then_reimport_round_trips(stack, tmp_path):
    text = stack.cli("svccfg", "export", "app", check=True).stdout
    assert 'name = "c/app"' in text
    p = tmp_path / "exported.toml"
    p.write_text(text)
    assert stack.cli("svccfg", "validate", str(p)).returncode == 0
    assert stack.cli("svccfg", "import", str(p)).returncode == 0


def test_delete_stops_and_removes(stack):
    pids = stack.pids("svc:/c/app:default")
    assert stack.cli("svccfg", "delete", "app").returncode == 0
    assert "svc:/c/app:default" not in stack.instances() and pids


def test_svcs_imports_only_what_it_needs():
    code = ("import sys, svcmgr.cli.svcs, svcmgr.cli.svcadm, svcmgr.cli.svcprop; "
            "print(' '.join(sorted(m for m in sys.modules)))")
    mods = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              cwd=REPO).stdout.split())
    heavy = {"networkx", "asyncio", "sqlite3", "jinja2", "aiomqtt", "prometheus_client", "tomllib",
             "svcmgr.engine", "svcmgr.manifest", "svcmgr.restarter"}
    assert not (mods & heavy), mods & heavy


COMMANDS = ("svcmgr.cli.svcs", "svcmgr.cli.svcadm", "svcmgr.cli.svccfg", "svcmgr.cli.svcprop", "fault.cli.fmadm",
            "fault.cli.fmdump", "fault.cli.fmstat", "fault.cli.fminject", "vrrp.cli.vrrpadm", "lb.cli.lbadm")


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no system python3 to run the commands with")
def test_the_commands_start_with_the_standard_library_alone():
    """Ordinary users run the commands with the system's python3, which may have none of the daemon's
    libraries: a command imports them only for what needs them (svccfg's export, --fleet)."""
    for mod in COMMANDS:
        r = subprocess.run(["/usr/bin/python3", "-S", "-c", f"import {mod}"], capture_output=True, text=True,
                           cwd=REPO)
        assert r.returncode == 0, f"{mod}: {r.stderr.strip().splitlines()[-1:]}"


def test_reimport_without_an_instance_stops_and_removes_it(daemon):
    m = daemon.manifest("multi.toml", """
        name = "c/multi"
        duration = "child"
        [methods.start]
        exec = ["sleep", "1000"]
        [instances.a]
        [instances.b]
        """)
    daemon.start()
    daemon.wait_state("svc:/c/multi:b", "online")
    (pid,) = daemon.pids("svc:/c/multi:b")
    m.write_text(m.read_text().replace("[instances.b]\n", ""))
    assert daemon.cli("svccfg", "import", str(m)).returncode == 0
    assert "svc:/c/multi:b" not in daemon.instances()
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), what="b's process to end")
    assert daemon.state("svc:/c/multi:a") == "online"


def test_v_shows_next_state_and_contract(stack):
    lines = stack.cli("svcs", "-v", check=True).stdout.splitlines()
    assert lines[0].split() == ["STATE", "NSTATE", "STIME", "CTID", "FMRI"]
    app = next(line.split() for line in lines if line.endswith("svc:/c/app:default"))
    assert app[0] == "online" and app[1] == "-" and app[3].isdigit()
