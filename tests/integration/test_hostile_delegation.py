"""Hostile: a user delegated one service (docs/security.md, "a delegated user") tries to become root.

Findings 1 and 2 of issue 10. The attacker holds the service's value and action grants,
as SMF's ``value_authorization`` and ``action_authorization`` give them, and uses only
the commands every user has: ``svccfg setprop``, ``svcadm refresh``, ``svcadm restart``.
"""

from __future__ import annotations

import os
from pathlib import Path

from svctest import wait_until

WEB = "svc:/site/web:default"

_DELEGATED = """
    [authorizations.action]
    users = ["nobody"]
    [authorizations.value]
    users = ["nobody"]
    [properties.config]
    greeting = "hello"
    """


def _restart_and_wait(daemon, attacker, before: list[int], proof: Path) -> list[int]:
    """The attacker refreshes and restarts; returns the new pids, or [] once the proof of an attack appeared."""
    attacker.cli(daemon.root, "svcadm", "refresh", "site/web")
    attacker.cli(daemon.root, "svcadm", "restart", "site/web")

    def running_again() -> list[int] | None:
        p = daemon.pids(WEB)
        return p if p and p != before and daemon.state(WEB) == "online" else None

    wait_until(lambda: proof.exists() or running_again(), 20, what="the service to run again")
    return [] if proof.exists() else daemon.pids(WEB)


def _start_web(daemon, start: str) -> list[int]:
    """The delegated service with this ``[methods.start]`` body, running: its pids."""
    daemon.manifest("web.toml", f"""
        name = "site/web"
        duration = "child"
        [methods.start]
        {start}
        {_DELEGATED}
        """)
    daemon.start()
    daemon.wait_state(WEB, "online")
    return daemon.pids(WEB)


