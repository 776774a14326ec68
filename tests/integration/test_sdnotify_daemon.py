"""svcmgrd speaks systemd's notify protocol to a real datagram socket that the test owns.

READY=1 comes only once the services have settled (a slow one included), WATCHDOG=1
keeps coming from the event loop, SIGHUP brings RELOADING=1 then READY=1, and SIGTERM
brings STOPPING=1 while the daemon is still stopping its services. Nothing the daemon
starts inherits NOTIFY_SOCKET or WATCHDOG_*.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from svctest import wait_until


class NotifySocket:
    """A datagram socket like systemd's: records every message with what the daemon showed then."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[dict[str, str]] = []
        self.on_message: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            msg: dict[str, Any] = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            if self.on_message is not None:
                try:
                    msg["_seen"] = self.on_message(msg)
                except Exception as e:  # noqa: BLE001 - shown by the test that reads it
                    msg["_seen"] = f"error: {e!r}"
            self.messages.append(msg)

    def having(self, key: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if key in m]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def notify_socket(daemon) -> Iterator[NotifySocket]:
    s = NotifySocket(daemon.root / "sd.sock")
    try:
        yield s
    finally:
        s.close()


SLOW_PY = """
import os, socket, sys, time
open(sys.argv[1], "w").write(repr(dict(os.environ)))
time.sleep(1.5)  # slow to be ready: READY=1 must wait for it
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[2])))
s.listen()
time.sleep(3600)
"""

SLOW = """
name = "site/slow"
description = "takes a while to be ready"
duration = "child"
[methods.start]
exec = ["python3", "{script}", "{env}", "{port}"]
timeout = "20s"
[methods.stop]
exec = ["sh", "-c", "sleep 1; exit 0"]
[readiness]
tcp = "127.0.0.1:{port}"
"""

AFTER = """
name = "site/after"
duration = "child"
[methods.start]
exec = ["sleep", "3600"]
[[dependencies]]
name = "slow"
fmris = ["svc:/site/slow:default"]
"""

ALONE = """
name = "site/alone"
duration = "child"
[methods.start]
exec = ["sleep", "3600"]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ready_watchdog_reload_and_stopping_arrive_at_the_right_moments(daemon, notify_socket):
    env_file = daemon.root / "service.env"
    script = daemon.root / "slow.py"
    script.write_text(SLOW_PY)
    daemon.manifest("slow.toml", SLOW.format(script=script, env=env_file, port=_free_port()))
    daemon.manifest("after.toml", AFTER)
    daemon.env["NOTIFY_SOCKET"] = str(notify_socket.path)
    daemon.env["WATCHDOG_USEC"] = "400000"

    def snapshot(msg: dict[str, str]) -> Any:
        # What svcs shows at the moment a message arrives.
        if "READY" in msg and "_ready_seen" not in notify_socket.__dict__:
            notify_socket._ready_seen = True
            return {i["fmri"]: (i["state"], i["nstate"]) for i in daemon.call("list")}
        if "STOPPING" in msg:
            return {"daemon_alive": daemon.proc is not None and daemon.proc.poll() is None}
        return None

    notify_socket.on_message = snapshot
    daemon.start()
    ready = wait_until(lambda: notify_socket.having("READY"), 30, what="READY=1")[0]
    # READY only after everything settled: the slow service and the one waiting for it are online.
    assert ready["_seen"] == {"svc:/site/slow:default": ("online", None),
                              "svc:/site/after:default": ("online", None)}
    assert ready["STATUS"] == "2 of 2 instances online"
    first_ready = notify_socket.messages.index(ready)
    starting = [m for m in notify_socket.messages[:first_ready] if m.get("STATUS", "").startswith("Starting")]
    assert starting, "STATUS lines while the services start"
    assert not any("WATCHDOG" in m and "READY" in m for m in notify_socket.messages)
    # WATCHDOG=1 keeps arriving after READY (WATCHDOG_USEC=400ms: one every 200ms).
    wait_until(lambda: len([m for m in notify_socket.messages[first_ready:] if "WATCHDOG" in m]) >= 5, 15,
               what="five watchdog pings after READY")
    # Services never see the daemon's notify socket or watchdog.
    seen_env = env_file.read_text()
    assert "NOTIFY_SOCKET" not in seen_env and "WATCHDOG_USEC" not in seen_env
    assert "SMF_FMRI" in seen_env
    # SIGHUP: RELOADING=1, then READY=1 again.
    n = len(notify_socket.messages)
    os.kill(daemon.pid, signal.SIGHUP)
    wait_until(lambda: any("READY" in m for m in notify_socket.messages[n:]), 15, what="READY after reload")
    later = notify_socket.messages[n:]
    reload_at = next(i for i, m in enumerate(later) if "RELOADING" in m)
    assert later[reload_at]["MONOTONIC_USEC"].isdigit()
    assert any("READY" in m for m in later[reload_at + 1:])
    # SIGTERM: STOPPING=1 arrives while the daemon still runs its services' stop methods.
    os.kill(daemon.pid, signal.SIGTERM)
    stopping = wait_until(lambda: notify_socket.having("STOPPING"), 15, what="STOPPING=1")[0]
    assert stopping["_seen"] == {"daemon_alive": True}
    assert stopping["STATUS"] == "Stopping 2 running instances"
    assert daemon.proc is not None
    assert daemon.proc.wait(30) == 0
    after = notify_socket.messages[notify_socket.messages.index(stopping) + 1:]
    assert not any("READY" in m for m in after)


def test_without_notify_socket_the_daemon_sends_nothing_and_works(daemon, notify_socket):
    """The same daemon without NOTIFY_SOCKET: no datagram at all, services run as usual."""
    daemon.manifest("alone.toml", ALONE)
    daemon.env.pop("NOTIFY_SOCKET", None)
    daemon.start()
    daemon.wait_state("svc:/site/alone:default", "online")
    wait_until(lambda: "ready" in daemon.log_text(), 10, what="the daemon's ready line")
    daemon.stop()
    assert notify_socket.messages == []


def test_watchdog_pid_of_another_process_means_no_pings(daemon, notify_socket):
    daemon.manifest("alone.toml", ALONE)
    daemon.env.update(NOTIFY_SOCKET=str(notify_socket.path), WATCHDOG_USEC="200000", WATCHDOG_PID="1")
    daemon.start()
    wait_until(lambda: notify_socket.having("READY"), 30, what="READY=1")
    # Let several would-be periods pass, then stop; the daemon never pinged.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        time.sleep(0.1)
    daemon.stop()
    wait_until(lambda: notify_socket.having("STOPPING"), 10, what="STOPPING=1")
    assert not notify_socket.having("WATCHDOG")
    with contextlib.suppress(OSError):
        os.unlink(notify_socket.path)
