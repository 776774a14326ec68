"""What /proc says of processes: a process's stat line, the table of live ones, its environment (and the
contract marker in it), its children, and the daemon's cgroup v2 mount and group."""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["MARKER", "ProcInfo", "alive", "children_of", "environ", "find_cgroup2_mount", "marker_in", "own_cgroup",
           "proc_table", "read_marker", "read_small", "read_stat", "write_small"]

#: The environment variable that names a process's contract (pgid contracts claim escapees by it).
MARKER = "SVCMGR_CONTRACT"


@dataclass(frozen=True, slots=True)
class ProcInfo:
    pid: int
    ppid: int
    pgid: int
    state: str
    starttime: int
    sid: int = 0


def read_small(path: str) -> bytes:
    """The whole of a small kernel file (a /proc or cgroup file, under a page or a few), in as few system
    calls as it takes: open, reads, close. ``open()`` adds a stat, a tty check and a seek to each, and the
    daemon reads one per process it starts. Raises OSError as ``open`` does."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # until end of file: a kernel file may give less than asked before its end (a record that
        # does not fit is left for the next read)
        chunks = []
        while data := os.read(fd, 65536):
            chunks.append(data)
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def write_small(path: str, data: bytes) -> None:
    """Write ``data`` to a kernel file (a cgroup's control file) in one write; raises OSError."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_stat(pid: int) -> ProcInfo | None:
    try:
        data = read_small(f"/proc/{pid}/stat")
    except OSError:
        return None
    rp = data.rfind(b")")
    fields = data[rp + 2:].split()
    try:
        return ProcInfo(pid, int(fields[1]), int(fields[2]), fields[0].decode(), int(fields[19]), int(fields[3]))
    except (IndexError, ValueError):
        return None


def proc_table() -> dict[int, ProcInfo]:
    """Every live (non-zombie) process."""
    out: dict[int, ProcInfo] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        info = read_stat(int(name))
        if info is not None and info.state not in ("Z", "X"):
            out[info.pid] = info
    return out


def environ(pid: int) -> bytes:
    """A process's environment block; empty when it cannot be read, or the process is exiting
    (its memory is released before its children are handed to the subreaper)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read()
    except OSError:
        return b""


def read_marker(pid: int) -> str | None:
    return marker_in(environ(pid))


def marker_in(env: bytes) -> str | None:
    key = MARKER.encode() + b"="
    for item in env.split(b"\0"):
        if item.startswith(key):
            return item[len(key):].decode(errors="replace")
    return None


def find_cgroup2_mount() -> str | None:
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return left.split()[4]
    except OSError:
        pass
    return None


def own_cgroup() -> str:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return "/"


def children_of(*parents: int) -> list[int] | None:
    """Children of these processes, from /proc/PID/task/TID/children; None where that cannot be read."""
    out: list[int] = []
    for parent in parents:
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except OSError:
            return None
        for tid in tids:
            try:
                with open(f"/proc/{parent}/task/{tid}/children") as f:
                    out.extend(int(x) for x in f.read().split())
            except FileNotFoundError:
                if os.path.isdir(f"/proc/{parent}/task/{tid}"):
                    return None  # a kernel without /proc/.../children
                continue  # that thread ended
            except OSError:
                return None
    return out


def alive(pid: int) -> bool:
    info = read_stat(pid)
    return info is not None and info.state not in ("Z", "X")
