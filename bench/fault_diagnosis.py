"""Ereports per second through the fault manager's diagnosis engine, in process.

    .venv/bin/python bench/fault_diagnosis.py [--n 100000] [--runs 5] [--services 250]

Each scenario feeds N ereports to a fresh ``Diagnosis`` loaded with the shipped
rules, over the real dependency graph (``svcmgr.graph.Graph`` built from parsed
manifests: one database, 25 middle services that need it, the rest need a middle
one) and prints the median rate of ``--runs`` runs:

* ``unmatched``: classes no rule consumes (validation is not included: the floor of a lookup);
* ``disk SERD``: I/O errors spread over 64 disks (SERD engines, open cases, firings);
* ``svc exits, own rules``: exits of services whose dependencies are fine (flapping SERD per service);
* ``svc exits, cascade``: exits of services after the database failed (graph attribution, one case);
* ``full pipeline``: validation, the error log in SQLite (written every 250 ms, as in the daemon) and diagnosis, mixed
  (a third service exits, a third disk errors, a third unmatched); and the same without diagnosis.

and, end to end, the same mix posted with ``fm.inject`` (5000 a request) into a real
``svcmgrd`` until its fault manager has diagnosed them all.

The same run measures the bounds it is compared with: ``validate`` alone, and the
in-process bus delivering events to a subscription (the fault manager's input).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from svcmgr.client import Client, ClientError

# the repository when the packages are not installed; after PYTHONPATH, so that another revision's packages put
# there (``python -m bench --compare``) are the ones measured
sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fault.cases import CaseStore
from fault.diagnosis import Diagnosis
from fault.errlog import ErrorLog
from fault.events import Ereport, validate
from fault.knowledge import load_knowledge
from fault.rules import SHIPPED_RULES, load_rules
from fault.topology import ViewTopology
from svcmgr.bus import Bus
from svcmgr.graph import Graph
from svcmgr.manifest import parse_service
from svcmgr.spec import resolve_instance
from svcmgr.states import State

DB = "svc:/bench/db:default"


class _Inst:
    def __init__(self) -> None:
        self.state = State.ONLINE


class _Engine:
    """What ViewTopology reads of the daemon's services: closures (cached per graph, as the daemon's
    ``svcmgr.facade`` does) and each instance's state."""

    def __init__(self, services: int) -> None:
        configs = {}
        mids = max(1, min(25, services // 10))
        for i in range(services):
            if i == 0:
                name, deps = "bench/db", []
            elif i <= mids:
                name, deps = f"bench/mid{i}", [DB]
            else:
                name, deps = f"bench/leaf{i}", [f"svc:/bench/mid{1 + i % mids}:default"]
            data: dict[str, Any] = {"name": name, "methods": {"start": {"exec": ":true"}}}
            if deps:
                data["dependencies"] = [{"name": "up", "grouping": "require_all", "restart_on": "none",
                                         "fmris": deps}]
            spec = parse_service(data, "bench")
            cfg = resolve_instance(spec, "default")
            configs[str(cfg.fmri)] = cfg
        self.graph = Graph(configs)
        self.instances = {f: _Inst() for f in configs}
        self.fmris = sorted(configs)
        self._closures: dict[tuple[str, tuple[str, ...]], frozenset[str]] = {}

    def instance(self, fmri: str) -> _Inst | None:
        return self.instances.get(fmri)

    def closure(self, fmri: str, groupings: tuple[str, ...]) -> frozenset[str]:
        key = (fmri, tuple(groupings))
        hit = self._closures.get(key)
        if hit is None:
            hit = self._closures[key] = frozenset(self.graph.closure(fmri, key[1]))
        return hit


def _diagnosis(engine: _Engine, conn: sqlite3.Connection | None = None) -> Diagnosis:
    kb, _ = load_knowledge()
    rules, errors = load_rules([SHIPPED_RULES], kb)
    assert not errors, errors
    return Diagnosis(rules, CaseStore(conn), ViewTopology(engine), node="bench", skew=1.0,  # type: ignore[arg-type]
                     conn=conn)


def _ereports(kind: str, n: int, engine: _Engine, rng: random.Random) -> list[Ereport]:
    # own rules: services at the edge of the graph (nothing depends on them, their dependencies are fine);
    # cascade: any service but the database, after the database failed
    leaves = [f for f in engine.fmris if ("leaf" in f if kind == "own" else f != DB)]
    out = []
    for i in range(n):
        if kind == "unmatched":
            e = validate("ereport.bench.nobody", resource=rng.choice(leaves), payload={"i": i})
        elif kind == "disk":
            e = validate("ereport.io.disk.error", resource=f"dev:///dev/sd{rng.randrange(64)}",
                         payload={"sector": i})
        else:  # own, cascade
            e = validate("ereport.svc.exit.signal", resource=rng.choice(leaves),
                         payload={"pid": 1000 + i, "signal": 9, "core": False})
        e.id = i + 1
        out.append(e)
    return out


def _rate(n: int, fn: Callable[[], None]) -> float:
    """Ereports a second through ``fn``. What the set-up made (the graph, the rules, the inputs) is frozen out
    of the cyclic collector's sight first, as the daemon freezes what its boot made (``Daemon.run``): the
    collections during the run scan what the run makes, not the harness's graph again and again."""
    gc.collect()
    gc.freeze()
    try:
        t0 = time.perf_counter()
        fn()
        return n / (time.perf_counter() - t0)
    finally:
        gc.unfreeze()


def bench_diagnosis(kind: str, n: int, services: int, seed: int) -> float:
    engine = _Engine(services)
    rng = random.Random(seed)
    d = _diagnosis(engine)
    evs = _ereports(kind, n, engine, rng)
    # arrival times: spread over an hour, so SERD windows open, fire and age out
    step = 3600.0 / n

    def run() -> None:
        t = 0.0
        if kind == "cascade":
            d.feed(validate("ereport.svc.exit.signal", resource=DB, payload={"pid": 1, "signal": 9}), 0.0)
        for i, e in enumerate(evs):
            t = i * step if kind != "cascade" else min(i * step, 20.0)
            d.feed(e, t)
        d.gc(t)

    r = _rate(n, run)
    if kind == "cascade":
        solved = [c for c in d.store.cases.values() if c.state == "solved"]
        assert len(solved) == 1 and solved[0].suspects[0].resource == DB, solved
    return r


def bench_pipeline(n: int, services: int, seed: int, *, diagnose: bool = True) -> float:
    engine = _Engine(services)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(os.path.join(tmp, "repository.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        d = _diagnosis(engine, conn)
        log = ErrorLog(conn, max_entries=100_000)
        leaves = [f for f in engine.fmris if f != DB]
        # The inputs, made before the clock starts, as three lists of plain values (a tuple per ereport would be
        # a container the cyclic garbage collector keeps scanning, 100,000 of them, which a daemon never holds:
        # its ereports come one by one and go once diagnosed).
        classes, resources, payloads = [], [], []
        for i in range(n):
            k = i % 3
            if k == 0:
                c, res, payload = "ereport.svc.exit.signal", rng.choice(leaves), {"pid": i, "signal": 9, "core": False}
            elif k == 1:
                c, res, payload = "ereport.io.disk.error", f"dev:///dev/sd{rng.randrange(64)}", {"sector": i}
            else:
                c, res, payload = "ereport.bench.nobody", "", {"i": i}
            classes.append(c)
            resources.append(res)
            payloads.append(payload)

        def run() -> None:
            # as the daemon does: cases are written when solved, everything else every 250 ms
            step = 3600.0 / n
            due = time.monotonic() + 0.25
            for i, (cls, res, payload) in enumerate(zip(classes, resources, payloads, strict=True)):
                e = validate(cls, resource=res, payload=payload, source="bench", default_node="bench")
                log.append(e)
                if diagnose:
                    d.feed(e, i * step)
                if i % 64 == 0 and time.monotonic() >= due:
                    log.flush()
                    d.store.flush()
                    d.save_engines(i * step)
                    due = time.monotonic() + 0.25
            log.flush()
            d.store.flush()
            d.save_engines(n * step)

        r = _rate(n, run)
        conn.close()
        return r


def bench_daemon(n: int) -> float:
    """End to end: fm.inject requests of 5000 over the control socket into a real svcmgrd, until diagnosed."""
    root = tempfile.mkdtemp(prefix="svcmgr-bench-", dir="/tmp")
    proc = subprocess.Popen([sys.executable, "-m", "svcmgr.daemon", "--root", root, "--no-register",
                             "--metrics", "", "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c = Client(root)
        for _ in range(500):
            try:
                c.call("ping")
                break
            except ClientError:
                time.sleep(0.02)
        # the same mix as the pipeline: a third exits of 225 services, a third disk errors, a third unmatched
        items = [{"class": ("ereport.svc.exit.signal", "ereport.io.disk.error", "ereport.bench.nobody")[i % 3],
                  "resource": (f"svc:/bench/leaf{i % 225}:default", f"dev:///dev/sd{i % 64}", "")[i % 3],
                  "payload": {"i": i}} for i in range(n)]
        json.dumps(items)  # build before the clock starts
        t0 = time.perf_counter()
        for i in range(0, n, 5000):
            c.call("fm.inject", ereports=items[i:i + 5000])
        while True:
            st = c.call("fm.stat")
            if st["diagnosis"]["processed"] + st["bus"]["dropped"] >= n:
                break
            time.sleep(0.005)
        return n / (time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)


def bench_validate(n: int) -> float:
    payloads = [{"pid": i, "signal": 9, "core": False} for i in range(n)]

    def run() -> None:
        for p in payloads:
            validate("ereport.svc.exit.signal", resource="svc:/bench/leaf1:default", payload=p)

    return _rate(n, run)


def bench_bus(n: int) -> float:
    bus = Bus("bench")
    sub = bus.subscribe("ereport", maxlen=n + 1)

    def run() -> None:
        for i in range(n):
            bus.emit("ereport.svc.exit.signal", "svc:/bench/leaf1:default", pid=i, signal=9)
            sub.get_nowait()

    return _rate(n, run)


SCENARIOS: dict[str, str] = {
    "validate": "bound: validate() alone",
    "bus": "bound: bus emit -> subscription",
    "unmatched": "unmatched class",
    "disk": "disk SERD (64 disks)",
    "own": "svc exits, own rules",
    "cascade": "svc exits, cascade (graph)",
    "log": "validate + SQLite error log, no diagnosis",
    "pipeline": "full pipeline (validate + SQLite log + diagnosis)",
    "daemon": "end to end: fminject requests into svcmgrd",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="ereports per run (default 100000)")
    p.add_argument("--runs", type=int, default=5, help="runs per scenario; the median is shown (default 5)")
    p.add_argument("--services", type=int, default=250, help="services in the graph (default 250)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, from: {', '.join(SCENARIOS)}")
    p.add_argument("--json", help="also write every rate measured to this file ({scenario: [ereports/s, ...]})")
    a = p.parse_args(argv)
    wanted = [k.strip() for k in a.scenarios.split(",") if k.strip()]
    unknown = [k for k in wanted if k not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenarios: {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
    runners: dict[str, Callable[[int], float]] = {
        "validate": lambda s: bench_validate(a.n),
        "bus": lambda s: bench_bus(a.n),
        "unmatched": lambda s: bench_diagnosis("unmatched", a.n, a.services, s),
        "disk": lambda s: bench_diagnosis("disk", a.n, a.services, s),
        "own": lambda s: bench_diagnosis("own", a.n, a.services, s),
        "cascade": lambda s: bench_diagnosis("cascade", a.n, a.services, s),
        "log": lambda s: bench_pipeline(a.n, a.services, s, diagnose=False),
        "pipeline": lambda s: bench_pipeline(a.n, a.services, s),
        "daemon": lambda s: bench_daemon(a.n),
    }
    rows: list[tuple[str, float]] = []
    raw: dict[str, list[float]] = {}
    print(f"# {a.n} ereports per run, median of {a.runs} runs, {a.services} services, Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    for key in wanted:
        name = SCENARIOS[key]
        rates = raw[key] = [runners[key](seed) for seed in range(a.runs)]
        med = statistics.median(rates)
        rows.append((name, med))
        print(f"{name:<52} {med:>12,.0f} ereports/s   (min {min(rates):,.0f}, max {max(rates):,.0f})",
              flush=True)
    print()
    print("| scenario | ereports/s (median) |")
    print("| --- | ---: |")
    for name, med in rows:
        print(f"| {name} | {med:,.0f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(raw, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
