"""Every process a service makes belongs to its contract and ends with it, in both contract kinds."""

import os
import signal
import sys

import pytest

from svctest import _alive_marked, wait_until

DAEMONIZE = (
    "import os, sys, time\n"
    "if os.fork(): sys.exit(0)\n"
    "os.setsid()\n"
    "if os.fork(): sys.exit(0)\n"
    "if os.fork() == 0:\n"
    "    time.sleep(1000)\n"
    "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))\n"
    "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "time.sleep(1000)\n"
)

MODES = pytest.mark.parametrize("mode", ["cgroup", "pgid"])


def _args(mode):
    return ["--no-cgroup"] if mode == "pgid" else []


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _zombies_of(pid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().split(")")[-1].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == pid:
                out.append(int(name))
    return out


@MODES
def test_double_forked_daemon_is_tracked_and_stopped(daemon, mode, tmp_path):
    pidfile = tmp_path / "daemon.pid"
    daemon.manifest("forker.toml", f"""
        name = "test/forker"
        [methods.start]
        exec = [{sys.executable!r}, "-c", {DAEMONIZE!r}, "{pidfile}"]
        """)
    daemon.start(*_args(mode))
    daemon.wait_state("svc:/test/forker:default", "online")
    wait_until(pidfile.exists)
    main = int(pidfile.read_text())
    # The double-forked daemon and its worker, once the intermediate processes have exited.
    pids = wait_until(lambda: (p := daemon.pids("svc:/test/forker:default")) and main in p and len(p) == 2 and p,
                      what="both daemon processes in the contract")
    out = daemon.cli("svcs", "-p", "forker", check=True).stdout
    assert str(main) in out
    daemon.cli("svcadm", "disable", "-s", "forker", check=True)
    wait_until(lambda: not any(_alive(p) for p in pids), what="all contract processes to end")
    assert daemon.state("svc:/test/forker:default") == "disabled"
    assert _zombies_of(daemon.pid) == []


@MODES
def test_daemon_that_dies_is_restarted_when_its_contract_empties(daemon, mode, tmp_path):
    pidfile = tmp_path / "daemon.pid"
    daemon.manifest("forker.toml", f"""
        name = "test/forker"
        [methods.start]
        exec = [{sys.executable!r}, "-c", {DAEMONIZE!r}, "{pidfile}"]
        [restart]
        limit = 100
        """)
    daemon.start(*_args(mode))
    daemon.wait_state("svc:/test/forker:default", "online")
    wait_until(pidfile.exists)
    first = int(pidfile.read_text())
    pidfile.unlink()
    wait_until(lambda: len(daemon.pids("svc:/test/forker:default")) == 2)
    worker = next(p for p in daemon.pids("svc:/test/forker:default") if p != first)
    # The daemonized process (an orphan the supervisor reaped) killed from outside is an error:
    # the whole service restarts, and its worker ends with the old contract.
    os.kill(first, signal.SIGKILL)
    wait_until(pidfile.exists, what="a new start")
    assert int(pidfile.read_text()) != first
    wait_until(lambda: not _alive(worker), what="the old worker to be killed with its contract")
    daemon.wait_state("svc:/test/forker:default", "online")
    assert "died on Killed (9)" in daemon.log("svc:/test/forker:default")


@MODES
def test_stopping_escalates_to_sigkill(daemon, mode):
    daemon.manifest("stubborn.toml", """
        name = "test/stubborn"
        duration = "child"
        [methods.start]
        exec = "trap '' TERM; echo up; while :; do sleep 0.1; done"
        [methods.stop]
        exec = ":kill"
        timeout = "1s"
        """)
    daemon.start(*_args(mode))
    daemon.wait_state("svc:/test/stubborn:default", "online")
    wait_until(lambda: "up" in daemon.log("svc:/test/stubborn:default"))
    pids = daemon.pids("svc:/test/stubborn:default")
    daemon.cli("svcadm", "disable", "-s", "stubborn", check=True)
    assert not any(_alive(p) for p in pids)
    assert "killing contract" in daemon.log("svc:/test/stubborn:default")


def test_daemon_shutdown_leaves_no_process_behind(daemon, tmp_path):
    daemon.manifest("many.toml", """
        name = "test/many"
        duration = "child"
        [methods.start]
        exec = "sleep 1000 & sleep 1000 & exec sleep 1000"
        [instances.a]
        [instances.b]
        [instances.c]
        """)
    daemon.start()
    pids = []
    for i in "abc":
        daemon.wait_state(f"svc:/test/many:{i}", "online")
        pids += wait_until(lambda i=i: (p := daemon.pids(f"svc:/test/many:{i}")) and len(p) == 3 and p,
                           what=f"three processes in svc:/test/many:{i}")
    assert daemon.stop() == 0
    assert not any(_alive(p) for p in pids)



def test_a_daemon_stopped_during_its_boot_leaves_no_group_behind(daemon):
    """Found stopping a daemon in the middle of a boot of 1,000: the processes ended, but the groups of the starts
    the stop cut short stayed, hundreds under the daemon's own, until a test's clean-up or the next daemon on
    the same root."""
    names = "\n".join(f"[instances.i{n}]" for n in range(300))
    daemon.manifest("many.toml", f'name = "test/many"\nduration = "child"\n[methods.start]\n'
                                 f'exec = ["/bin/sleep", "1000"]\n{names}\n')
    daemon.start(wait=False)
    wait_until(lambda: "contracts by " in daemon.log_text(), what="the daemon's first line")
    if "cgroup v2" not in daemon.log_text():
        pytest.skip("the daemon runs without cgroups here")
    base = daemon.log_text().split("contracts by cgroup v2 at ")[1].split(" ")[0]
    wait_until(lambda: os.path.isdir(base) and len(os.listdir(base)) > 100, what="the first starts' groups")
    assert daemon.stop() == 0
    assert _alive_marked(daemon.root) == []  # the starts the stop cut short: their children too
    assert not os.path.exists(base), [n for n in os.listdir(base) if os.path.isdir(os.path.join(base, n))][:10]
    assert "left in" not in daemon.log_text()  # ended by their starts, not found by the last sweep
