"""svcs and svcadm as illumos operators script them: operands that name nothing, abbreviations, the
root causes svcs -x lists and their order, fixed columns, exit statuses and the options that clash.
Messages and statuses are those of svcs.c, explain.c, svcadm.c and libscf (issue 12, gaps 4-6, 8)."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator

import pytest

from svctest import Daemon, private_daemon, wait_until


def _child(name: str, extra: str = "", exec_: str = '["sleep", "1000"]') -> str:
    return textwrap.dedent(f"""
        name = "{name}"
        duration = "child"
        {extra}
        [methods.start]
        exec = {exec_}
        """)


def _requires(*fmris: str, grouping: str = "require_all") -> str:
    return f'\n[[dependencies]]\nname = "dep"\ngrouping = "{grouping}"\nfmris = {json.dumps(list(fmris))}\n'


@pytest.fixture(scope="module")
def shop() -> Iterator[Daemon]:
    """A daemon left as the read-only tests find it: db disabled keeps app and web offline, lone in
    maintenance, deg degraded, two http services, a service with two instances."""
    with private_daemon() as d:
        d.manifest("db.toml", _child("shop/db", "enabled = false"))
        d.manifest("app.toml", _child("shop/app") + _requires("svc:/shop/db"))
        d.manifest("web.toml", _child("shop/web") + _requires("svc:/shop/app:default"))
        d.manifest("lone.toml", _child("shop/lone"))
        d.manifest("deg.toml", _child("shop/deg"))
        d.manifest("h1.toml", _child("network/http"))
        d.manifest("h2.toml", _child("site/http"))
        d.manifest("multi.toml", _child("shop/multi") + "\n[instances.a]\n[instances.b]\n")
        d.start()
        for f in ("svc:/shop/lone:default", "svc:/shop/deg:default", "svc:/shop/multi:b"):
            d.wait_state(f, "online")
        d.cli("svcadm", "mark", "maintenance", "lone", check=True)
        d.cli("svcadm", "mark", "degraded", "deg", check=True)
        d.wait_state("svc:/shop/lone:default", "maintenance")
        d.wait_state("svc:/shop/deg:default", "degraded")
        d.wait_state("svc:/shop/web:default", "offline")
        yield d


# ---------------------------------------------------------------- gap 4: operands that name nothing

def test_svcs_lists_the_others_and_says_which_pattern_matched_nothing(shop):
    r = shop.cli("svcs", "-H", "-o", "fmri", "lone", "nosuch", "svc:/shop/nosuch:default")
    assert r.returncode == 1
    assert r.stdout.split() == ["svc:/shop/lone:default"]
    assert r.stderr.splitlines() == ["svcs: Pattern 'nosuch' doesn't match any instances",
                                     "svcs: Pattern 'svc:/shop/nosuch:default' doesn't match any instances"]
    for mode in ("-l", "-x", "-d", "-L"):
        r = shop.cli("svcs", mode, "nosuch")
        assert r.returncode == 1 and "Pattern 'nosuch' doesn't match any instances" in r.stderr, mode


def test_svcadm_acts_on_the_others_and_exits_1(daemon):
    daemon.manifest("a.toml", _child("z/a"))
    daemon.start()
    daemon.wait_state("svc:/z/a:default", "online")
    r = daemon.cli("svcadm", "disable", "-t", "nosuch", "z/a")
    assert r.returncode == 1 and r.stderr == "svcadm: Pattern 'nosuch' doesn't match any instances\n"
    daemon.wait_state("svc:/z/a:default", "disabled")
    # enable -s waits for the ones that exist, and still exits 1 for the one that did not
    r = daemon.cli("svcadm", "enable", "-s", "-t", "z/a", "nosuch")
    assert r.returncode == 1 and daemon.state("svc:/z/a:default") == "online"


def test_an_abbreviation_of_several_instances_is_refused_before_anything_is_done(shop):
    before = {f: i["stime_epoch"] for f, i in shop.instances().items()}
    for operand in ("http", "multi", "svc:/shop/multi"):
        r = shop.cli("svcadm", "restart", "lone", operand)
        assert r.returncode == 1, operand
        assert r.stderr.startswith("svcadm: Partial FMRI matches multiple instances\n"), r.stderr
        assert f"'{operand}' is ambiguous, it matches: svc:/" in r.stderr
    assert {f: i["stime_epoch"] for f, i in shop.instances().items()} == before
    # svcs lists them all; a glob says "all of them" to svcadm too
    assert shop.cli("svcs", "-H", "-o", "fmri", "http", check=True).stdout.split() == [
        "svc:/network/http:default", "svc:/site/http:default"]
    assert shop.cli("svcadm", "refresh", "*/http:*").returncode == 0


# ---------------------------------------------------------------- gap 5: names, svcs -x, columns

def test_instance_names_and_abbreviations_name_instances(shop):
    fmris = shop.cli("svcs", "-H", "-o", "fmri", ":a", "b", check=True).stdout.split()
    assert fmris == ["svc:/shop/multi:a", "svc:/shop/multi:b"]
    defaults = shop.cli("svcs", "-H", "-o", "fmri", "default", check=True).stdout.split()
    assert "svc:/shop/lone:default" in defaults and "svc:/shop/multi:a" not in defaults
    assert shop.cli("svcs", "-H", "-o", "fmri", ":default", check=True).stdout.split() == defaults
    for ok in ("shop/lone", "lone:default", "svc:/shop/lone:default", "shop/lone:default"):
        assert shop.cli("svcs", "-H", "-o", "fmri", ok, check=True).stdout.split() == ["svc:/shop/lone:default"]
    for bad in ("one", "shop", "shop/lon"):  # segments, not substrings
        assert shop.cli("svcs", bad).returncode == 1, bad


def test_svcs_x_lists_the_root_causes_the_most_harmful_first(shop):
    out = shop.cli("svcs", "-x", check=True).stdout
    blocks = out.split("\n\n")
    firsts = [b.splitlines()[0].split()[0] for b in blocks]
    # db keeps two instances from running; lone only itself; app and web wait on db; deg runs
    assert firsts == ["svc:/shop/db:default", "svc:/shop/lone:default"], out
    assert "Reason: Disabled by an administrator." in blocks[0]
    assert "Impact: 2 dependent services are not running.  (Use -v for list.)" in blocks[0]
    assert "Impact: This service is not running." in blocks[1]
    verbose = shop.cli("svcs", "-xv", "web", check=True).stdout
    assert re.search(r"Reason: Service svc:/shop/db:default is disabled\.\n"
                     r"  Path: svc:/shop/web:default\n"
                     r" {10}svc:/shop/app:default\n"
                     r" {12}svc:/shop/db:default\n", verbose), verbose
    impact = shop.cli("svcs", "-xv", "db", check=True).stdout
    assert "Impact: 2 dependent services are not running:\n        svc:/shop/app:default\n" \
           "        svc:/shop/web:default\n" in impact
    assert shop.cli("svcs", "-x", "deg", check=True).stdout.count("Reason: Degraded by an administrator.") == 1


def test_fixed_columns_as_svcs_prints_them(shop):
    lines = shop.cli("svcs", "-a", check=True).stdout.splitlines()
    assert lines[0] == "STATE          STIME    FMRI"
    row = next(line for line in lines if line.endswith("svc:/shop/lone:default"))
    assert re.fullmatch(r"maintenance {4}[ \d]\d:\d\d:\d\d svc:/shop/lone:default", row), row
    assert [line.split()[0] for line in lines[1:]] == sorted(
        (line.split()[0] for line in lines[1:]),
        key=["disabled", "online", "degraded", "offline", "maintenance"].index)
    text = shop.cli("svcs", "-o", "scope,s,sn,n,nsta,sta,ctid,inst,svc,zone", "lone", check=True).stdout
    assert text.splitlines() == [
        "SCOPE                S  SN N NSTA STA  CTID   INST                 SVC                  ZONE",
        "localhost            m  m- - -    MNT       - default              shop/lone            global"]
    v = shop.cli("svcs", "-v", "web", check=True).stdout.splitlines()
    assert v[0] == "STATE          NSTATE        STIME    CTID   FMRI"
    assert re.fullmatch(r"offline {8}- {13}[ \d]\d:\d\d:\d\d {6}- svc:/shop/web:default", v[1]), v[1]


def test_sort_options_keep_their_order(shop):
    rows = shop.cli("svcs", "-H", "-o", "inst,fmri", "-s", "inst", "-S", "fmri", "multi", "lone",
                    check=True).stdout.splitlines()
    assert [r.split()[1] for r in rows] == ["svc:/shop/multi:a", "svc:/shop/multi:b", "svc:/shop/lone:default"]
    r = shop.cli("svcs", "-s", "nosuch")
    assert r.returncode == 1 and 'Unrecognized sort column "nosuch".' in r.stderr
    r = shop.cli("svcs", "-o", "nosuch")
    assert r.returncode == 1 and 'Unknown column "nosuch".' in r.stderr
    r = shop.cli("svcs", "-o", "")  # svcs.c: an empty -o is no columns, not the default ones
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "svcs: No columns specified.\n")


def test_restarter_selection_and_zones(shop):
    every = shop.cli("svcs", "-H", "-o", "fmri", "-R", "svc:/system/svc/restarter:default", check=True)
    assert "svc:/shop/db:default" in every.stdout.split()  # -R lists disabled instances too
    r = shop.cli("svcs", "-R", "svc:/system/svc/restarter")
    assert r.returncode == 1 and "does not designate an instance" in r.stderr
    for argv in (["svcs", "-Z"], ["svcs", "-z", "global"], ["svcadm", "-Z", "restart", "lone"]):
        r = shop.cli(*argv)
        assert r.returncode == 1 and "no zones" in r.stderr, argv


# ---------------------------------------------------------------- gap 8: options that clash

@pytest.mark.parametrize("argv", [["-x", "-H"], ["-l", "-o", "state", "lone"], ["-d", "-a", "lone"],
                                  ["-x", "-p"], ["-l", "-x", "lone"], ["-d", "-s", "fmri", "lone"],
                                  ["-R", "svc:/system/svc/restarter:default", "-x"], ["-L", "-D", "lone"],
                                  ["-t", "-o", "fmri"], ["-d"], ["-l"]])
def test_options_that_clash_are_usage_errors(shop, argv):
    r = shop.cli("svcs", *argv)
    assert r.returncode == 2, (argv, r.stderr)
    assert r.stderr.startswith("usage: svcs")


def test_a_with_operands_is_ignored_with_a_warning(shop):
    r = shop.cli("svcs", "-a", "-H", "-o", "fmri", "db")
    assert r.returncode == 0 and r.stdout.split() == ["svc:/shop/db:default"]
    assert r.stderr == "svcs: -a ignored when used with arguments.\n"


# ---------------------------------------------------------------- gap 6: svcadm's states and options

def test_clear_and_mark_degraded_refuse_the_wrong_state(shop):
    r = shop.cli("svcadm", "clear", "multi:a")
    assert r.returncode == 1
    assert r.stderr == 'svcadm: Instance "svc:/shop/multi:a" is not in a maintenance or degraded state.\n'
    r = shop.cli("svcadm", "mark", "degraded", "db")
    assert r.returncode == 1 and r.stderr == 'svcadm: Instance "svc:/shop/db:default" is not online.\n'
    r = shop.cli("svcadm", "mark", "-t", "degraded", "multi:a")
    assert r.returncode == 2 and r.stderr == "svcadm: -t may not be used with degraded.\n"
    r = shop.cli("svcadm", "-S", "online", "clear")
    assert r.returncode == 1 and "State must be 'maintenance' or 'degraded'" in r.stderr


def test_state_selection_acts_on_every_instance_in_that_state(daemon):
    for n in range(3):
        daemon.manifest(f"s{n}.toml", _child(f"sel/s{n}", "enabled = false"))
    daemon.manifest("on.toml", _child("sel/on"))
    daemon.start()
    daemon.wait_state("svc:/sel/on:default", "online")
    assert daemon.cli("svcadm", "-S", "disabled", "enable", "sel/s0").returncode == 2  # operands or -S
    assert daemon.cli("svcadm", "-S", "disabled", "-v", "enable", "-s", "-t", check=True).stdout.count(
        "temporarily enabled.") == 3
    assert {i["state"] for i in daemon.instances().values()} == {"online"}
    r = daemon.cli("svcadm", "-v", "-S", "online", "mark", "-I", "maintenance", check=True)
    assert r.stdout.count("Action maint_on_immediate set for svc:/sel/") == 4
    wait_until(lambda: {i["state"] for i in daemon.instances().values()} == {"maintenance"}, what="maintenance")
    r = daemon.cli("svcadm", "-v", "-S", "maintenance", "clear", check=True)
    assert r.stdout.count("Action maint_off set for") == 4


def test_disable_with_a_comment_and_restart_with_a_core_dump(daemon, tmp_path):
    flag = tmp_path / "abrt"
    script = f"trap 'echo abrt >> {flag}; exit 0' ABRT; while :; do sleep 0.1; done"
    daemon.manifest("t.toml", _child("z/trap", exec_=json.dumps(["sh", "-c", script]))
                    + '[methods.stop]\nexec = ["sleep", "1"]\n')  # time for the trap before any SIGTERM
    daemon.start()
    daemon.wait_state("svc:/z/trap:default", "online")
    (pid,) = daemon.pids("svc:/z/trap:default")[:1]
    r = daemon.cli("svcadm", "-v", "restart", "-d", "trap", check=True)
    assert r.stdout.splitlines() == ["Action dodump set for svc:/z/trap:default.",
                                     "Action restart set for svc:/z/trap:default."]
    wait_until(lambda: flag.exists() and pid not in daemon.pids("svc:/z/trap:default"), what="SIGABRT")
    daemon.wait_state("svc:/z/trap:default", "online")
    assert flag.read_text().split() == ["abrt"]
    daemon.cli("svcadm", "disable", "-s", "-c", "OPS-1000", "trap", check=True)
    assert re.search(r"^comment {6}OPS-1000$", daemon.cli("svcs", "-l", "trap", check=True).stdout, re.M)
    assert "Reason: Disabled by an administrator: OPS-1000" in daemon.cli("svcs", "-x", "trap").stdout
    daemon.cli("svcadm", "enable", "-s", "trap", check=True)
    assert "comment" not in daemon.cli("svcs", "-l", "trap", check=True).stdout
    assert daemon.cli("svcadm", "disable", "-c", "bad\x07", "trap").returncode == 2
