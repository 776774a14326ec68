"""Spawning inside a contract's cgroup from the daemon itself (``Contract.placing``, the path without the
spawn helper, and the one for methods whose credentials need the child): children are born in their
group, and the daemon always returns to its own, spawn failures included. The spawn helper has its own
tests (``test_core_spawn_helper.py``)."""

from __future__ import annotations

import os

import pytest

from svcmgr.procfs import find_cgroup2_mount

from svctest import wait_until


def _cgroup_of(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] not in "ZX"
    except OSError:
        return False


@pytest.fixture
def daemon(daemon):
    daemon.env["SVCMGR_NO_SPAWN_HELPER"] = "1"
    return daemon


def _need_cgroup() -> None:
    if os.geteuid() != 0:
        pytest.skip("cgroup contracts need a root daemon here")
    if find_cgroup2_mount() is None:
        pytest.skip("no cgroup v2 mount")


def test_double_forked_daemon_is_born_in_its_cgroup(daemon):
    _need_cgroup()
    daemon.manifest("fork.toml", """
        name = "site/forker"
        duration = "contract"
        [methods.start]
        exec = "setsid sleep 1000 & sleep 1000 & exit 0"
        """)
    daemon.start()
    daemon.wait_state("svc:/site/forker:default", "online")
    assert "cgroup v2" in daemon.log_text()
    pids = daemon.pids("svc:/site/forker:default")
    assert len(pids) == 2
    groups = {_cgroup_of(p) for p in pids}
    assert len(groups) == 1 and "/svcmgr-" in groups.pop()
    assert "/svcmgr-" not in _cgroup_of(daemon.pid)
    daemon.cli("svcadm", "disable", "-s", "site/forker", check=True)
    assert daemon.pids("svc:/site/forker:default") == []
    assert not [p for p in pids if _alive(p)]


def test_daemon_goes_home_when_a_start_method_cannot_run(daemon):
    _need_cgroup()
    daemon.manifest("bad.toml", """
        name = "site/missing"
        duration = "child"
        [methods.start]
        exec = ["/nonexistent/program"]
        """)
    daemon.manifest("good.toml", """
        name = "site/good"
        duration = "child"
        [methods.start]
        exec = ["sleep", "1000"]
        """)
    daemon.start()
    daemon.wait_state("svc:/site/missing:default", "maintenance")
    daemon.wait_state("svc:/site/good:default", "online")
    assert "/svcmgr-" not in _cgroup_of(daemon.pid)
    (pid,) = daemon.pids("svc:/site/good:default")
    assert "/svcmgr-" in _cgroup_of(pid)


def test_escaped_processes_are_claimed_among_many_process_groups(daemon):
    """--no-cgroup: the marker scan skips other contracts' groups, never a process with a session of its own."""
    for i in range(5):
        daemon.manifest(f"plain{i}.toml", f"""
            name = "site/plain{i}"
            duration = "child"
            [methods.start]
            exec = ["sleep", "1000"]
            """)
    daemon.manifest("fork.toml", """
        name = "site/forker"
        duration = "contract"
        [methods.start]
        exec = "setsid sleep 1000 & sleep 1000 & exit 0"
        """)
    daemon.start("--no-cgroup")
    daemon.wait_state("svc:/site/forker:default", "online")
    for i in range(5):
        daemon.wait_state(f"svc:/site/plain{i}:default", "online")
    pids = daemon.pids("svc:/site/forker:default")
    assert len(pids) == 2
    sessions = {int(open(f"/proc/{p}/stat").read().rsplit(") ", 1)[1].split()[3]) for p in pids}  # noqa: SIM115
    assert len(sessions) == 2  # one of them made a session of its own, and is still claimed
    daemon.cli("svcadm", "disable", "-s", "site/forker", check=True)
    assert not [p for p in pids if _alive(p)]
    for i in range(5):
        assert daemon.state(f"svc:/site/plain{i}:default") == "online"


def test_a_lone_escaped_process_keeps_its_emptied_group_online(daemon):
    """--no-cgroup: the group empties as the start method exits, and only a process that made its own
    session is left; the orphan check finds it (the contract is not empty), and its death restarts it."""
    daemon.manifest("lone.toml", """
        name = "site/lone"
        duration = "contract"
        [methods.start]
        exec = "setsid sleep 1000 & exit 0"
        [restart]
        limit = 100
        """)
    daemon.manifest("other.toml", """
        name = "site/other"
        duration = "child"
        [methods.start]
        exec = ["sleep", "1000"]
        """)
    daemon.start("--no-cgroup")
    info = daemon.wait_state("svc:/site/lone:default", "online")
    (pid,) = daemon.pids("svc:/site/lone:default")
    assert info["state"] == "online"
    os.kill(pid, 9)
    wait_until(lambda: [p for p in daemon.pids("svc:/site/lone:default") if p != pid and _alive(p)],
               what="a new process for site/lone")
    # a new member shows while the start method may still run (offline, next state online): its exit
    # empties the group again, and the orphan check must keep the instance online with the new process
    daemon.wait_state("svc:/site/lone:default", "online")
    (new,) = daemon.pids("svc:/site/lone:default")
    assert new != pid and _alive(new)
    assert daemon.info("svc:/site/lone:default")["state"] == "online"
    assert daemon.state("svc:/site/other:default") == "online"
