"""The spawn helper (``svcmgr.forkserver``, ``svcmgr.spawnhelper``): a small process that creates the
daemon's children.

A child it makes with posix_spawn is its own, set up as before (its own process group, stdin
/dev/null, no other descriptor, default signals), born in its contract's group (the helper stands
in the group meanwhile, and only meanwhile); a lone spawn into a group is cloned, the daemon's
own child (``CLONE_PARENT``). The ends of its children reach the daemon (relayed, or reaped there
once the helper is gone or, idle, has handed them over); a program that cannot be executed is
reported as before; a helper that dies leaves the daemon spawning by itself; and it ends with the
daemon."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from svcmgr.paths import Paths
from svcmgr.procfs import find_cgroup2_mount, read_stat
from svcmgr.spawnhelper import PRIORITY

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


def _status(pid: int, field: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        return next(line.split(":", 1)[1].strip() for line in f if line.startswith(field + ":"))


def _ahead(helper: int) -> bool:
    """Whether the helper runs ahead of the daemon (a lower nice value: root's daemon may set one; another's keeps
    its own) and has its children born without it."""
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    want = max(-20, mine + PRIORITY) if os.geteuid() == 0 else mine
    return os.getpriority(os.PRIO_PROCESS, helper) == want and \
        os.sched_getscheduler(helper) == os.SCHED_OTHER | os.SCHED_RESET_ON_FORK


#: glibc's two internal signals (32, 33): its posix_spawn leaves them ignored in the child (every glibc, musl
#: or Go program sets its own handlers for them as it starts).
_GLIBC_INTERNAL = (1 << 31) | (1 << 32)


def _set_up_as_before(pid: int) -> None:
    """What every spawn guarantees: its own group, stdin /dev/null, no descriptor but 0-2, default signals, and
    the daemon's own scheduling (this test's, which the daemon inherits), not the helper's higher priority."""
    assert os.getpgid(pid) == pid
    assert os.sched_getscheduler(pid) == os.sched_getscheduler(0) == os.SCHED_OTHER
    assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, 0)
    # the dynamic loader of a child just exec'd holds a descriptor of its own for a moment (ld.so.cache, libc):
    # one inherited would stay
    wait_until(lambda: sorted(os.listdir(f"/proc/{pid}/fd")) == ["0", "1", "2"], 5,
               what=f"no descriptor but 0-2 in {pid}")
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    assert int(_status(pid, "SigBlk"), 16) == 0
    assert int(_status(pid, "SigIgn"), 16) & ~_GLIBC_INTERNAL == 0
    assert int(_status(pid, "SigCgt"), 16) == 0


def test_the_helpers_children_are_its_own_and_their_ends_reach_the_daemon(daemon):
    fmris = [_sleeper(daemon, f"s{i}") for i in range(3)]
    daemon.env["SVCMGR_HELPER_HANDOVER"] = "0"  # the helper keeps its children: every end is relayed
    daemon.start("--no-cgroup")  # a process-group contract: every spawn is a posix_spawn of the helper's
    for fmri in fmris:
        daemon.wait_state(fmri, "online")
    (helper,) = _helpers(daemon.pid)
    assert _ahead(helper)
    pids = [daemon.pids(fmri)[0] for fmri in fmris]
    for pid in pids:
        assert _ppid(pid) == helper
        _set_up_as_before(pid)
    os.kill(pids[0], signal.SIGKILL)  # reaped by the helper, relayed to the daemon, which restarts it
    wait_until(lambda: [p for p in daemon.pids(fmris[0]) if p != pids[0]], what="a new process")
    daemon.wait_state(fmris[0], "online")
    assert "died on Killed (9)" in daemon.log(fmris[0])
    os.kill(helper, signal.SIGKILL)  # its children go to the daemon (a subreaper), which reaps them
    wait_until(lambda: _ppid(pids[1]) == daemon.pid, what="the helper's child re-parented to the daemon")
    os.kill(pids[1], signal.SIGKILL)
    wait_until(lambda: [p for p in daemon.pids(fmris[1]) if p != pids[1]], what="a restart without the helper")
    daemon.wait_state(fmris[1], "online")
    assert "died on Killed (9)" in daemon.log(fmris[1])
    daemon.stop()
    assert all(_ended(p) for p in pids[2:])


