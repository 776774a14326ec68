"""Hostile: a local user (uid 65534) without the read grant, through every output path issue 12 added
to svcprop, svcs and svccfg (views, snapshots, -lv, listpg, describe, archive), reads no protected value,
and edits nothing (docs/security.md, "read-protected properties")."""

from __future__ import annotations

import pytest

from svctest import Daemon

SECRET = "s3cr3t-value"


@pytest.fixture
def guarded(daemon: Daemon) -> Daemon:
    """site/p, with a read-protected group and an open one."""
    daemon.manifest("p.toml", f"""
        name = "site/p"
        duration = "child"
        [methods.start]
        exec = ["sleep", "1000"]
        [properties.secrets]
        read_authorization = "solaris.smf.read.p"
        key = "{SECRET}"
        [properties.config]
        open = "visible"
        """)
    daemon.start()
    daemon.wait_state("svc:/site/p:default", "online")
    return daemon


def test_svcprop_and_svcs_show_no_protected_value(guarded, attacker):
    for view in ([], ["-c"], ["-C"], ["-s", "initial"], ["-f"], ["--json"]):
        r = attacker.cli(guarded.root, "svcprop", *view, "site/p")
        assert r.returncode == 0 and SECRET not in r.stdout + r.stderr, (view, r.stdout)
    r = attacker.cli(guarded.root, "svcprop", "-p", "secrets/key", "site/p")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "svcprop: Permission denied.\n")
    r = attacker.cli(guarded.root, "svcprop", "-p", "secrets", "site/p")
    assert r.returncode == 1 and SECRET not in r.stdout
    lv = attacker.cli(guarded.root, "svcs", "-lv", "site/p")
    assert lv.returncode == 0 and "config/open (astring) = visible" in lv.stdout and SECRET not in lv.stdout
    assert guarded.cli("svcprop", "-p", "secrets/key", "site/p", check=True).stdout == f"{SECRET}\n"  # root may


def test_svccfg_shows_no_protected_value_and_edits_nothing(guarded, attacker):
    for cmd in (["listprop"], ["listpg"], ["describe"], ["export"], ["export", "--xml"]):
        r = attacker.cli(guarded.root, "svccfg", "-s", "site/p", *cmd, *(["site/p"] if cmd[0] == "export" else []))
        assert SECRET not in r.stdout + r.stderr, cmd
    r = attacker.run("/usr/bin/python3", "-m", "svcmgr.cli.svccfg", "--root", str(guarded.root),
                     input="select site/p:default\nselectsnap initial\nlistprop\n")
    assert r.returncode == 0 and "secrets/key" in r.stdout and SECRET not in r.stdout + r.stderr
    for cmd in (["addpg", "x", "application"], ["delpg", "secrets"], ["setprop", "secrets/key", "=", "y"]):
        r = attacker.cli(guarded.root, "svccfg", "-s", "site/p", *cmd)
        assert r.returncode == 1 and "permission denied" in r.stderr.lower(), (cmd, r.stderr)
    assert attacker.cli(guarded.root, "svccfg", "-s", "site/p:default", "revert", "initial").returncode == 1
    assert attacker.cli(guarded.root, "svccfg", "archive", "-a").returncode == 1
    assert SECRET not in attacker.cli(guarded.root, "svccfg", "archive").stdout
    assert guarded.cli("svcprop", "-c", "-p", "secrets/key", "site/p", check=True).stdout == f"{SECRET}\n"
