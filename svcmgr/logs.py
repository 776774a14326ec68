"""Per-instance log files: timestamped lines, framework notes, rotation by size.

Methods write to a FIFO that the daemon drains into ``category-name:instance.log``.
Children hold the FIFO open read-write, so they never get SIGPIPE, not even while
the daemon restarts; the daemon holds it read-write too, so it never sees EOF and
drains whatever arrives. Both pipes (stdout and stderr) are the same FIFO and it
is always drained: a child can never block on a full pipe while the daemon runs.

Both are made when first needed, not when the instance is created (at a boot of
many services that is a file, a FIFO and three opens each, before the first
start): the log file at its first line, the FIFO at the first method's spawn. A
FIFO an earlier daemon left is opened at once, to drain what its children wrote
meanwhile and to hold it for them.

Making a file costs the file system's journal a millisecond or so under load, on
the event loop: at a boot of many services, a good part of it. So the spawn helper
(``svcmgr.forkserver``, on another CPU) makes both when it can: the FIFO with the
first spawn that needs it (its reading end comes back with the reply), the log file
when ``opener`` is given. The lines meanwhile (framework lines, and what the FIFO
gave, stamped when it was read) wait in memory, in order, at most ``MAX_WAITING``
bytes; past that, at close, when the helper cannot open the file, or when someone
asks for the log (``flush``: its path or its tail), the daemon opens it itself and
writes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable

from svcmgr.safefs import open_own
from svcmgr.spawn import FIFO_MODE, LOG_FLAGS, open_fifo

__all__ = ["MAX_WAITING", "InstanceLog", "Opener", "framework_line", "tail"]

log = logging.getLogger("svcmgr.logs")

_MAX_PARTIAL = 64 * 1024
#: Logs are the daemon's and its group's to read (a service may print what others must not see).
LOG_MODE = 0o640
#: Lines that wait for their log file (made by the spawn helper) in memory, at most.
MAX_WAITING = 64 * 1024

#: Asks for a file to be opened for appending (path, mode, where the descriptor or None goes); False: not asked.
Opener = Callable[[str, int, Callable[[int | None], None]], bool]


def framework_line(message: str, when: float | None = None) -> str:
    """A line in SMF's framework style: ``[ Nov 24 05:39:49 Executing start method ("..."). ]``."""
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(when))
    return f"[ {stamp} {message} ]"


def _stamp(now: float) -> str:
    lt = time.localtime(now)
    return time.strftime("%Y-%m-%d %H:%M:%S", lt) + f".{int((now % 1) * 1000):03d}"


