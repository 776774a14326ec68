"""State out: keepalived's notify FIFO, read in order, one parsed line at a time.

keepalived writes one line per transition, ``INSTANCE "web" MASTER 150`` (also
``GROUP``, and ``MASTER_PRIORITY`` / ``BACKUP_PRIORITY`` lines when the effective
priority changes). Notify scripts lose order and fail silently; the FIFO keeps
order. The agent creates the FIFO itself (keepalived replaces a FIFO it created
on every reload) and holds it open for reading and writing, so keepalived can
open it at any time and a keepalived restart never gives the reader an end of
file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FifoReader", "Notice", "parse_line"]

log = logging.getLogger("vrrp.notify")

_LINE_RE = re.compile(r'^(INSTANCE|GROUP) "([^"\n]{1,64})" ([A-Z_]{2,32}) (-?\d{1,4})$')
MAX_LINE = 4096


@dataclass(frozen=True)
class Notice:
    kind: str  # INSTANCE | GROUP
    name: str
    state: str  # MASTER | BACKUP | FAULT | STOP | DELETED | MASTER_PRIORITY | BACKUP_PRIORITY | ...
    priority: int


def parse_line(line: str) -> Notice | None:
    """One FIFO line, or None when it is not a VRRP notice."""
    m = _LINE_RE.match(line.strip())
    if m is None:
        return None
    return Notice(m.group(1), m.group(2), m.group(3), int(m.group(4)))


class FifoReader:
    """Reads the FIFO from the event loop and calls ``on_notice`` for every well-formed line."""

    def __init__(self, path: str, on_notice: Callable[[Notice], None]) -> None:
        self.path = path
        self.on_notice = on_notice
        self.fd: int | None = None
        self.inode: int | None = None
        self.buf = b""
        self.lines = 0
        self.malformed = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Create the FIFO if needed (mode 0600) and start reading it."""
        self.close()
        self._loop = loop
        try:
            st = os.lstat(self.path)
            if not stat.S_ISFIFO(st.st_mode):
                os.unlink(self.path)
                raise FileNotFoundError
        except FileNotFoundError:
            os.mkfifo(self.path, 0o600)
        self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.inode = os.fstat(self.fd).st_ino
        loop.add_reader(self.fd, self._readable)

    def stale(self) -> bool:
        """Whether the path no longer names the FIFO we hold (someone replaced it)."""
        try:
            return os.stat(self.path).st_ino != self.inode
        except OSError:
            return True

    def _readable(self) -> None:
        assert self.fd is not None
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError as e:
            log.warning("notify FIFO %s: %s", self.path, e)
            return
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        if len(self.buf) > MAX_LINE:
            self.malformed += 1
            self.buf = b""
        for raw in lines:
            self.lines += 1
            n = parse_line(raw.decode(errors="replace"))
            if n is None:
                self.malformed += 1
                log.debug("notify FIFO: ignoring %r", raw[:200])
                continue
            try:
                self.on_notice(n)
            except Exception:
                log.exception("notify FIFO: handling %r failed", raw[:200])

    def close(self) -> None:
        if self.fd is not None:
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = None
