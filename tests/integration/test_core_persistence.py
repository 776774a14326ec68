"""After kill -9 of the daemon and a restart, every setting an operator made is still there."""

from svctest import wait_until


def _child(name, enabled=True):
    return f"""
        name = "{name}"
        duration = "child"
        enabled = {"true" if enabled else "false"}
        [methods.start]
        exec = ["sleep", "1000"]
        [properties.app]
        colour = "blue"
        """


def test_operator_settings_survive_kill9(daemon):
    for n in ("keep", "off", "tmpoff", "maint", "edited"):
        daemon.manifest(f"{n}.toml", _child(f"p/{n}"))
    daemon.manifest("later.toml", _child("p/later", enabled=False))
    daemon.start()
    for n in ("keep", "off", "tmpoff", "maint", "edited"):
        daemon.wait_state(f"svc:/p/{n}:default", "online")
    kept_pids = daemon.pids("svc:/p/keep:default")

    daemon.cli("svcadm", "disable", "-s", "off", check=True)
    daemon.cli("svcadm", "disable", "-s", "-t", "tmpoff", check=True)
    daemon.cli("svcadm", "mark", "maintenance", "maint", check=True)
    daemon.cli("svcadm", "enable", "-s", "later", check=True)
    daemon.cli("svccfg", "-s", "edited", "setprop", "app/colour", "=", "astring:", "red", check=True)
    daemon.wait_state("svc:/p/maint:default", "maintenance")

    daemon.kill9()
    daemon.start(manifests=False)

    daemon.wait_state("svc:/p/off:default", "disabled")
    daemon.wait_state("svc:/p/maint:default", "maintenance")
    assert "Maintenance requested by an administrator." in daemon.cli("svcs", "-x", "maint").stdout
    daemon.wait_state("svc:/p/later:default", "online")
    daemon.wait_state("svc:/p/tmpoff:default", "online")  # temporary: gone with the daemon
    # The running service was adopted, not restarted.
    assert daemon.pids("svc:/p/keep:default") == kept_pids
    # the new daemon's first line waits for its file; one process is "1 process", not "1 processes"
    assert len(kept_pids) == 1
    assert "(1 process) after a daemon restart" in daemon.logged("svc:/p/keep:default", "Adopted running contract")
    # The edit is still pending: listprop shows it, the running snapshot does not.
    listed = daemon.cli("svccfg", "-s", "edited", "listprop", "app/*", check=True).stdout
    assert "red" in listed
    assert daemon.cli("svcprop", "-p", "app/colour", "edited", check=True).stdout.strip() == "blue"
    daemon.cli("svcadm", "refresh", "edited", check=True)
    assert daemon.cli("svcprop", "-p", "app/colour", "edited", check=True).stdout.strip() == "red"


def test_adopted_service_is_still_supervised(daemon):
    daemon.manifest("s.toml", _child("p/s") + "\n[restart]\nlimit = 10\n")
    daemon.start()
    daemon.wait_state("svc:/p/s:default", "online")
    (pid,) = daemon.pids("svc:/p/s:default")
    daemon.kill9()
    daemon.start(manifests=False)
    daemon.wait_state("svc:/p/s:default", "online")
    assert daemon.pids("svc:/p/s:default") == [pid]
    import os
    import signal

    os.kill(pid, signal.SIGKILL)  # not the new daemon's child: watched through a pidfd
    new = wait_until(lambda: (p := daemon.pids("svc:/p/s:default")) and pid not in p and p)
    assert new and new != [pid]
    daemon.cli("svcadm", "disable", "-s", "s", check=True)


def test_sigusr2_restarts_the_daemon_and_leaves_services_running(daemon):
    import os
    import signal

    daemon.manifest("s.toml", _child("p/s"))
    daemon.start()
    daemon.wait_state("svc:/p/s:default", "online")
    pids = daemon.pids("svc:/p/s:default")
    os.kill(daemon.pid, signal.SIGUSR2)
    assert daemon.proc.wait(30) == 75
    daemon.proc = None
    daemon.start(manifests=False)
    daemon.wait_state("svc:/p/s:default", "online")
    assert daemon.pids("svc:/p/s:default") == pids


def test_clean_stop_and_start_restarts_services(daemon):

    daemon.manifest("s.toml", _child("p/s"))
    daemon.start()
    daemon.wait_state("svc:/p/s:default", "online")
    first = daemon.pids("svc:/p/s:default")
    assert daemon.stop() == 0
    daemon.start(manifests=False)
    daemon.wait_state("svc:/p/s:default", "online")
    assert daemon.pids("svc:/p/s:default") != first
