"""The spawn helper makes an instance's FIFO and log file (``svcmgr.forkserver``, ``svcmgr.logs``), off the
daemon's event loop, with the daemon's rules for its files (``svcmgr.safefs.open_own``): a real helper, a
real reaper, real children, real files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat

import pytest

from svcmgr.forkserver import ForkServer, HelperUnavailable
from svcmgr.forkservers import DEEP, ForkServers
from svcmgr.logs import LOG_MODE, InstanceLog
from svcmgr.reaper import Reaper


def _reaper(loop: asyncio.AbstractEventLoop) -> Reaper:
    reaper = Reaper()
    reaper._loop = loop
    loop.add_signal_handler(signal.SIGCHLD, reaper.reap)
    return reaper


@pytest.fixture
async def helper():
    loop = asyncio.get_running_loop()
    reaper = _reaper(loop)
    fs = ForkServer(reaper)
    fs.start(loop)
    yield fs
    fs.close()
    loop.remove_signal_handler(signal.SIGCHLD)


def _log(tmp_path, helper: ForkServer) -> InstanceLog:
    lg = InstanceLog(str(tmp_path / "site-web:default.log"), str(tmp_path / "site-web:default"), 1 << 20, 2,
                     opener=helper.open_log)
    lg.open(asyncio.get_running_loop())
    return lg


async def _until(pred, what: str) -> None:
    for _ in range(500):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_helper_makes_the_log_and_the_fifo_and_every_line_arrives_in_order(tmp_path, helper):
    lg = _log(tmp_path, helper)
    try:
        lg.note('Executing start method ("printf ...").')
        fut = await helper.spawn(["/bin/sh", "-c", "printf 'one\\ntwo\\n'; printf 'three\\n' >&2"], cgroup=None,
                                 env={"PATH": os.defpath}, cwd="/", fifo=lg.fifo, reader=lg.for_helper())
        child = await fut
        assert lg.for_helper() is None  # the reading end came back with the reply: the daemon holds it
        await child.exited
        await _until(lambda: lg.lines == 3, "the child's three lines")
        lg.note('Method "start" exited with status 0.')
        text = (tmp_path / "site-web:default.log").read_text().splitlines()
        assert "Executing start method" in text[0] and "exited with status 0" in text[4]
        assert [t.split(" ", 2)[2] for t in text[1:4]] == ["one", "two", "three"]
        assert stat.S_IMODE(os.stat(lg.path).st_mode) == LOG_MODE & ~_umask()
        st = os.lstat(lg.fifo)
        assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 & ~_umask()
    finally:
        lg.close()


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


async def test_a_log_planted_as_a_link_is_refused_by_the_helper_and_the_daemon_says_why(tmp_path, helper, caplog):
    target = tmp_path / "elsewhere"
    lg = _log(tmp_path, helper)
    os.symlink(target, lg.path)
    try:
        lg.note("one")
        lg.note("two")
        await _until(lambda: any("cannot open the log" in r.getMessage() for r in caplog.records), "the refusal")
        assert not target.exists()
        assert helper.usable()  # a file it cannot open costs the helper nothing
    finally:
        lg.close()


async def test_a_fifo_planted_as_a_link_is_refused_and_that_spawn_alone_goes_elsewhere(tmp_path, helper):
    target = tmp_path / "elsewhere"
    os.mkfifo(target, 0o600)
    lg = _log(tmp_path, helper)
    os.symlink(target, lg.fifo)
    try:
        fut = await helper.spawn(["/bin/true"], cgroup=None, env={"PATH": os.defpath}, cwd="/", fifo=lg.fifo,
                                 reader=lg.for_helper())
        with pytest.raises(HelperUnavailable, match="FIFO"):
            await fut
        assert helper.usable() and lg.for_helper() is not None  # no reading end was kept
        child = await (await helper.spawn(["/bin/true"], cgroup=None, env={"PATH": os.defpath}, cwd="/"))
        assert (await child.exited).code == 0
    finally:
        lg.close()


async def test_lines_that_wait_for_the_helper_reach_the_file_when_it_is_gone(tmp_path, helper):
    lg = _log(tmp_path, helper)
    try:
        lg.note("first")
        helper.lost("test: the helper is gone")  # what it was asked is answered "not opened": the daemon opens
        lg.note("second")
        text = (tmp_path / "site-web:default.log").read_text()
        assert text.index("first") < text.index("second")
    finally:
        lg.close()


async def test_a_spare_helper_killed_leaves_the_first_serving_and_none_outlives_a_close(caplog):
    """``ForkServers``: a burst makes a spare (a fork of the helper, serving a socket of its own); killed, the
    helper serves on, with no word of spawning in the daemon; closed, no helper is left."""
    loop = asyncio.get_running_loop()
    pool = ForkServers(_reaper(loop))
    pool.start(loop)
    children = []
    try:
        futs = [await pool.spawn(["sleep", "30"], cgroup=None, env={"PATH": os.defpath}, cwd="/")
                for _ in range(DEEP + 2)]
        children += [await f for f in futs]
        assert pool.started == 1
        (spare,) = pool.spares
        await _until(lambda: spare.ready, "the spare to be ready")
        spare_pid = spare.pid
        assert spare_pid is not None and spare_pid != pool.primary.pid
        # the least busy ready helper is asked: the first spawn goes to the helper, the second to the spare
        futs = [await pool.spawn(["sleep", "30"], cgroup=None, env={"PATH": os.defpath}, cwd="/") for _ in range(2)]
        pair = [await f for f in futs]
        children += pair
        assert [_parent(c.pid) for c in pair] == [pool.primary.pid, spare_pid]
        await _until(lambda: sorted(os.listdir(f"/proc/{pair[1].pid}/fd")) == ["0", "1", "2"],
                     "no descriptor but 0-2 in the spare's child (its dynamic loader holds one for a moment)")
        os.kill(spare_pid, signal.SIGKILL)
        await _until(lambda: not spare.open(), "the daemon to see the spare gone")
        child = await (await pool.spawn(["sleep", "30"], cgroup=None, env={"PATH": os.defpath}, cwd="/"))
        children.append(child)
        assert pool.usable() and "spawning in the daemon" not in caplog.text
    finally:
        for c in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(c.pid, signal.SIGKILL)
        pool.close()
        try:  # the helper is this process's child, reaped by the reaper once it has ended
            await _until(lambda: not os.path.exists(f"/proc/{pool.primary.pid}"), "the helper to end")
        finally:
            loop.remove_signal_handler(signal.SIGCHLD)


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(") ", 1)[1].split()[1])
