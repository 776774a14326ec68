"""State out: keepalived's notify FIFO lines, parsed in order from a real FIFO."""

from __future__ import annotations

import asyncio
import os

import pytest

from vrrp.notify import FifoReader, Notice, parse_line


@pytest.mark.parametrize("line, want", [
    ('INSTANCE "web" MASTER 150', Notice("INSTANCE", "web", "MASTER", 150)),
    ('INSTANCE "web" BACKUP 100\n', Notice("INSTANCE", "web", "BACKUP", 100)),
    ('INSTANCE "web" FAULT 0', Notice("INSTANCE", "web", "FAULT", 0)),
    ('INSTANCE "web" STOP 150', Notice("INSTANCE", "web", "STOP", 150)),
    ('INSTANCE "web" BACKUP_PRIORITY 90', Notice("INSTANCE", "web", "BACKUP_PRIORITY", 90)),
    ('GROUP "g1" MASTER 0', Notice("GROUP", "g1", "MASTER", 0)),
    ('VS [192.0.2.1]:tcp:80 UP', None),
    ('INSTANCE web MASTER 150', None),
    ('INSTANCE "web" master 150', None),
    ("", None),
    ('INSTANCE "web" MASTER 150 extra', None),
])
def test_parse_line(line, want):
    assert parse_line(line) == want


async def test_reader_keeps_order_joins_partial_lines_and_skips_garbage(tmp_path):
    path = str(tmp_path / "notify.fifo")
    got: list[Notice] = []
    r = FifoReader(path, got.append)
    r.open(asyncio.get_running_loop())
    try:
        assert os.path.exists(path) and oct(os.stat(path).st_mode & 0o777) == "0o600"
        w = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(w, b'INSTANCE "web" BACKUP 150\nINSTANCE "web" MAS')
            await asyncio.sleep(0.05)
            os.write(w, b'TER 150\ngarbage line\nINSTANCE "api" FAULT 90\n')
            for _ in range(100):
                if len(got) == 3:
                    break
                await asyncio.sleep(0.01)
        finally:
            os.close(w)
        assert [(n.name, n.state) for n in got] == [("web", "BACKUP"), ("web", "MASTER"), ("api", "FAULT")]
        assert r.malformed == 1 and r.lines == 4
        # A writer closing is no end of file for us: the next writer is heard too.
        w = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.write(w, b'INSTANCE "web" STOP 150\n')
        os.close(w)
        for _ in range(100):
            if len(got) == 4:
                break
            await asyncio.sleep(0.01)
        assert got[-1].state == "STOP"
        assert not r.stale()
        os.unlink(path)
        os.mkfifo(path)
        assert r.stale()
    finally:
        r.close()


async def test_reader_replaces_a_plain_file_with_a_fifo(tmp_path):
    path = tmp_path / "notify.fifo"
    path.write_text("not a fifo")
    r = FifoReader(str(path), lambda n: None)
    r.open(asyncio.get_running_loop())
    try:
        import stat

        assert stat.S_ISFIFO(os.stat(path).st_mode)
    finally:
        r.close()
