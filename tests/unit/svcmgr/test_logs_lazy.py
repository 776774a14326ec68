"""An instance's log file and FIFO are made when first needed (``svcmgr.logs.InstanceLog``), on real files."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
import struct
import termios
import time

from svcmgr.logs import LOG_MODE, MAX_WAITING, InstanceLog
from svcmgr.safefs import open_own
from svcmgr.spawn import LOG_FLAGS


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


class _Opener:
    """Stands for the spawn helper's ``open_log``: keeps where each answer goes, answers when told."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, object]] = []

    def __call__(self, path: str, mode: int, given) -> bool:
        self.asked.append((path, given))
        return True

    def answer(self) -> None:
        path, given = self.asked.pop(0)
        given(open_own(path, LOG_FLAGS, LOG_MODE))


def _waiting_log(tmp_path, opener: _Opener) -> InstanceLog:
    lg = InstanceLog(str(tmp_path / "site-web:default.log"), str(tmp_path / "site-web:default"), 1 << 20, 2,
                     opener=opener)
    lg.open(asyncio.get_running_loop())
    return lg


def _fds() -> dict[int, str]:
    """This process's descriptors and what each is open on."""
    out = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own, closed by now
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return out


def _opened(before: dict[int, str]) -> list[str]:
    """What the descriptors opened since ``before`` are open on: descriptors that other tests' leftovers close
    meanwhile (the garbage collector, in this worker) do not count, as a count of them did."""
    return sorted(t for fd, t in _fds().items() if before.get(fd) != t)


async def test_lines_wait_in_order_for_the_file_the_opener_brings(tmp_path):
    opener = _Opener()
    lg = _waiting_log(tmp_path, opener)
    try:
        lg.note("one")
        lg.note("two")
        assert len(opener.asked) == 1 and not os.path.exists(lg.path)  # asked once; nothing made here
        opener.answer()
        lg.note("three")
        text = (tmp_path / "site-web:default.log").read_text()
        assert text.index("one") < text.index("two") < text.index("three")
        assert not opener.asked
    finally:
        lg.close()


async def test_the_fifos_lines_wait_with_the_others_and_keep_their_order_and_time(tmp_path):
    opener = _Opener()
    lg = _waiting_log(tmp_path, opener)
    before = _fds()
    try:
        lg.note("first")
        fd = lg.writer_fd()
        try:
            os.write(fd, b"from the child\n")
            await _until(lambda: _unread(fd) == 0, "the child's line to be read")
        finally:
            os.close(fd)
        read_at = time.time()
        lg.note("second")
        assert lg.lines == 0 and not os.path.exists(lg.path)  # read, waiting with the notes
        await asyncio.sleep(1.1)
        opener.answer()
        text = (tmp_path / "site-web:default.log").read_text().splitlines()
        assert ["first" in text[0], "from the child" in text[1], "second" in text[2]] == [True] * 3
        stamped = time.mktime(time.strptime(text[1].split(".")[0], "%Y-%m-%d %H:%M:%S"))
        assert stamped <= read_at  # stamped when it was read, not when it was written
        assert lg.lines == 1
        # the log file and the FIFO's reading end, no more
        assert _opened(before) == sorted(os.path.realpath(p) for p in (lg.path, lg.fifo))
    finally:
        lg.close()


def _unread(fd: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


async def test_no_more_than_the_bound_waits_in_memory(tmp_path):
    opener = _Opener()
    lg = _waiting_log(tmp_path, opener)
    try:
        n = MAX_WAITING // 1000 + 1
        for i in range(n):
            lg.note(f"{i:04d} " + "x" * 1000)
        lines = (tmp_path / "site-web:default.log").read_text().splitlines()
        assert len(lines) == n and all(f"{i:04d} x" in line for i, line in enumerate(lines))
    finally:
        lg.close()


async def test_lines_that_wait_at_close_reach_the_file(tmp_path):
    opener = _Opener()
    lg = _waiting_log(tmp_path, opener)
    lg.note("last words")
    lg.close()
    assert "last words" in (tmp_path / "site-web:default.log").read_text()
    before = _fds()
    opener.answer()  # after close: closed at once
    assert _opened(before) == []


async def test_a_reader_finds_every_line_said_so_far_in_the_file(tmp_path):
    # svcs -L and svcs -x read the file: asking for it (flush) writes what waits for the helper, in order,
    # and drains the FIFO; the helper's file, when it comes, is closed, and later lines go to the same file
    opener = _Opener()
    lg = _waiting_log(tmp_path, opener)
    try:
        lg.note("started")
        fd = lg.writer_fd()
        try:
            os.write(fd, b"from the child\n")
            lg.flush()
        finally:
            os.close(fd)
        lines = (tmp_path / "site-web:default.log").read_text().splitlines()
        assert len(lines) == 2 and "started" in lines[0] and "from the child" in lines[1]
        before = _fds()
        opener.answer()  # made here meanwhile: the helper's descriptor is closed at once
        assert _opened(before) == []
        lg.note("later")
        lg.flush()  # nothing waits: the same file, nothing asked again
        assert "later" in (tmp_path / "site-web:default.log").read_text().splitlines()[2]
        assert not opener.asked
    finally:
        lg.close()
