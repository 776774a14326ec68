"""The fault campaign: rounds of operator work, one fault injected into each at a random moment, the invariants
checked after each (``campaign_checks``), in both contract modes. Seeds are printed for replay.

In ``make test`` it is short: every fault once in each mode, a few more daemon kills, about a minute a mode.
The long run is ``make campaign`` (``SVCMGR_CAMPAIGN=long``: at least 200 daemon kills and every other fault 20
times in each mode; ``SVCMGR_CAMPAIGN_KILLS`` and ``SVCMGR_CAMPAIGN_EACH`` change those numbers). Replay a run
with ``SVCMGR_CAMPAIGN_SEED=<seed>`` (the seed of a mode is printed with its figures);
``SVCMGR_CAMPAIGN_FAULTS=daemon-in-start,process`` injects only those faults (to chase one);
``SVCMGR_CAMPAIGN_KEEP_GOING=1`` goes on after a violation and counts them all; ``SVCMGR_CAMPAIGN_VERBOSE=1``
prints every round.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest
from campaign_checks import Figures, before, check
from campaign_faults import DAEMON_KILLS, FAULTS, operator_work
from campaign_world import World, small_disk

from vrrp.lab import Lab, missing

MODES = [pytest.param((), id="cgroup"), pytest.param(("--no-cgroup",), id="pgid")]
LONG = os.environ.get("SVCMGR_CAMPAIGN") == "long"


def schedule(rng: random.Random, available: list[str]) -> list[str]:
    """The faults of a run, in a random order: every available one ``each`` times, the daemon kills (every
    window, and random moments) up to ``kills``."""
    each = int(os.environ.get("SVCMGR_CAMPAIGN_EACH", 20 if LONG else 1))
    kills = int(os.environ.get("SVCMGR_CAMPAIGN_KILLS", 200 if LONG else 7))
    plan = [f for f in available for _ in range(each)]
    windows = [f for f in available if f in DAEMON_KILLS]
    n = sum(1 for f in plan if f in DAEMON_KILLS)
    while n < kills and windows:
        plan.append("daemon" if "daemon" in windows and rng.random() < 0.5 else rng.choice(windows))
        n += 1
    rng.shuffle(plan)
    return plan


@pytest.mark.slow
@pytest.mark.timeout(0 if LONG else 600)  # the long run takes ~11 min a mode; a short one ~35 s alone
@pytest.mark.parametrize("mode", MODES)
def test_campaign(mode, tmp_path, record_property):
    seed = int(os.environ.get("SVCMGR_CAMPAIGN_SEED") or random.SystemRandom().randrange(1 << 32))
    seed = seed + (1 if mode else 0)  # a mode's own seed: what is printed replays it
    name = "pgid" if mode else "cgroup"
    print(f"\ncampaign ({name}): SVCMGR_CAMPAIGN_SEED={seed - (1 if mode else 0)} (this mode: {seed})")
    rng = random.Random(seed)
    keep_going = bool(os.environ.get("SVCMGR_CAMPAIGN_KEEP_GOING"))
    verbose = bool(os.environ.get("SVCMGR_CAMPAIGN_VERBOSE"))
    lab = _lab()
    try:
        with small_disk(64) as (root, disk_why):
            w = World(mode, root, tmp_path, lab=lab, disk_why=disk_why)
            only = {f for f in os.environ.get("SVCMGR_CAMPAIGN_FAULTS", "").split(",") if f} or set(FAULTS)
            available = [f for f, (_, needs) in FAULTS.items() if f in only
                         and not (needs == "lab" and lab is None) and not (needs == "disk" and disk_why)]
            for f, (_, needs) in FAULTS.items():
                if f in only and f not in available:
                    print(f"campaign ({name}): fault {f} skipped: "
                          f"{disk_why if needs == 'disk' else 'no network namespace lab (needs root, ip, keepalived)'}")
            fig = Figures()
            t0 = time.monotonic()
            violations: list[str] = []
            try:
                w.open()
                fig.requests["start"] += 1
                for n, fault in enumerate(schedule(rng, available), 1):
                    log: list[str] = []
                    b = before(w)
                    reqs = operator_work(w, rng, rng.randint(1, 5))
                    disturbed = FAULTS[fault][0](w, rng, reqs, log)
                    fig.rounds += 1
                    fig.faults[fault] += 1
                    fig.daemon_kills += fault in DAEMON_KILLS
                    for r in reqs:
                        fig.requests[r.op] += 1
                    bad = check(w, b, disturbed, fig)
                    fig.disk_refusals, fig.sqlite_recovered = w.disk_refusals, w.sqlite_recovered
                    fig.sqlite_refused = fig.faults["sqlite"] - w.sqlite_recovered
                    if verbose:
                        print(f"round {n} ({fault}): " + "; ".join(log))
                    if bad:
                        text = (f"round {n} ({fault}, seed {seed}):\n  " + "\n  ".join(log) + "\n violations:\n  "
                                + "\n  ".join(bad))
                        print(text)
                        violations.append(text)
                        if not keep_going:
                            break
            finally:
                fig.seconds = time.monotonic() - t0
                print(f"campaign ({name}, seed {seed}):\n{fig.table()}")
                record_property("campaign", f"{name}: SVCMGR_CAMPAIGN_SEED={seed - (1 if mode else 0)} replays it; "
                                            f"{fig.table()}")
                _record(name, seed, fig, violations)
                w.close()
                if violations:
                    Path(tmp_path / "daemon.out").exists() and print(
                        "daemon log tail:\n" + (tmp_path / "daemon.out").read_text(errors="replace")[-4000:])
    finally:
        if lab is not None:
            lab.close()
    assert not violations, f"{len(violations)} rounds broke an invariant; replay with SVCMGR_CAMPAIGN_SEED"


def _lab() -> Lab | None:
    if missing():
        return None
    lab = Lab(1, net="10.232.0")
    lab.create()
    return lab


def _record(name: str, seed: int, fig: Figures, violations: list[str]) -> None:
    """The figures of a long run, for the issue's closing note (SVCMGR_CAMPAIGN_RESULTS=file.jsonl)."""
    out = os.environ.get("SVCMGR_CAMPAIGN_RESULTS")
    if not out:
        return
    with open(out, "a") as f:
        f.write(json.dumps({"mode": name, "seed": seed, "figures": {**vars(fig), "faults": dict(fig.faults),
                                                                     "requests": dict(fig.requests)},
                            "violations": violations}) + "\n")
