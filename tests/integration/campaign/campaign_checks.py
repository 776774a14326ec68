"""The invariants checked after every round of the campaign, and the figures they add up to.

After a round has settled: every acknowledged persistent setting is kept (enable states,
maintenance marks, property values in both copies, and nothing but the values a request
without a reply may have left); every instance is where its settings and dependencies say;
no process of this daemon's contracts lives outside a running instance; running instances
that the round did not touch kept their processes across a daemon restart (re-adopted);
every event reached the subscriber in order, without a gap, once the broker is back; open
fault cases are still open; keepalived, when it runs, holds the virtual address.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from campaign_faults import Disturbed
from campaign_world import KEEPALIVED, SERVICES, VIP, World

from svctest import wait_until

#: How long a process outside every running instance may take to go (a method finishing, a stray being ended).
ORPHAN_GRACE = 10.0


@dataclass
class Figures:
    rounds: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    daemon_kills: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    lost_settings: int = 0
    wrong_states: int = 0
    orphans: int = 0
    readopted: int = 0
    not_readopted: int = 0
    events_seen: int = 0
    events_lost: int = 0
    events_dropped: int = 0  # by the daemon itself, before the outbox
    events_out_of_order: int = 0
    cases_kept: int = 0
    cases_lost: int = 0
    vip_lost: int = 0
    disk_refusals: int = 0
    sqlite_refused: int = 0
    sqlite_recovered: int = 0
    seconds: float = 0.0

    def table(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        return (f"rounds {self.rounds} in {self.seconds:.0f}s; daemon kills {self.daemon_kills}; faults: {faults}\n"
                f"requests: {dict(sorted(self.requests.items()))}\n"
                f"lost settings {self.lost_settings}, wrong states {self.wrong_states}, orphans {self.orphans}, "
                f"re-adoptions {self.readopted} (lost {self.not_readopted}), events {self.events_seen} (lost "
                f"{self.events_lost}, dropped before the outbox {self.events_dropped}, out of order "
                f"{self.events_out_of_order}), open cases kept {self.cases_kept} (lost {self.cases_lost}), VIP lost "
                f"{self.vip_lost}; full disk: {self.disk_refusals} refusals with the reason; damaged repository "
                f"refused {self.sqlite_refused}, recovered by SQLite {self.sqlite_recovered}")


@dataclass
class Before:
    """What the round started from."""

    pids: dict[str, list[int]]
    cases: dict[str, set[str]]  # open case uuid -> resources it names


def before(w: World) -> Before:
    listing = w.listing()
    pids = {f: i["pids"] for f, i in listing.items() if i["state"] in ("online", "degraded") and i["pids"]}
    return Before(pids, _open_cases(w))


def _open_cases(w: World) -> dict[str, set[str]]:
    return {c["uuid"]: {a["fmri"] for a in c.get("affected", [])} for c in w.call("fm.faulty")}


def check(w: World, b: Before, d: Disturbed, fig: Figures) -> list[str]:
    """Every invariant; the violations (empty: all held). Updates the figures."""
    assert w.model is not None
    bad: list[str] = []
    listing = w.settled()
    seen = _settings(w, bad, fig)
    # -- states
    states = {f: i["state"] for f, i in listing.items()}
    for f in seen:
        want = w.model.expected_state(f, seen, states)
        got = listing[f]["state"]
        if got not in want:
            fig.wrong_states += 1
            bad.append(f"wrong state: {f} is {got}, expected {'/'.join(sorted(want))} "
                       f"(reason: {listing[f].get('reason')!r})")
    # -- processes
    bad += _orphans(w, fig)
    # -- re-adoption
    if d.daemon_killed and not d.everything:
        touched = _with_dependents(d.fmris)
        for f, pids in b.pids.items():
            if f in touched:
                continue
            now = listing.get(f)
            if now is None or now["state"] not in ("online", "degraded"):
                continue
            if sorted(now["pids"]) == sorted(pids):
                fig.readopted += 1
            else:
                fig.not_readopted += 1
                bad.append(f"not re-adopted: {f} ran {pids} before the daemon was killed, now {now['pids']}")
    # -- events
    bad += _events(w, fig)
    # -- cases
    after = _open_cases(w)
    for uuid, resources in b.cases.items():
        if resources & d.fmris:
            continue  # an operator's request on it may have closed it
        if uuid in after:
            fig.cases_kept += 1
        else:
            fig.cases_lost += 1
            bad.append(f"open case lost: {uuid} ({sorted(resources)})")
    # -- the virtual address
    if w.lab is not None and listing.get(KEEPALIVED, {}).get("state") == "online":
        try:
            wait_until(lambda: w.lab.holders(VIP) == [1], 20, interval=0.1, what=f"{VIP} held")
        except AssertionError:
            fig.vip_lost += 1
            bad.append(f"keepalived runs but {VIP} is not held (holders {w.lab.holders(VIP)})")
    bad += w.violations
    w.violations.clear()
    return bad


def _settings(w: World, bad: list[str], fig: Figures) -> dict[str, dict[str, Any]]:
    """What the daemon has of every acknowledged setting, checked against the model, which then takes it."""
    m = w.model
    assert m is not None
    seen: dict[str, dict[str, Any]] = {}
    for f in m.enabled:
        info = w.call("show", fmri=f)
        maint = info["marks"].get("maintenance", {})
        s = {"enabled_persistent": info["enabled_persistent"],
             "temp": info["enabled"] if info["temporary"] else None,
             "maint": maint.get("by") == "operator" and not maint.get("temporary"),
             "enabled": info["enabled"]}
        checks = [("enabled", m.enabled[f], s["enabled_persistent"]), ("temporary", m.temp[f], s["temp"]),
                  ("maintenance mark", m.maint[f], s["maint"])]
        if f in SERVICES:
            checks += [("app/gen", m.gen[f], _gen(w, f, "running")), ("app/gen (editing)", m.editing[f],
                                                                   _gen(w, f, "current"))]
        for what, setting, value in checks:
            if not setting.allows(value):
                fig.lost_settings += 1
                bad.append(f"setting lost: {f} {what} is {value!r}, the operator was told {setting.value!r}"
                           + (f" (or {sorted(setting.maybe, key=repr)})" if setting.maybe else ""))
            setting.settle(value)
        seen[f] = s
    milestone = w.call("ping")["milestone"]
    if not m.milestone.allows(milestone):
        fig.lost_settings += 1
        bad.append(f"milestone is {milestone}, the operator was told {m.milestone.value}")
    m.milestone.settle(milestone)
    return seen


def _gen(w: World, f: str, view: str) -> int:
    """app/gen as svcprop reads it: the running snapshot, or (``current``) the editing configuration."""
    return int(w.call("props", fmri=f, view=view)["pgs"]["app"]["gen"]["values"][0])


def _orphans(w: World, fig: Figures) -> list[str]:
    """Processes of this daemon's contracts that belong to no running instance, for longer than the grace."""
    deadline = time.monotonic() + ORPHAN_GRACE
    while True:
        listing = w.listing()
        owned = {p for i in listing.values() if i["state"] in ("online", "degraded") for p in i["pids"]}
        stray = {p: f for p, f in w.processes().items() if p not in owned}
        if not stray or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    fig.orphans += len(stray)
    return [f"orphan: process {p} of {f} ({_cmdline(p)}) outside every running instance "
            f"({f} is {listing.get(f, {}).get('state')})" for p, f in stray.items()]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _with_dependents(fmris: set[str]) -> set[str]:
    out = set(fmris)
    grew = True
    while grew:
        grew = False
        for f, (_, requires) in SERVICES.items():
            if f not in out and out & {d for d, _ in requires}:
                out.add(f)
                grew = True
        if "svc:/chaos/web:default" in out and "svc:/chaos/opt:default" not in out:
            out.add("svc:/chaos/opt:default")  # optional_all: it waits for web while web starts
            grew = True
    return out


