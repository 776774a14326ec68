"""The spawn helper (``svcmgr.forkserver``): a small process that creates the daemon's children.

Its children are the daemon's own (``CLONE_PARENT``), born in their contract's group; a program
that cannot be executed is reported as before; a helper that dies leaves the daemon spawning by
itself; and it ends with the daemon."""

from __future__ import annotations

import os
import signal

import pytest

from svcmgr.procfs import find_cgroup2_mount

from svctest import wait_until


def _helpers(daemon_pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat.rsplit(") ", 1)[1].split()[1])
        if comm == "svcmgr-spawn" and ppid == daemon_pid:
            out.append(int(name))
    return out


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(") ", 1)[1].split()[1])


def _ended(pid: int) -> bool:
    """Gone, or a zombie: once the daemon is gone its orphans go to pid 1, which may be slow to reap."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _cgroup_of(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        return next((line[3:].strip() for line in f if line.startswith("0::")), "")


def _sleeper(daemon, name: str) -> str:
    daemon.manifest(f"{name}.toml", f"""
        name = "site/{name}"
        duration = "child"
        [methods.start]
        exec = ["sleep", "1000"]
        [restart]
        limit = 100
        """)
    return f"svc:/site/{name}:default"


@pytest.mark.parametrize("mode", ["cgroup", "pgid"])
def test_children_of_the_helper_are_the_daemons_own(daemon, mode):
    if mode == "cgroup" and (os.geteuid() != 0 or find_cgroup2_mount() is None):
        pytest.skip("cgroup contracts need a root daemon and a cgroup v2 mount")
    fmri = _sleeper(daemon, "a")
    daemon.start(*(["--no-cgroup"] if mode == "pgid" else []))
    daemon.wait_state(fmri, "online")
    (helper,) = _helpers(daemon.pid)
    (pid,) = daemon.pids(fmri)
    assert _ppid(pid) == daemon.pid
    assert os.getpgid(pid) == pid
    if mode == "cgroup":
        assert "/svcmgr-" in _cgroup_of(pid) and "/svcmgr-" not in _cgroup_of(helper)
    os.kill(pid, signal.SIGKILL)  # reaped by the daemon, which restarts it through the helper
    wait_until(lambda: [p for p in daemon.pids(fmri) if p != pid], what="a new process")
    daemon.wait_state(fmri, "online")
    (again,) = daemon.pids(fmri)
    assert _ppid(again) == daemon.pid
    daemon.stop()
    wait_until(lambda: _ended(helper), what="the helper to end with the daemon")


def test_a_program_that_cannot_run_is_reported_by_name(daemon):
    daemon.manifest("bad.toml", """
        name = "site/missing"
        duration = "child"
        [methods.start]
        exec = ["/nonexistent/program"]
        """)
    fmri = _sleeper(daemon, "good")
    daemon.start()
    daemon.wait_state("svc:/site/missing:default", "maintenance")
    daemon.wait_state(fmri, "online")
    log = daemon.log("svc:/site/missing:default")
    assert "Start method could not be executed: No such file or directory" in log
    assert _helpers(daemon.pid), "the helper keeps serving after a failed exec"


def test_a_killed_helper_leaves_the_daemon_spawning_by_itself(daemon):
    first, second = _sleeper(daemon, "first"), _sleeper(daemon, "second")
    daemon.start()
    daemon.wait_state(first, "online")
    # a child the helper has just cloned (CLONE_PARENT: the daemon's) bears its name until it execs
    wait_until(lambda: len(_helpers(daemon.pid)) == 1, what="the helper alone under its name")
    (helper,) = _helpers(daemon.pid)
    os.kill(helper, signal.SIGKILL)
    wait_until(lambda: "spawning in the daemon from now on" in daemon.log_text(), what="the daemon to notice")
    daemon.wait_state(second, "online")
    (pid,) = daemon.pids(second)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: [p for p in daemon.pids(second) if p != pid], what="a restart without the helper")
    daemon.wait_state(second, "online")
    assert daemon.state(first) == "online"
    assert not _helpers(daemon.pid)
