"""The reaper holds back the exits of unknown children while spawn requests are out (``Reaper.hold``)."""

from __future__ import annotations

import asyncio
import os

from svcmgr.reaper import Reaper


def _mine(orphans: list, pid: int) -> list[tuple[int, int]]:
    """The orphans that are this test's child: the reaper reaps every child of the process, and a pytest
    worker may hold another test's unwaited child, which is not this test's business (it failed a suite run)."""
    return [(o.pid, o.code) for o in orphans if o.pid == pid]


def _exited(pid: int) -> None:
    """Wait until ``pid`` has exited, leaving it to be reaped."""
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


async def test_an_exit_reaped_before_its_pid_is_known_reaches_its_waiter():
    reaper = Reaper()
    reaper.install(asyncio.get_running_loop())
    orphans = []
    reaper.on_orphan = orphans.append
    try:
        reaper.hold()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        _exited(pid)
        reaper.reap()  # the exit comes first, as it may when a reply from the helper is on its way
        child = reaper.register(pid)
        reaper.release()
        assert (await child.wait()).code == 7
        assert _mine(orphans, pid) == []
    finally:
        reaper.uninstall()


async def test_exits_held_and_never_claimed_go_to_the_orphan_handler_on_release():
    reaper = Reaper()
    reaper.install(asyncio.get_running_loop())
    orphans = []
    reaper.on_orphan = orphans.append
    try:
        reaper.hold()
        reaper.hold()
        pid = os.fork()
        if pid == 0:
            os._exit(3)
        _exited(pid)
        reaper.reap()
        reaper.release()
        assert _mine(orphans, pid) == []  # one request is still out
        reaper.release()
        assert _mine(orphans, pid) == [(pid, 3)]
    finally:
        reaper.uninstall()