def _events(w: World, fig: Figures) -> list[str]:
    """Once the broker has every event (the outbox empty), the subscriber has them all, in order."""
    def drained() -> Any:
        st = w.call("mqtt")
        return st if st.get("connected") and st["outbox"]["depth"] == 0 else None

    try:
        st = wait_until(drained, 30, interval=0.1, what="the outbox to empty")
    except AssertionError as e:
        return [f"events: {e}"]
    top = st["events"]
    bad = []
    pid = w.call("ping")["pid"]
    dropped = st.get("lost", 0) - (w.events_dropped if w.daemon_pid == pid else 0)
    w.events_dropped, w.daemon_pid = st.get("lost", 0), pid
    if dropped > 0:
        fig.events_dropped += dropped
        bad.append(f"events lost by the daemon before they reached the outbox: {dropped}")
    try:
        wait_until(lambda: max(w.subscriber.seqs(), default=0) >= top, 20, interval=0.1,
                   what=f"the subscriber to get event {top}")
    except AssertionError:
        pass
    seqs = w.subscriber.seqs()
    first: list[int] = []
    seen: set[int] = set()
    for s in seqs:
        if s not in seen:
            seen.add(s)
            first.append(s)
    out_of_order = sum(1 for a, b in itertools.pairwise(first) if b < a)
    missing = sorted(set(range(1, top + 1)) - seen)
    new_missing = len(missing) - fig.events_lost
    fig.events_seen = len(seen)
    if new_missing > 0:
        bad.append(f"events lost: {new_missing} (seq {missing[:20]}{'...' if len(missing) > 20 else ''}) of {top}")
    if out_of_order > fig.events_out_of_order:
        bad.append(f"events out of order: {out_of_order}")
    fig.events_lost = len(missing)
    fig.events_out_of_order = out_of_order
    return bad
