"""Every process the harness starts, and the cleanup that ends them all, even on failure or Ctrl-C.

The harness makes itself a child subreaper, so a service whose supervisor died
(or was stopped) is re-parented to the harness rather than to init: whatever is
left over is found by parent pid and ended by pid. Supervisors are started in
their own sessions; their trees are walked through /proc before and after they
stop, and every pid found there is killed by its id, never by name.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["Tracked", "children_of", "descendants", "kill_tree", "reap_orphans", "set_subreaper", "spawn",
           "track_signals"]

PR_SET_CHILD_SUBREAPER = 36


#: Whether this process is a subreaper: only then are its unknown children orphans of a tool.
_subreaper = False


def set_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants."""
    global _subreaper
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except OSError:
        _subreaper = False
    return _subreaper


def _ppid_table() -> dict[int, int]:
    out: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rp = data.rfind(b")")
        fields = data[rp + 2:].split()
        with contextlib.suppress(IndexError, ValueError):
            out[int(name)] = int(fields[1])
    return out


def children_of(pid: int, table: dict[int, int] | None = None) -> list[int]:
    table = _ppid_table() if table is None else table
    return [p for p, pp in table.items() if pp == pid]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (not ``pid`` itself)."""
    table = _ppid_table()
    kids: dict[int, list[int]] = {}
    for p, pp in table.items():
        kids.setdefault(pp, []).append(p)
    out: set[int] = set()
    stack = [pid]
    while stack:
        for c in kids.get(stack.pop(), ()):
            if c not in out:
                out.add(c)
                stack.append(c)
    return out


def _kill(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for p in pids:
        if p == os.getpid():
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)


def reap_orphans() -> int:
    """Wait for every child of the harness that has ended (orphans re-parented to us included)."""
    n = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return n
        if pid == 0:
            return n
        n += 1


class Tracked:
    """A supervisor (or any process) the harness started: its pid, and the tree it grew."""

    registry: list[Tracked] = []

    def __init__(self, proc: subprocess.Popen[Any], name: str) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.name = name
        self.seen: set[int] = set()
        Tracked.registry.append(self)

    def remember_tree(self) -> None:
        """Note every current descendant, so that they are ended even if they leave the tree."""
        self.seen |= descendants(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> bool:
        """Ask the process to stop with ``sig``; True if it ended in time. The tree is killed afterwards."""
        self.remember_tree()
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            ok = self.wait(timeout)
        else:
            ok = True
        self.kill()
        return ok

    def kill(self) -> None:
        """SIGKILL the process and everything it started that still lives (by pid)."""
        for _ in range(50):
            if self.alive():
                self.seen |= descendants(self.pid)
            live = {p for p in self.seen if os.path.exists(f"/proc/{p}")}
            # Orphans re-parented to the harness: only one tool runs at a time, so they are this one's.
            if _subreaper:
                others = {t.pid for t in Tracked.registry if t is not self}
                live |= set(children_of(os.getpid())) - others - {self.pid}
            if self.alive():
                live.add(self.pid)
            if not live:
                break
            _kill(live)
            time.sleep(0.02)
            reap_orphans()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self in Tracked.registry:
            Tracked.registry.remove(self)

    @classmethod
    def kill_all(cls) -> None:
        for t in list(cls.registry):
            t.kill()
        # Anything still parented to the harness was started by it (directly or as an orphan).
        for _ in range(20 if _subreaper else 0):
            left = children_of(os.getpid())
            if not left:
                break
            _kill(left)
            time.sleep(0.02)
            reap_orphans()


def spawn(argv: Sequence[str], name: str, *, log: str | None = None, env: dict[str, str] | None = None,
          cwd: str | None = None) -> Tracked:
    """Start a supervisor in its own session, its output to ``log``."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        p = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=cwd,
                             start_new_session=True)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    return Tracked(p, name)


def kill_tree(pid: int) -> None:
    _kill(descendants(pid) | {pid})


def track_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP end the harness through ``finally`` and the cleanup (SIGINT too when
    the shell started the harness with it ignored, as it does for background jobs)."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
