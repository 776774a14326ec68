"""The run: every scenario, each tool in turn (the order rotates each run), on this machine.

The order also reverses every other run, so no tool always follows the same one: a tool's
teardown (a thousand processes killed, their cgroups removed) leaves the kernel work that
would otherwise land on the same successor each time. After each stop the run waits for the
machine to go quiet (``settle``) before the next tool starts.

Per run and per tool, one launch per size N: the time to all up (scenario 1),
and for the warm start the same again on the state a first launch left (svcmgr
launched a second time on the same --root and manifests, the first stopped
cleanly first; the other tools, which keep nothing of a launch, their ordinary start),
and with N = 500 and 1,000 the supervisor's memory once all are up (4); with
N = 1,000 also the listing command (5) and the kill -9 restarts (3) on the same
running set. Then one launch of the 500-service DAG (2) for the tools that
order by dependencies, and for each svcmgr revision the fault manager's
diagnosis rate in process and the MQTT bridge's rate to a local mosquitto
(``bench.side``). Results are kept raw, per run, and summarised by
``bench.report``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.procs import Tracked, reap_orphans
from bench.scenarios import (
    DAG_DEPTH,
    DAG_READY,
    Failed,
    Session,
    boottime,
    dag_services,
    first_start,
    memory,
    sleep_services,
)
from bench.side import applies, run_side
from bench.tools import Tool

__all__ = ["Options", "Results", "run_all"]


@dataclass
class Options:
    runs: int = 3
    sizes: tuple[int, ...] = (100, 500, 1000)
    kills: int = 20
    listing_reps: int = 10
    scenarios: tuple[str, ...] = ("start", "warm", "dag", "restart", "memory", "listing", "diagnosis", "mqtt")
    start_timeout: float = 180.0
    #: fewer ereports and MQTT events (--quick)
    quick: bool = False


@dataclass
class Results:
    machine: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)  # name -> version
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why
    #: key -> tool -> list of values (seconds or MiB); keys like "start/500"
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, key: str, tool: str, v: float | list[float]) -> None:
        lst = self.values.setdefault(key, {}).setdefault(tool, [])
        lst.extend(v if isinstance(v, list) else [v])

    def fail(self, key: str, tool: str, why: str) -> None:
        self.errors.setdefault(key, {})[tool] = why

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return {"cores": os.cpu_count(), "cpu": model, "memory_mib": mem, "python": platform.python_version(),
            "kernel": platform.release(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def fs_type(path: str) -> str:
    """The type of the file system ``path`` is on (the longest mount point above it), or "?"."""
    path, best, kind = os.path.realpath(path), "", "?"
    with contextlib.suppress(OSError), open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 3:
                continue
            point = fields[1].replace("\\040", " ")
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, kind = point, fields[2]
    return kind


def default_work_dir() -> str | None:
    """Where the launches' folders go: /dev/shm when it is a tmpfs anyone may use (as /run, where a
    supervisor's runtime files live on a real system, and /tmp on Debian 13), else None (the temp folder).
    On a disk, making a file can cost far more than the supervisor's own work (this machine's /tmp:
    about 0.7 ms per file shortly after thousands were deleted, against 0.01 ms on tmpfs), and every
    tool makes files per service at start."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) and fs_type(shm) == "tmpfs":
        return shm
    return None


