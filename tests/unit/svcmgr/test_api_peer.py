"""Who the control socket says is calling (``api._peer``): an ordinary caller's supplementary groups are read
(a grant may name one of them), a privileged caller's are not needed (it holds every right)."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from svcmgr import api

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid with its groups")


def _peer_of_child(uid: int, gid: int, groups: list[int]) -> api.Caller:
    """A child that takes ``uid``, ``gid`` and ``groups`` and connects: the Caller the daemon would see."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            a.close()
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            # SO_PEERCRED is taken at connect: a fresh connection, made with these credentials
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.connect(b.recv(200).decode())
            b.send(b"1")
            b.recv(1)
        finally:
            os._exit(0)
    b.close()
    path = f"/tmp/svcmgr-peer-{os.getpid()}.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        srv.bind(path)
        os.chmod(path, 0o666)
        srv.listen(1)
        a.send(path.encode())
        conn, _ = srv.accept()
        a.recv(1)
        try:
            return api._peer(conn)
        finally:
            conn.close()
            a.send(b"1")
    finally:
        srv.close()
        os.unlink(path)
        a.close()
        os.waitpid(pid, 0)


def test_an_ordinary_caller_has_its_supplementary_groups_read() -> None:
    c = _peer_of_child(65534, 65534, [4242, 4343])
    assert (c.uid, c.gid, c.privileged) == (65534, 65534, False)
    assert c.groups == frozenset({65534, 4242, 4343})


def test_a_privileged_caller_holds_every_right_without_its_groups_read() -> None:
    c = _peer_of_child(0, 0, [4242])
    assert (c.uid, c.privileged) == (0, True)
    assert c.groups == frozenset({0})


def _connect_then_exit_as(uid: int, path: str) -> int:
    """A child that takes ``uid`` (no supplementary group), connects to ``path`` and exits: its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return pid


def _take_pid(pid: int, uid: int, groups: list[int]) -> int | None:
    """A child of ``uid`` with ``groups`` born with ``pid`` (the kernel's next pid set just below it), that
    sleeps until killed; None when another process took the pid first."""
    ready_r, ready_w = os.pipe()
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(pid - 1))
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        try:
            os.setgroups(groups)
            os.setgid(uid)
            os.setuid(uid)
            os.write(ready_w, b"1")
            time.sleep(30)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.read(ready_r, 1)  # its groups are set
    os.close(ready_r)
    if child == pid:
        return child
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    return None


def _peer_after_its_pid_was_taken(uid: int, groups: list[int]) -> api.Caller:
    """The Caller the daemon sees for a connection of uid 65534 (no supplementary group) that exited, its pid
    taken since by a process of ``uid`` with ``groups``."""
    path = f"/tmp/svcmgr-peer-{os.getpid()}.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    os.chmod(path, 0o666)
    srv.listen(8)
    try:
        for _ in range(20):  # another process on the machine may take the pid first: try again
            pid = _connect_then_exit_as(65534, path)
            conn, _ = srv.accept()
            with conn:
                impostor = _take_pid(pid, uid, groups)
                if impostor is None:
                    continue
                try:
                    return api._peer(conn)
                finally:
                    os.kill(impostor, signal.SIGKILL)
                    os.waitpid(impostor, 0)
        pytest.skip("another process took the pid every time")
    finally:
        srv.close()
        os.unlink(path)


def test_a_callers_groups_are_those_it_connected_with_not_those_of_the_next_process_with_its_pid() -> None:
    """A caller that connects and exits leaves its pid to the next process: /proc/PID/status then names that
    process's groups (a grant's group the caller is not in). The groups are the kernel's, taken at connect."""
    c = _peer_after_its_pid_was_taken(65534, [4242])
    assert (c.uid, c.privileged) == (65534, False)
    assert c.groups == frozenset({65534}), "the groups of another process that took the caller's pid"


def test_where_the_kernel_cannot_say_proc_is_read_only_while_the_pid_is_the_callers_user(monkeypatch) -> None:
    """A kernel older than 4.13 (no SO_PEERGROUPS, played by an option no kernel has): /proc/PID/status, but
    not that of another user's process that took the pid."""
    monkeypatch.setattr(api, "SO_PEERGROUPS", 0x7FFF)
    assert _peer_of_child(65534, 65534, [4242]).groups == frozenset({65534, 4242})
    c = _peer_after_its_pid_was_taken(65533, [4242])
    assert (c.uid, c.groups) == (65534, frozenset({65534}))