class InstanceLog:
    """The log of one instance."""

    def __init__(self, path: str, fifo: str, max_size: int, keep: int,
                 on_line: Callable[[str], None] | None = None, opener: Opener | None = None) -> None:
        self.path = path
        self.fifo = fifo
        self.max_size = max_size
        self.keep = keep
        self.on_line = on_line
        self._file = None
        self._size = 0
        self._fd: int | None = None
        self._partial = b""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._unwritable = False
        self.opener = opener
        #: lines written while the helper makes the file (None: not waiting for it)
        self._waiting: list[bytes] | None = None
        self._waiting_size = 0
        self.lines = 0

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take the log into use: the FIFO is drained from now on if an earlier daemon left one (its
        children may write to it); otherwise it is made at the first ``writer_fd``."""
        if self._loop is not None:
            return
        self._loop = loop
        self._closed = False
        if os.path.lexists(self.fifo):
            self._open_fifo()

    def _open_fifo(self) -> None:
        if self._fd is not None:
            return
        if self._loop is None or self._closed:
            raise RuntimeError(f"log of {self.path} is not open")
        self._listen(open_fifo(self.fifo, make=True))

    def _listen(self, fd: int) -> None:
        assert self._loop is not None
        self._fd = fd
        self._loop.add_reader(fd, self._readable)
        self._readable()  # drain what waited while no daemon ran

    def take_reader(self, fd: int | None) -> None:
        """The FIFO's reading end, made by the spawn helper (kept unless the log has one, or is closed)."""
        if fd is None:
            return
        if self._fd is not None or self._closed or self._loop is None:
            os.close(fd)
            return
        self._listen(fd)

    def for_helper(self) -> Callable[[int | None], None] | None:
        """For a spawn by the helper, which opens the FIFO by name for the child: where the FIFO's reading
        end goes (the helper makes the FIFO), None when the daemon holds it already."""
        if self._loop is None or self._closed:
            raise RuntimeError(f"log of {self.path} is not open")
        return self.take_reader if self._fd is None else None

    def _open_file(self, fd: int | None = None) -> None:
        if fd is None:
            fd = open_own(self.path, LOG_FLAGS, LOG_MODE)
        self._file = os.fdopen(fd, "ab", buffering=0)  # held for the instance's life
        self._size = self._file.seek(0, os.SEEK_END)

    def writer_fd(self) -> int:
        """A new blocking descriptor for a child's stdout and stderr (the caller closes it after spawning)."""
        self._open_fifo()
        return open_own(self.fifo, os.O_RDWR, FIFO_MODE)

    def note(self, message: str) -> None:
        """A framework line: what the restarter did."""
        self._write((framework_line(message) + "\n").encode())

    def _readable(self) -> None:
        if self._fd is None:
            return
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                break
            if not chunk:
                break
            self._consume(chunk)
            if len(chunk) < 65536:
                break

    def _consume(self, chunk: bytes, now: float | None = None) -> None:
        if not self._ready():  # the file's size decides where the lines below rotate: they wait for it
            self._hold((chunk, time.time()))
            return
        self._ensure_file()
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > _MAX_PARTIAL:
            lines.append(self._partial)
            self._partial = b""
        if not lines:
            return
        stamp = _stamp(time.time() if now is None else now).encode()
        out = bytearray()
        for line in lines:
            entry = stamp + b" " + line + b"\n"
            if out and self._size + len(out) + len(entry) > self.max_size:
                self._write(bytes(out))  # rotates here, at a line boundary
                out.clear()
            out += entry
        self.lines += len(lines)
        self._write(bytes(out))

        if self.on_line is not None:
            for line in lines:
                self.on_line(line.decode(errors="replace"))

    def flush(self) -> None:
        """Everything said so far in the file now, for a reader (``svcs -L``, ``svcs -x``): the lines that
        wait for the helper's file written (the file made here if it has not answered) and what the FIFO
        holds drained. At most once per log it makes the file on the event loop; after that it is cheap."""
        if self._waiting is not None:
            self._settle()
        self._readable()

    def flush_partial(self) -> None:
        if self._partial:
            self._consume(b"\n")

    def _ensure_file(self) -> bool:
        """Open the log file at its first line; False when it is closed or cannot be opened (said once)."""
        if self._file is not None:
            return True
        if self._closed or self._loop is None:
            return False
        try:
            self._open_file()
        except OSError as e:
            if not self._unwritable:
                self._unwritable = True
                log.error("cannot open the log %s: %s; its lines are lost", self.path, e)
            return False
        return True

    def _ready(self) -> bool:
        """True when lines can be written now (or never: a closed log); False while they wait for the file
        the helper is asked to make (asked here, at the first line)."""
        if self._file is not None:
            return True
        if self._waiting is None and self.opener is not None and not self._unwritable and not self._closed \
                and self._loop is not None:
            self._waiting = []
            self._waiting_size = 0
            if not self.opener(self.path, LOG_MODE, self._opened):
                self._waiting = None
        return self._waiting is None

    def _hold(self, item: bytes | tuple[bytes, float]) -> None:
        assert self._waiting is not None
        self._waiting.append(item)
        self._waiting_size += len(item if isinstance(item, bytes) else item[0])
        if self._waiting_size > MAX_WAITING:
            self._settle()

    def _write(self, data: bytes) -> None:
        if not self._ready():
            self._hold(data)
            return
        if not self._ensure_file():
            return
        assert self._file is not None
        try:
            self._file.write(data)
        except OSError:
            return
        self._size += len(data)
        if self._size >= self.max_size:
            self.rotate()

    def _opened(self, fd: int | None) -> None:
        """The log file from the helper (None: it could not open it; the daemon tries, and says why not)."""
        if self._waiting is None or self._file is not None:  # closed, or made here meanwhile
            if fd is not None:
                os.close(fd)
            return
        if fd is not None:
            try:
                self._open_file(fd)
            except OSError:
                pass  # opened again below
        self._settle()

    def _settle(self) -> None:
        """The file open (here, now, if the helper has not answered), and what waited for it written, in order:
        framework lines as they were, the FIFO's output stamped with the time it was read."""
        waiting, self._waiting = self._waiting, None
        self._ensure_file()
        for item in waiting or ():
            if isinstance(item, bytes):
                self._write(item)
            else:
                self._consume(*item)

    def rotate(self) -> None:
        if self._file is None:
            return
        self._file.close()
        if self.keep <= 0:
            with contextlib.suppress(OSError):
                os.close(open_own(self.path, os.O_WRONLY | os.O_TRUNC, LOG_MODE))
        else:
            for i in range(self.keep - 1, 0, -1):
                src = f"{self.path}.{i}"
                if os.path.exists(src):
                    os.replace(src, f"{self.path}.{i + 1}")
            with contextlib.suppress(OSError):
                os.replace(self.path, f"{self.path}.1")
        self._open_file()

    def close(self, *, remove_fifo: bool = False) -> None:
        if self._waiting is not None:
            self._settle()  # no line is lost: the file is made here (the helper's, if it comes, is closed)
        if self._fd is not None:
            self._readable()
            self.flush_partial()
            if self._loop is not None:
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        self._closed = True
        self._loop = None
        if self._file is not None:
            self._file.close()
            self._file = None
        if remove_fifo:
            with contextlib.suppress(OSError):
                os.unlink(self.fifo)


def tail(path: str, lines: int = 10, max_bytes: int = 64 * 1024) -> list[str]:
    """The last lines of a log file (empty if unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    out = data.decode(errors="replace").splitlines()
    return out[-lines:] if lines else []


class PatternMatcher:
    """Turns log lines that match a manifest's patterns into ereport callbacks."""

    def __init__(self, patterns: list[tuple[str, str]], emit: Callable[[str, str], None]) -> None:
        self._patterns = [(re.compile(rx), cls) for rx, cls in patterns]
        self._emit = emit

    def __call__(self, line: str) -> None:
        for rx, cls in self._patterns:
            if rx.search(line):
                self._emit(cls, line[:1024])
