"""systemd/svcmgrd.service: systemd accepts it, and its choices hold against the real daemon.

systemd is not PID 1 on these machines, so the unit is checked with ``systemd-analyze
verify`` and the behaviour it relies on is reproduced by hand: with ``KillMode=process`` a
watchdog timeout sends SIGABRT to the daemon alone, ``Restart=on-failure`` starts it again,
and the services it ran must still run, adopted by the new daemon.
"""

from __future__ import annotations

import configparser
import os
import resource
import shutil
import signal
import subprocess
import sys

import pytest

from svcmgr.daemon import READY_TIMEOUT
from svcmgr.units import parse_duration

from svctest import REPO, wait_until

UNIT = REPO / "systemd" / "svcmgrd.service"


def _unit() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(UNIT)
    return cp


def test_systemd_accepts_the_unit(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    daemon_bin = shutil.which("svcmgrd", path=os.path.dirname(sys.executable)) or sys.executable
    unit = tmp_path / "svcmgrd.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/svcmgrd", daemon_bin))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    # A misspelt value is reported on stderr: the check above would see it.
    bad = tmp_path / "bad.service"
    bad.write_text(unit.read_text().replace("KillMode=process", "KillMode=proces"))
    r = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True, text=True, timeout=60)
    assert "kill mode" in r.stderr.lower()


def test_unit_choices_match_the_daemon():
    s = _unit()["Service"]
    assert s["Type"] == "notify" and s["NotifyAccess"] == "main"
    assert s["Delegate"] == "yes" and s["KillMode"] == "process" and s["OOMPolicy"] == "continue"
    assert s["RuntimeDirectory"] == "svcmgr" and s["RuntimeDirectoryPreserve"] == "yes"
    assert s["StateDirectory"] == "svcmgr" and s["LogsDirectory"] == "svcmgr"
    # READY=1 is sent at the latest READY_TIMEOUT after start: systemd must wait longer.
    assert parse_duration(s["TimeoutStartSec"]) > READY_TIMEOUT
    assert parse_duration(s["WatchdogSec"]) >= 2
    assert s["Restart"] == "on-failure"
    # Options that would break supervision or the services under it are absent or off.
    for key, bad in (("ProtectControlGroups", "yes"), ("ProtectKernelLogs", "yes"), ("NoNewPrivileges", "yes"),
                     ("PrivateTmp", "yes"), ("ProtectSystem", "strict"), ("RestrictNamespaces", "yes")):
        assert s.get(key, "no") != bad, key


SERVICE = """
name = "site/steady"
duration = "child"
[methods.start]
exec = ["sleep", "3600"]
"""


@pytest.fixture
def no_core_files():
    """SIGABRT dumps core where the limit allows: not into the work tree."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


def test_daemon_killed_alone_leaves_services_running_and_adopts_them(daemon, no_core_files):
    """What KillMode=process buys: a watchdog kill (SIGABRT to the daemon only), then a restart."""
    daemon.manifest("steady.toml", SERVICE)
    daemon.start()
    daemon.wait_state("svc:/site/steady:default", "online")
    (pid,) = daemon.pids("svc:/site/steady:default")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGABRT)
    assert daemon.proc.wait(30) == -signal.SIGABRT
    daemon.proc = None
    assert os.path.exists(f"/proc/{pid}"), "the service outlived its daemon"
    daemon.start(manifests=False)
    info = daemon.wait_state("svc:/site/steady:default", "online")
    assert daemon.pids("svc:/site/steady:default") == [pid]
    assert info["state"] == "online"
    daemon.logged("svc:/site/steady:default", "Adopted running contract")  # its first line waits for the file
    # And a normal stop (SIGTERM, what systemctl stop sends) still stops it.
    assert daemon.stop() == 0
    wait_until(lambda: _gone(pid), 10, what="the adopted service to stop with the daemon")


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True
