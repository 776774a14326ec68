"""The scenarios: what is started, what is measured, and how "up" is decided.

Every measurement asks the tool's own status interface (``Tool.status``); the
harness polls it every ``POLL`` seconds, the same for every tool. Times are
taken with the monotonic clock, except the DAG's first start, which comes from
the kernel's start time of the first service process (``/proc/PID/stat``,
clock ticks since boot, 10 ms resolution) and is compared with CLOCK_BOOTTIME.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.tools import Service, Svcmgr, Tool

__all__ = ["DAG_DEPTH", "DAG_READY", "DAG_SIZE", "Session", "dag_services", "sleep_services"]

POLL = 0.010
RESTART_POLL = 0.0005
DAG_SIZE = 500
DAG_DEPTH = 10
DAG_READY = 0.05
CLK_TCK = os.sysconf("SC_CLK_TCK")


def sleep_argv(tag: int) -> list[str]:
    # A sleep length unique to this harness run, so its processes are told apart from anyone else's.
    return ["sleep", str(tag)]


def sleep_services(n: int, tag: int) -> list[Service]:
    return [Service(f"s{i}", sleep_argv(tag)) for i in range(n)]


def dag_services(tag: int, n: int = DAG_SIZE, depth: int = DAG_DEPTH, ready: float = DAG_READY,
                 seed: int = 7) -> list[Service]:
    """``depth`` layers of ``n/depth`` services; each depends on 1-3 of the layer before it.

    A service keeps a sleep running and is ready when its start command exits, ``ready`` seconds
    after it began (``sh -c 'sleep T & exec sleep 0.05'``): the daemon-style start that SMF's
    ``duration = "contract"`` describes, with readiness by the exit of the start method."""
    per = n // depth
    rnd = random.Random(seed)
    argv = ["/bin/sh", "-c", f"sleep {tag} & exec sleep {ready:g}"]
    out = []
    for layer in range(depth):
        for j in range(per):
            deps = [] if layer == 0 else sorted({f"d{layer - 1}x{rnd.randrange(per)}" for _ in range(3)})
            out.append(Service(f"d{layer}x{j}", argv, deps, ready="exit"))
    return out


def boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rfind(b")") + 2:].split()[19])


def first_start(tag: int) -> float | None:
    """The boot-clock time the first process running ``sleep TAG`` started."""
    want = f"sleep\0{tag}\0".encode()
    best: int | None = None
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if f.read() != want:
                    continue
        except OSError:
            continue
        t = _start_ticks(int(name))
        if t is not None and (best is None or t < best):
            best = t
    return None if best is None else best / CLK_TCK


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2:data.rfind(b")") + 3] not in (b"Z", b"X")


def memory(pids: list[int]) -> tuple[float, float, float]:
    """(peak RSS, RSS, PSS) in MiB, summed over ``pids``."""
    hwm = rss = pss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
                    elif line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
    return hwm / 1024, rss / 1024, pss / 1024


class Failed(Exception):
    """A scenario could not finish for one tool; the message says why."""


@dataclass
class Session:
    """One launch of one tool: the supervisor started, measured, and stopped."""

    tool: Tool
    services: list[Service]
    log: Callable[[str], None]
    results: dict[str, float | list[float] | str] = field(default_factory=dict)

    def wait_all_up(self, timeout: float, *, again: bool = False) -> float:
        """Launch the tool and poll until every service is reported up; seconds from launch. ``again``: on the
        configuration and state its last launch (stopped since) left, not written afresh."""
        names = {s.name for s in self.services}
        if not again:
            self.tool.prepare(self.services)
        t0 = time.monotonic()
        self.tool.launch()
        deadline = t0 + timeout
        last: dict[str, int] = {}
        while True:
            st = self.tool.poll_status()
            now = time.monotonic()
            if st is not None:
                last = st
                if names <= {n for n, pid in st.items() if pid}:
                    return now - t0
            if self.tool.proc is not None and not self.tool.proc.alive():
                raise Failed(f"{self.tool.name} exited with status {self.tool.proc.proc.returncode}")
            if now > deadline:
                raise Failed(f"only {len(names & set(last))} of {len(names)} up after {timeout:g}s")
            time.sleep(POLL)

    def restart_latencies(self, kills: int, gap: float = 0.15, timeout: float = 10.0) -> list[float]:
        """kill -9 one service's process ``kills`` times (each a different service, spread over all of
        them); seconds until the status interface reports a new, live process for it."""
        n = len(self.services)
        stride = 37 if n % 37 else 41
        out = []
        for k in range(kills):
            name = self.services[(k * stride) % n].name
            old = self.tool.status_one(name)
            if not old or old < 0 or not alive(old):
                raise Failed(f"{name} is not up before kill {k} (pid {old})")
            os.kill(old, signal.SIGKILL)
            t0 = time.perf_counter()
            while True:
                pid = self.tool.status_one(name)
                now = time.perf_counter()
                if pid and pid > 0 and pid != old and alive(pid):
                    out.append(now - t0)
                    break
                if now - t0 > timeout:
                    raise Failed(f"{name} not back {timeout:g}s after kill -9 of {old}")
                time.sleep(RESTART_POLL)
            time.sleep(gap)
        return out

    def listing_latency(self, reps: int) -> list[float] | None:
        cmd = self.tool.listing_command()
        if cmd is None:
            return None
        out = []
        for _ in range(reps):
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, timeout=120)
            dt = time.perf_counter() - t0
            if r.returncode != 0 and self.tool.name not in ("runit",):
                raise Failed(f"{' '.join(cmd[:3])} ... exited {r.returncode}: {r.stderr.decode()[-200:]}")
            lines = len(r.stdout.splitlines())
            if lines < len(self.services):
                raise Failed(f"the listing printed {lines} lines for {len(self.services)} services")
            out.append(dt)
        return out

    def tracking_check(self) -> str:
        """svcmgr: is every service's process in its contract (cgroup, or the process group it leads)?"""
        if not isinstance(self.tool, Svcmgr):
            return ""
        st = self.tool.status()
        bad = 0
        for _name, pid in st.items():
            if pid <= 0:
                continue
            try:
                if self.tool.cgroup:
                    with open(f"/proc/{pid}/cgroup") as f:
                        ok = "/svcmgr-" in f.read()
                else:
                    ok = os.getpgid(pid) == pid
            except OSError:
                ok = False
            bad += not ok
        return f"{len(st) - bad}/{len(st)} in their contracts"


def summary(values: list[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def percentile(values: list[float], q: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)
