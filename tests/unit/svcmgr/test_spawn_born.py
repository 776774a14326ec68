"""The spawn helper's start time of a child (``spawnhelper.born``) is the one /proc gives, whether it comes
from the clock read around the spawn or from /proc itself: a daemon restarted after a crash compares it
with the pid's to tell its own process from a stranger with the same pid."""

from __future__ import annotations

import os
import time

from svcmgr.procfs import read_stat
from svcmgr.spawnhelper import born

_TICK = 10**9 // os.sysconf("SC_CLK_TCK")


def _spawned() -> tuple[int, int, int]:
    before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    pid = os.posix_spawn("/bin/sleep", ["sleep", "5"], {})
    after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    return pid, before, after


def test_the_start_time_of_a_child_is_the_one_proc_gives() -> None:
    children = [_spawned() for _ in range(200)]
    try:
        for pid, before, after in children:
            info = read_stat(pid)
            assert info is not None
            assert born(pid, before, after) == info.starttime
    finally:
        for pid, _, _ in children:
            os.kill(pid, 9)
            os.waitpid(pid, 0)


def test_a_spawn_across_a_tick_reads_proc() -> None:
    pid, before, _ = _spawned()
    try:
        info = read_stat(pid)
        assert info is not None
        # bounds a tick apart cannot tell the tick: /proc's own start time is answered
        assert born(pid, before - _TICK, before + _TICK) == info.starttime
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def test_a_child_gone_across_a_tick_is_not_known() -> None:
    pid, before, _ = _spawned()
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    assert born(pid, before - _TICK, before + _TICK) == 0
