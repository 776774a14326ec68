"""Who the control socket says is calling (``api._peer``): an ordinary caller's supplementary groups are read
(a grant may name one of them), a privileged caller's are not needed (it holds every right)."""

from __future__ import annotations

import os
import socket

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
