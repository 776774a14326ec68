"""An instance's log file and FIFO are made when first needed (``svcmgr.logs.InstanceLog``), on real files."""

from __future__ import annotations

import asyncio
import os
import stat

from svcmgr.logs import InstanceLog


def _log(tmp_path) -> InstanceLog:
    return InstanceLog(str(tmp_path / "site-web:default.log"), str(tmp_path / "site-web:default"), 1 << 20, 2)


async def _until(pred, what: str) -> None:
    for _ in range(200):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_nothing_is_made_until_a_line_or_a_spawn_needs_it(tmp_path):
    lg = _log(tmp_path)
    lg.open(asyncio.get_running_loop())
    try:
        assert os.listdir(tmp_path) == []  # an instance that never starts costs no file and no FIFO
        lg.note("Executing start method.")
        assert os.listdir(tmp_path) == ["site-web:default.log"]
        assert "Executing start method." in (tmp_path / "site-web:default.log").read_text()
        fd = lg.writer_fd()
        try:
            assert stat.S_ISFIFO(os.stat(lg.fifo).st_mode)
            os.write(fd, b"hello from the child\n")
        finally:
            os.close(fd)
        await _until(lambda: lg.lines == 1, "the line to be drained")
        assert "hello from the child" in (tmp_path / "site-web:default.log").read_text()
    finally:
        lg.close()


async def test_a_fifo_an_earlier_daemon_left_is_drained_at_open(tmp_path):
    lg = _log(tmp_path)
    os.mkfifo(lg.fifo, 0o600)
    fd = os.open(lg.fifo, os.O_RDWR)
    try:
        os.write(fd, b"written while no daemon ran\n")
        lg.open(asyncio.get_running_loop())
        assert "written while no daemon ran" in (tmp_path / "site-web:default.log").read_text()
        os.write(fd, b"and after\n")
        await _until(lambda: lg.lines == 2, "the second line")
    finally:
        os.close(fd)
        lg.close()


async def test_lines_waiting_in_the_fifo_at_close_reach_the_file(tmp_path):
    lg = _log(tmp_path)
    lg.open(asyncio.get_running_loop())
    fd = lg.writer_fd()
    os.write(fd, b"last words")  # no newline, never read by the loop: close drains and ends it
    os.close(fd)
    lg.close(remove_fifo=True)
    assert (tmp_path / "site-web:default.log").read_text().endswith("last words\n")
    assert not os.path.lexists(lg.fifo)
    lg.note("after close")  # a closed log writes nothing and makes nothing
    assert "after close" not in (tmp_path / "site-web:default.log").read_text()


async def test_a_log_path_that_cannot_be_opened_loses_its_lines_not_the_daemon(tmp_path, caplog):
    lg = _log(tmp_path)
    os.symlink(tmp_path / "elsewhere", lg.path)  # open_own never follows a link
    lg.open(asyncio.get_running_loop())
    try:
        lg.note("one")
        lg.note("two")
        assert not (tmp_path / "elsewhere").exists()
        said = [r.getMessage() for r in caplog.records if "cannot open the log" in r.getMessage()]
        assert len(said) == 1 and lg.path in said[0]
    finally:
        lg.close()