def run_all(tools: list[Tool], opts: Options, log: Any) -> Results:
    res = Results(machine=machine(), options=dict(opts.__dict__))
    live: list[Tool] = []
    for t in tools:
        why = t.available()
        if why:
            res.skipped[t.name] = why
            log(f"skipping {t.name}: {why}")
        else:
            res.tools[t.name] = t.version()
            live.append(t)
    tag = 1_000_000 + random.randrange(100_000)
    for run in range(opts.runs):
        order = run_order(live, run)
        log(f"== run {run + 1}/{opts.runs}: order {', '.join(t.name for t in order)}")
        if {"start", "restart", "memory", "listing"} & set(opts.scenarios):
            for n in opts.sizes:
                for t in order:
                    _session(t, n, tag, run, opts, res, log)
        if "warm" in opts.scenarios:
            for n in opts.sizes:
                for t in order:
                    _warm(t, n, tag, opts, res, log)
        if "dag" in opts.scenarios:
            for t in order:
                if t.supports_dag:
                    _dag(t, tag, opts, res, log)
        if {"diagnosis", "mqtt"} & set(opts.scenarios):
            for t in order:
                if applies(t):
                    run_side(t, opts.scenarios, opts.quick, res, log)  # type: ignore[arg-type]
    res.machine["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for t in live:
        if not t.supports_dag and "dag" in opts.scenarios:
            res.notes.setdefault("dag", {})[t.name] = "no dependency ordering with readiness"
    return res


def run_order(live: list[Tool], run: int) -> list[Tool]:
    """``live`` rotated by one every two runs, and reversed on odd runs: who follows whom changes too."""
    k = run // 2 % len(live) if live else 0
    order = live[k:] + live[:k]
    return order[::-1] if run % 2 else order


def cpu_busy(interval: float) -> float:
    """The share of all CPUs' time that was busy over the next ``interval`` seconds (from /proc/stat)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        idle = ticks[3] + ticks[4]  # idle and iowait
        return sum(ticks), idle

    t0, i0 = sample()
    time.sleep(interval)
    t1, i1 = sample()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def settle(log: Any, quiet: float = 0.15, limit: float = 5.0) -> float:
    """Wait until the machine is quiet (under ``quiet`` busy over 0.2 s), for at most ``limit`` seconds;
    the seconds waited."""
    t0 = time.monotonic()
    busy = 1.0
    while time.monotonic() - t0 < limit:
        busy = cpu_busy(0.2)
        if busy < quiet:
            return time.monotonic() - t0
    log(f"the machine did not go quiet in {limit:.0f} s after a stop ({busy:.0%} busy); going on")
    return time.monotonic() - t0


def _session(t: Tool, n: int, tag: int, run: int, opts: Options, res: Results, log: Any) -> None:
    s = Session(t, sleep_services(n, tag), log)
    biggest = n == max(opts.sizes)
    key = f"start/{n}"
    with _one_launch(t, key, f"start {n:5d}:", res, log):
        dt = s.wait_all_up(opts.start_timeout)
        res.add(key, t.name, dt)
        msg = f"{t.name:20s} start {n:5d}: {dt:7.3f}s"
        if "memory" in opts.scenarios and n >= 500:
            time.sleep(1.0)
            hwm, _rss, pss = memory(t.supervisor_pids())
            res.add(f"memory/{n}", t.name, hwm)
            res.add(f"pss/{n}", t.name, pss)
            msg += f"  peak RSS {hwm:6.1f} MiB (PSS {pss:6.1f})"
        if biggest and "listing" in opts.scenarios:
            lat = s.listing_latency(opts.listing_reps)
            if lat is not None:
                res.add(f"listing/{n}", t.name, lat)
                msg += f"  listing {sorted(lat)[len(lat) // 2] * 1000:6.1f} ms"
        if biggest and "restart" in opts.scenarios:
            time.sleep(1.0)  # every service has run for more than a second (runsv and s6 throttle faster deaths)
            lat = s.restart_latencies(opts.kills)
            res.add(f"restart/{n}", t.name, lat)
            msg += f"  restart p50 {sorted(lat)[len(lat) // 2] * 1000:7.1f} ms"
            chk = s.tracking_check()
            if chk:
                res.notes.setdefault(f"restart/{n}", {})[t.name] = chk
                msg += f"  ({chk})"
        log(msg)


def _warm(t: Tool, n: int, tag: int, opts: Options, res: Results, log: Any) -> None:
    """The start of ``n`` on the state a first launch left: for a tool with ``warm_start``, a first launch to all
    up, stopped cleanly, then the launch measured on the same configuration and state; for the others, their
    ordinary start (they keep nothing of a launch)."""
    s = Session(t, sleep_services(n, tag), log)
    key = f"warm/{n}"
    with _one_launch(t, key, f"warm {n:5d}:", res, log):
        if t.warm_start:
            first = s.wait_all_up(opts.start_timeout)
            _stop(t, log)
            dt = s.wait_all_up(opts.start_timeout, again=True)
            log(f"{t.name:20s} warm {n:5d}: {dt:7.3f}s (the first launch {first:.3f}s)")
        else:
            dt = s.wait_all_up(opts.start_timeout)
            log(f"{t.name:20s} warm {n:5d}: {dt:7.3f}s (its ordinary start)")
        res.add(key, t.name, dt)


def _dag(t: Tool, tag: int, opts: Options, res: Results, log: Any) -> None:
    s = Session(t, dag_services(tag), log)
    with _one_launch(t, "dag/span", "dag:", res, log):
        b0 = boottime()
        dt = s.wait_all_up(opts.start_timeout)
        b1 = boottime()
        first = first_start(tag)
        res.add("dag/launch", t.name, dt)
        if first is not None and first >= b0 - 0.02:
            res.add("dag/span", t.name, b1 - first)
        log(f"{t.name:20s} dag: launch -> all up {dt:6.3f}s, first start -> all up "
            f"{(b1 - first) if first else float('nan'):6.3f}s (critical path {DAG_DEPTH * DAG_READY:.3f}s)")


@contextlib.contextmanager
def _one_launch(t: Tool, key: str, what: str, res: Results, log: Any) -> Iterator[None]:
    """A launch of ``t`` measured under ``key``: a failure is kept in ``res`` and said (``what`` names the
    scenario in the log), and ``t`` is stopped whatever happens."""
    try:
        yield
    except Failed as e:
        res.fail(key, t.name, str(e))
        log(f"{t.name:20s} {what} FAILED: {e}")
    except Exception as e:  # noqa: BLE001 - one tool failing must not end the run
        res.fail(key, t.name, f"{type(e).__name__}: {e}")
        log(f"{t.name:20s} {what} ERROR\n{traceback.format_exc()}")
    finally:
        _stop(t, log)


def _stop(t: Tool, log: Any) -> None:
    try:
        t.stop()
    except Exception:  # noqa: BLE001 - cleanup goes on
        log(f"stopping {t.name} failed:\n{traceback.format_exc()}")
    Tracked.kill_all()
    reap_orphans()
    waited = settle(log)
    if waited > 0.5:
        log(f"{t.name:20s} stopped; the machine was quiet {waited:.1f} s later")
    sys.stdout.flush()
