"""The daemon itself: method context, user switching, shutdown order, configuration and SIGHUP."""

import os
import signal
import sys

import pytest

from svctest import wait_until


def test_method_context_environment_and_user(daemon, tmp_path):
    out = tmp_path / "ctx"
    os.chmod(tmp_path, 0o777)
    daemon.manifest("ctx.toml", f"""
        name = "d/ctx"
        duration = "transient"
        working_directory = "/tmp"
        [environment]
        GREETING = "hello %i"
        [methods.start]
        exec = "echo $(pwd) $GREETING $SMF_FMRI $SMF_METHOD $SMF_RESTARTER > {out}"
        """)
    daemon.start()
    daemon.wait_state("svc:/d/ctx:default", "online")
    assert out.read_text().split() == ["/tmp", "hello", "default", "svc:/d/ctx:default", "start",
                                       "svc:/system/svc/restarter:default"]


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs a root daemon")
def test_methods_run_as_the_manifests_user_and_group(daemon):
    shared = daemon.root / "shared"  # a folder nobody can reach (pytest's tmp_path is private)
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    out = shared / "who"
    daemon.manifest("who.toml", f"""
        name = "d/who"
        duration = "transient"
        user = "nobody"
        group = "nogroup"
        [methods.start]
        exec = "echo $(id -u) $(id -g) $HOME $USER > {out}"
        """)
    daemon.start()
    daemon.wait_state("svc:/d/who:default", "online")
    assert out.read_text().split() == ["65534", "65534", "/nonexistent", "nobody"]


def test_missing_user_is_a_configuration_error(daemon):
    daemon.manifest("ghost.toml", """
        name = "d/ghost"
        user = "no-such-user-here"
        [methods.start]
        exec = ["sleep", "1000"]
        """)

    daemon.start()
    daemon.wait_state("svc:/d/ghost:default", "maintenance")
    assert "user 'no-such-user-here' does not exist" in daemon.cli("svcs", "-x", check=True).stdout


def test_refresh_runs_the_refresh_method(daemon, tmp_path):
    out = tmp_path / "refreshed"
    daemon.manifest("r.toml", f"""
        name = "d/r"
        duration = "child"
        [methods.start]
        exec = ["sleep", "1000"]
        [methods.refresh]
        exec = "echo %m >> {out}"
        """)
    daemon.start()
    daemon.wait_state("svc:/d/r:default", "online")
    pids = daemon.pids("svc:/d/r:default")
    daemon.cli("svcadm", "refresh", "r", check=True)
    wait_until(lambda: out.exists() and out.read_text() == "refresh\n")
    assert daemon.pids("svc:/d/r:default") == pids


def test_sigterm_stops_dependents_before_their_dependencies(daemon, tmp_path):
    order = tmp_path / "order"
    prev = None
    for name in ("base", "mid", "top"):
        dep = f'[[dependencies]]\nname = "p"\nfmris = ["svc:/d/{prev}"]\n' if prev else ""
        daemon.manifest(f"{name}.toml", f"""
            name = "d/{name}"
            duration = "child"
            [methods.start]
            exec = ["sleep", "1000"]
            [methods.stop]
            exec = "echo {name} >> {order}; sleep 0.2"
            """ + dep)
        prev = name
    daemon.start()
    daemon.wait_state("svc:/d/top:default", "online")
    assert daemon.stop() == 0
    assert order.read_text().split() == ["top", "mid", "base"]


def test_bad_configuration_is_refused_at_start(daemon, tmp_path):
    cfg = tmp_path / "node.toml"
    cfg.write_text('[node]\nname = "bad name!"\n[colour]\nx = 1\n')
    import subprocess

    r = subprocess.run([sys.executable, "-m", "svcmgr.daemon", "--root", str(daemon.root), "--config", str(cfg)],
                       capture_output=True, text=True, env=daemon.env, timeout=30)
    assert r.returncode == 2
    assert f"{cfg}: node.name: 'bad name!' is not a valid name" in r.stderr
    assert f"{cfg}: colour: unknown section" in r.stderr


def test_sighup_rereads_configuration_and_keeps_running_on_a_bad_one(daemon, tmp_path):
    cfg = tmp_path / "node.toml"
    cfg.write_text('[node]\nname = "alpha"\n')
    daemon.manifest("s.toml", 'name = "d/s"\nduration = "child"\n[methods.start]\nexec = ["sleep", "1000"]\n')
    daemon.start("--config", str(cfg))
    daemon.wait_state("svc:/d/s:default", "online")
    assert daemon.call("ping")["node"] == "alpha"
    cfg.write_text("[node\n")
    os.kill(daemon.pid, signal.SIGHUP)
    wait_until(lambda: "configuration refused, keeping the running one" in daemon.log_text())
    assert daemon.state("svc:/d/s:default") == "online"
    cfg.write_text('[node]\nname = "alpha"\n')
    os.kill(daemon.pid, signal.SIGHUP)
    wait_until(lambda: "configuration re-read" in daemon.log_text())


def test_second_daemon_on_the_same_root_is_refused(daemon):
    daemon.start()
    import subprocess

    r = subprocess.run([sys.executable, "-m", "svcmgr.daemon", "--root", str(daemon.root)], capture_output=True,
                       text=True, env=daemon.env, timeout=30)
    assert r.returncode == 1 and "another svcmgrd" in r.stderr
    assert daemon.call("ping")