def test_exit_codes_and_signals_relayed_by_the_helper_mean_what_they_meant(daemon):
    daemon.manifest("fatal.toml", """
        name = "t/fatal"
        [methods.start]
        exec = "exit 95"
        """)
    daemon.manifest("segv.toml", """
        name = "t/segv"
        [methods.start]
        exec = "kill -SEGV $$"
        """)
    daemon.env["SVCMGR_HELPER_HANDOVER"] = "0"  # every end relayed by the helper
    daemon.start("--no-cgroup")
    daemon.wait_state("svc:/t/fatal:default", "maintenance")
    daemon.wait_state("svc:/t/segv:default", "maintenance")
    assert "SMF_EXIT_ERR_FATAL" in daemon.log("svc:/t/fatal:default")
    assert daemon.log("svc:/t/fatal:default").count("Executing start method") == 1  # fatal: not retried
    assert "Segmentation fault (11)" in daemon.log("svc:/t/segv:default")


@pytest.mark.parametrize("mode", ["cgroup", "pgid"])
def test_an_idle_helper_hands_its_children_over_to_the_daemon(daemon, mode):
    if mode == "cgroup" and (os.geteuid() != 0 or find_cgroup2_mount() is None):
        pytest.skip("cgroup contracts need a root daemon and a cgroup v2 mount")
    fmris = [_sleeper(daemon, f"h{i}") for i in range(3)]
    daemon.start(*(["--no-cgroup"] if mode == "pgid" else []))
    for fmri in fmris:
        daemon.wait_state(fmri, "online")
    pids = [daemon.pids(fmri)[0] for fmri in fmris]
    # idle, the helper forks a successor and exits: its children are re-parented to the daemon
    wait_until(lambda: all(_ppid(p) == daemon.pid for p in pids), what="the children re-parented to the daemon")
    wait_until(lambda: len(_helpers(daemon.pid)) == 1, what="the successor alone")
    (helper,) = _helpers(daemon.pid)
    wait_until(lambda: _ahead(helper), what="the successor ahead as its predecessor was")
    os.kill(pids[0], signal.SIGKILL)  # reaped by the daemon itself
    wait_until(lambda: [p for p in daemon.pids(fmris[0]) if p != pids[0]], what="a new process")
    daemon.wait_state(fmris[0], "online")
    assert "died on Killed (9)" in daemon.log(fmris[0])
    assert _helpers(daemon.pid) == [helper] or all(_ppid(h) == daemon.pid for h in _helpers(daemon.pid))
    assert "spawning in the daemon from now on" not in daemon.log_text()
    daemon.stop()
    wait_until(lambda: all(_ended(p) for p in [*pids[1:], helper]), what="the services and the helper to end")


def test_a_lone_spawn_into_a_group_is_the_daemons_child(daemon):
    if os.geteuid() != 0 or find_cgroup2_mount() is None:
        pytest.skip("cgroup contracts need a root daemon and a cgroup v2 mount")
    fmri = _sleeper(daemon, "a")
    daemon.start()
    daemon.wait_state(fmri, "online")
    (helper,) = _helpers(daemon.pid)
    (pid,) = daemon.pids(fmri)
    assert "/svcmgr-" in _cgroup_of(pid) and "/svcmgr-" not in _cgroup_of(helper)
    os.kill(pid, signal.SIGKILL)  # a restart, alone: cloned into its group, the daemon's own child
    wait_until(lambda: [p for p in daemon.pids(fmri) if p != pid], what="a new process")
    daemon.wait_state(fmri, "online")
    (again,) = daemon.pids(fmri)
    assert _ppid(again) == daemon.pid
    assert "/svcmgr-" in _cgroup_of(again) and "/svcmgr-" not in _cgroup_of(helper)
    # its start time, from the helper's reply, is the one /proc gives: what a daemon restarted after a crash checks
    info = read_stat(again)
    assert info is not None
    wait_until(lambda: _recorded_starts(daemon, fmri) == {str(again): info.starttime}, what="the contract's record")
    _set_up_as_before(again)
    daemon.stop()
    wait_until(lambda: _ended(helper), what="the helper to end with the daemon")


def _recorded_starts(daemon, fmri: str) -> dict[str, int]:
    """The start times of the processes of ``fmri``'s contract, as the repository on disk records them."""
    db = sqlite3.connect(f"file:{Paths.for_root(str(daemon.root)).repository}?mode=ro", uri=True, timeout=10)
    try:
        (contract,) = db.execute("SELECT contract FROM instances WHERE fmri=?", (fmri,)).fetchone()
    finally:
        db.close()
    return json.loads(contract)["members"] if contract else {}


