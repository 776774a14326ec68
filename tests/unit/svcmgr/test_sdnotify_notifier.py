"""The notify protocol's client side against real datagram sockets (a path and an abstract name)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from svcmgr.sdnotify import Notifier


def _recv(s: socket.socket) -> list[str]:
    return s.recv(4096).decode().splitlines()


def test_path_socket_gets_ready_status_stopping(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(tmp_path / "n.sock"))
        n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "n.sock")})
        assert n.enabled and n.watchdog_interval is None
        assert n.ready("1 of 1 instances online")
        assert _recv(s) == ["READY=1", "STATUS=1 of 1 instances online"]
        assert n.status("same\nline") and not n.status("same\nline")  # one line; repeats are not sent
        assert _recv(s) == ["STATUS=same line"]
        assert n.reloading()
        first = _recv(s)
        assert first[0] == "RELOADING=1" and first[1].startswith("MONOTONIC_USEC=")
        assert n.stopping("bye")
        assert _recv(s) == ["STOPPING=1", "STATUS=bye"]
        n.close()


def test_abstract_socket_and_watchdog() -> None:
    name = f"svcmgr-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        n = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})
        assert n.watchdog_interval == 30.0
        assert n.watchdog()
        assert _recv(s) == ["WATCHDOG=1"]
        n.close()


def test_without_systemd_nothing_is_sent() -> None:
    n = Notifier({})
    assert not n.enabled and not n.ready() and not n.watchdog() and n.sent == 0
    # Not systemd's: a relative path, or a watchdog meant for another process.
    assert not Notifier({"NOTIFY_SOCKET": "relative.sock"}).enabled
    assert Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "garbage"}).watchdog_interval is None


def test_reading_the_process_environment_removes_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "x.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    n = Notifier()
    assert n.enabled and n.watchdog_interval == 1.0
    assert not {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} & set(os.environ)


def test_a_full_queue_drops_pings_instead_of_blocking(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(tmp_path / "n.sock"))
        n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "n.sock")})
        sent = [n.watchdog() for _ in range(2000)]  # nobody reads: the queue fills up
        assert sent[0] and not sent[-1] and n.failed > 0
        n.close()