def _uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def _quoted(value: str) -> str:
    """A value as svccfg's lexer takes one word of it: in double quotes, quotes and backslashes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_finding_1_a_value_grant_cannot_change_the_method_or_whom_it_runs_as(daemon, attacker, tmp_path: Path):
    proof = tmp_path / "uid-of-the-method"
    before = _start_web(daemon, 'exec = ["/bin/sleep", "1000"]\n        user = "nobody"')
    evil = f"/bin/sh -c 'id -u > {proof}; exec sleep 1000'"
    attempts = {
        "start/user": "root", "start/group": "root", "start/exec": evil, "start/working_directory": "/root",
        "start/environment": "LD_PRELOAD=/tmp/evil.so", "startd/duration": "transient", "restart/limit": "1000",
        "start/privileges": "all", "start/limit_privileges": "all", "start/no_new_privileges": "false",
        "start/supp_groups": "root", "method_context/privileges": "all", "resources/memory": "1",
    }
    refused = {}
    for prop, value in attempts.items():
        r = attacker.cli(daemon.root, "svccfg", "-s", "site/web", "setprop", prop, "=", "astring:", _quoted(value))
        refused[prop] = (r.returncode, r.stderr.strip())
    after = _restart_and_wait(daemon, attacker, before, proof)
    assert not proof.exists(), f"the delegated user ran a command as uid {proof.read_text().strip()}"
    assert _uid_of(after[0]) == 65534, "the service no longer runs as the user its manifest names"
    with open(f"/proc/{after[0]}/status") as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    assert int(status["CapEff"], 16) == 0 and status["NoNewPrivs"] == "1", "the service gained privileges"
    for prop, (code, err) in refused.items():
        if prop in ("method_context/privileges", "resources/memory"):  # groups the service lacks: said first
            assert code == 1 and f'No such property group "{prop.split("/")[0]}".' in err, (prop, code, err)
            continue
        assert code == 1 and "permission denied" in err and "needs root" in err, (prop, code, err)
    assert "start is a method property group" in refused["start/exec"][1]
    # What the grant is for still works: a new value for an application property.
    r = attacker.cli(daemon.root, "svccfg", "-s", "site/web", "setprop", "config/greeting", "=", "astring:", "hi")
    assert r.returncode == 0, r.stderr
    assert daemon.call("props", fmri=WEB, view="current")["pgs"]["config"]["greeting"]["values"] == ["hi"]


def test_finding_2_a_property_value_is_data_in_a_shell_method(daemon, attacker, tmp_path: Path):
    proof = tmp_path / "injected"
    said = tmp_path / "said"
    os.chmod(tmp_path, 0o755)
    before = _start_web(daemon, f'exec = "echo %{{config/greeting}} > {said}; echo \'%{{config/greeting}}\' >> {said}; '
                                'exec sleep 1000"')
    payload = f"$(id -u > {proof})`id -u > {proof}`;id -u > {proof}' \"x"
    r = attacker.cli(daemon.root, "svccfg", "-s", "site/web", "setprop", "config/greeting", "=", "astring:",
                     _quoted(payload))
    assert r.returncode == 0, r.stderr
    said.unlink()  # what the first run wrote: the wait below is for the restarted run's two lines
    _restart_and_wait(daemon, attacker, before, proof)
    wait_until(lambda: proof.exists() or (said.exists() and said.read_text().count("\n") == 2), 10,
               what="the method to run")
    assert not proof.exists(), f"the value ran as a command, as uid {proof.read_text().strip()}"
    assert said.read_text().splitlines() == [payload, payload]


def _sleeper(name: str, extra: str = "") -> str:
    return f'name = "{name}"\nduration = "child"\n[methods.start]\nexec = ["/bin/sleep", "1000"]\n{extra}\n'


def test_a_glob_acts_on_the_granted_instances_and_refuses_each_other(daemon, attacker):
    """svcadm.c acts on each instance a pattern names that the user may act on and says "Permission denied"
    for each other one, exit 1: the attacker's glob over a granted and an ungranted service restarts, disables
    and enables (``-r``) only what is granted; the other is left exactly as it was, with no line in its log."""
    mine, theirs, top, low = "svc:/a/mine:default", "svc:/a/theirs:default", "svc:/b/top:default", "svc:/b/low:default"
    daemon.manifest("mine.toml", _sleeper("a/mine", '[authorizations.action]\nusers = ["nobody"]'))
    daemon.manifest("theirs.toml", _sleeper("a/theirs"))
    daemon.manifest("top.toml", _sleeper("b/top", '[instances.default]\nenabled = false\n[authorizations.value]\n'
                                         'users = ["nobody"]\n[[dependencies]]\nname = "low"\nfmris = ["svc:/b/low"]'))
    daemon.manifest("low.toml", _sleeper("b/low", "[instances.default]\nenabled = false"))
    daemon.start()
    daemon.wait_state(mine, "online")
    daemon.wait_state(theirs, "online")
    theirs_before = (daemon.pids(theirs), daemon.info(theirs)["stime"], daemon.log(theirs))

    def refused(verb: str, fmri: str, grant: str = "[authorizations.action] or [authorizations.value]") -> str:
        return (f"svcadm: permission denied: uid 65534 (nobody) may not {verb} {fmri}: needs root or a grant in "
                f"the service's {grant}")

    mine_before = daemon.pids(mine)
    r = attacker.cli(daemon.root, "svcadm", "-v", "restart", "svc:/a/*")
    assert (r.returncode, r.stdout, r.stderr.splitlines()) == (
        1, f"Action restart set for {mine}.\n", [refused("restart", theirs)])
    wait_until(lambda: (p := daemon.pids(mine)) and p != mine_before and daemon.state(mine) == "online", 20,
               what="the granted service to restart")

    r = attacker.cli(daemon.root, "svcadm", "disable", "-s", "-t", "svc:/a/*")  # waits for the granted one only
    assert (r.returncode, r.stdout, r.stderr.splitlines()) == (1, "", [refused("disable", theirs)])
    assert daemon.state(mine) == "disabled"

    r = attacker.cli(daemon.root, "svcadm", "-v", "enable", "-r", "b/top")  # low is what top requires
    assert (r.returncode, r.stdout, r.stderr.splitlines()) == (
        1, f"{top} enabled.\n", [refused("enable", low, "[authorizations.value]")])
    assert daemon.info(top)["enabled_persistent"] and daemon.state(low) == "disabled"
    assert not daemon.info(low)["enabled"]

    # Naming nothing the attacker may act on is refused as a whole, each instance on its line.
    r = attacker.cli(daemon.root, "svcadm", "restart", "a/theirs", "b/low")
    assert (r.returncode, r.stderr.splitlines()) == (1, [refused("restart", theirs), refused("restart", low)])

    assert daemon.state(theirs) == "online" and daemon.state(low) == "disabled"
    assert (daemon.pids(theirs), daemon.info(theirs)["stime"], daemon.log(theirs)) == theirs_before