_STAND_IN = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, sys.argv[1])
    from svcmgr.spawn import default_signals
    from svcmgr.spawnhelper import Spawner
    default_signals()  # as the helper starts
    spawner = Spawner(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    group = os.open(sys.argv[2], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for burst in (True, False):  # in a burst; then right after it (the move is recent)
        print(*spawner.spawn([b"sleep", b"1000"], {}, [b"/bin/sleep"], b"/tmp", True, 1, group, burst=burst),
              flush=True)
    os.read(0, 1)
""")


def test_a_spawn_in_a_burst_is_born_in_its_group_and_the_helper_leaves_it(tmp_path):
    """The helper's own stand-in, in a process of this test's: the children are born in the group, with the
    request's directory, and the helper is back in its own group once each spawn returns."""
    mount = find_cgroup2_mount()
    if os.geteuid() != 0 or mount is None:
        pytest.skip("needs root and a cgroup v2 mount")
    group = os.path.join(mount, _cgroup_of(os.getpid()).lstrip("/"), f"svcmgr-test-{os.getpid()}")
    try:
        os.mkdir(group)
    except OSError as e:
        pytest.skip(f"cannot make a cgroup here: {e.strerror}")
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    helper = subprocess.Popen([sys.executable, "-I", "-S", "-c", _STAND_IN, package, group],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    children = []
    try:
        assert helper.stdout is not None and helper.stdin is not None
        for _ in range(2):
            stage, pid = helper.stdout.readline().split()
            assert stage == "ok"  # posix_spawned, not cloned
            children.append(int(pid))
        home = _cgroup_of(helper.pid)
        assert not home.endswith(os.path.basename(group))
        for pid in children:
            assert _cgroup_of(pid) == home.rstrip("/") + "/" + os.path.basename(group)
            assert _ppid(pid) == helper.pid
            assert os.readlink(f"/proc/{pid}/cwd") == "/tmp"
            _set_up_as_before(pid)
        assert os.readlink(f"/proc/{helper.pid}/cwd") == "/"
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        helper.communicate("x")
        wait_until(lambda: not Path(group, "cgroup.procs").read_text(), what="the group to empty")
        os.rmdir(group)


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


def test_a_burst_is_shared_with_a_spare_helper_that_leaves_its_children_to_the_daemon(daemon):
    """A burst deeper than ``forkserver.DEEP``: the helper forks a spare, whose children are set up as the
    helper's are; idle, the spare is let go (its children re-parented to the daemon, which reaps them), and
    the helper serves on alone. (How much of a burst the spare makes depends on the machine's speed: a
    spare's own children are checked in ``test_core_helper_files``.)"""
    fmris = [_sleeper(daemon, f"b{i}") for i in range(40)]
    daemon.env["SVCMGR_HELPER_HANDOVER"] = "0"  # the helper keeps its children: the daemon's came from a spare
    daemon.start("--no-cgroup")  # every spawn a posix_spawn, by the helper or its spare
    for fmri in fmris:
        daemon.wait_state(fmri, "online")
    wait_until(lambda: len(_helpers(daemon.pid)) == 1 and not _helpers(_helpers(daemon.pid)[0]),
               what="the spare let go")
    (helper,) = _helpers(daemon.pid)
    pids = [daemon.pids(fmri)[0] for fmri in fmris]
    parents = {p: _ppid(p) for p in pids}
    assert set(parents.values()) <= {helper, daemon.pid}
    spared = [p for p in pids if parents[p] == daemon.pid]
    for pid in pids:
        _set_up_as_before(pid)
    victim = spared[0] if spared else pids[0]
    fmri = fmris[pids.index(victim)]
    os.kill(victim, signal.SIGKILL)  # reaped by the daemon itself
    wait_until(lambda: [p for p in daemon.pids(fmri) if p != victim], what="a new process")
    daemon.wait_state(fmri, "online")
    assert "died on Killed (9)" in daemon.log(fmri)
    assert "spawning in the daemon from now on" not in daemon.log_text()
    daemon.stop()
    wait_until(lambda: all(_ended(p) for p in [*pids, helper]), what="the services and the helper to end")
