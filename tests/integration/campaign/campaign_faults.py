"""What an operator does in a round of the campaign, and the one fault injected into it.

``operator_work`` picks a few requests (enable, disable, temporary ones, restart, setprop and
refresh, mark and clear, an import of a changed manifest, the milestone) and ``Request.send``
runs one, telling the model what was acknowledged, refused, or sent without a reply. Each
fault in ``FAULTS`` runs the round's work and hits the world once at a random moment, some
deliberately inside a window: a start, stop or refresh method under way (slow methods), an
import on its way in. A fault returns the instances it disturbed, so that the checks know
which running instances must have kept their processes.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from campaign_world import (
    KEEPALIVED,
    MILESTONE,
    MILESTONE_CLOSURE,
    SERVICES,
    VIP,
    Model,
    Refused,
    Unanswered,
    World,
    file_name,
    fill,
    kill,
    manifest_text,
)

from svctest import wait_until

OPERABLE = sorted(f for f in SERVICES if f != MILESTONE)


@dataclass
class Disturbed:
    """What a fault touched: instances whose processes may change, and whether the daemon was restarted."""

    fmris: set[str] = field(default_factory=set)
    daemon_killed: bool = False
    everything: bool = False  # a milestone change or the like: no instance is a bystander
    notes: list[str] = field(default_factory=list)
    window: str = ""


# ==================================================================== requests
@dataclass
class Request:
    """One operator request and what it means to the model."""

    what: str
    fmri: str
    op: str
    args: dict[str, Any]
    on_told: Callable[[Model], None]
    on_unknown: Callable[[Model], None]

    def send(self, w: World, log: list[str]) -> str:
        """done | refused | unsent | unknown; the model is told accordingly."""
        assert w.model is not None
        try:
            w.call(self.op, **self.args)
        except (ConnectionRefusedError, FileNotFoundError):
            log.append(f"{self.what}: daemon down, not sent")
            return "unsent"
        except Unanswered as e:
            self.on_unknown(w.model)
            log.append(f"{self.what}: no reply ({e})")
            return "unknown"
        except Refused as e:
            log.append(f"{self.what}: refused: {e}")
            return "refused"
        self.on_told(w.model)
        log.append(self.what)
        return "done"


def enable(f: str, temporary: bool) -> Request:
    def told(m: Model) -> None:
        (m.temp[f].told(True) if temporary else (m.enabled[f].told(True), m.temp[f].told(None)))

    def unknown(m: Model) -> None:
        (m.temp[f].unknown(True) if temporary else (m.enabled[f].unknown(True), m.temp[f].unknown(None)))

    return Request(f"enable{' -t' if temporary else ''} {f}", f, "enable",
                   {"fmris": [f], "temporary": temporary}, told, unknown)


def disable(f: str, temporary: bool) -> Request:
    def told(m: Model) -> None:
        (m.temp[f].told(False) if temporary else (m.enabled[f].told(False), m.temp[f].told(None)))
        m.maint[f].told(False)  # a disable takes an instance out of maintenance

    def unknown(m: Model) -> None:
        (m.temp[f].unknown(False) if temporary else (m.enabled[f].unknown(False), m.temp[f].unknown(None)))
        m.maint[f].unknown(False)

    return Request(f"disable{' -t' if temporary else ''} {f}", f, "disable",
                   {"fmris": [f], "temporary": temporary}, told, unknown)


def restart(f: str) -> Request:
    return Request(f"restart {f}", f, "restart", {"fmris": [f]}, lambda m: None, lambda m: None)


def mark(f: str) -> Request:
    return Request(f"mark maintenance {f}", f, "mark", {"fmris": [f], "state": "maintenance"},
                   lambda m: m.maint[f].told(True), lambda m: m.maint[f].unknown(True))


def clear(f: str) -> Request:
    return Request(f"clear {f}", f, "clear", {"fmris": [f]},
                   lambda m: m.maint[f].told(False), lambda m: m.maint[f].unknown(False))


def milestone(target: str) -> Request:
    """As dgraph_set_milestone(): the temporary overrides of what the milestone needs (of everything for
    "all") are removed, every instance outside it that is enabled is disabled through its override (and
    out of maintenance, as any disable)."""
    def overrides(m: Model, sure: bool) -> None:
        for f, s in m.temp.items():
            if target == "all" or f in MILESTONE_CLOSURE:
                s.told(None) if sure else s.unknown(None)
                continue
            enabled: set[Any] = set()  # what the instance may be now: its override, else its enabled property
            for t in (s.value, *s.maybe):
                enabled |= {m.enabled[f].value, *m.enabled[f].maybe} if t is None else {t}
            if enabled == {True} and sure:  # a disable, which also ends an operator's maintenance mark
                s.told(False)
                m.maint[f].told(False)
            elif True in enabled:
                s.unknown(False)
                m.maint[f].unknown(False)

    def told(m: Model) -> None:
        m.milestone.told(target)
        overrides(m, True)

    def unknown(m: Model) -> None:
        m.milestone.unknown(target)
        overrides(m, False)

    return Request(f"milestone {target}", "", "milestone", {"target": target}, told, unknown)


def setprop(w: World, f: str) -> Request:
    """``svccfg -s <service> setprop app/gen = N``: the group is the service's (its manifest's), so the property
    is set there, as an operator must (an instance has no group of that name to set it in)."""
    gen = w.next_gen(f)
    service = f.rsplit(":", 1)[0]
    return Request(f"setprop {service} app/gen={gen}", f, "setprop",
                   {"fmri": service, "prop": "app/gen", "values": [str(gen)]},
                   lambda m: m.editing[f].told(gen), lambda m: m.editing[f].unknown(gen))


def refresh(f: str) -> Request:
    def told(m: Model) -> None:
        m.gen[f].told(m.editing[f].value)
        for v in m.editing[f].maybe:
            m.gen[f].unknown(v)

    def unknown(m: Model) -> None:
        for v in (m.editing[f].value, *m.editing[f].maybe):
            m.gen[f].unknown(v)

    return Request(f"refresh {f}", f, "refresh", {"fmris": [f]}, told, unknown)


def import_changed(w: World, f: str) -> Request:
    """The service's manifest with a new ``app/gen``, imported: both copies take it, running ones refresh."""
    gen = w.next_gen(f)
    path = w.daemon.manifest(file_name(f), manifest_text(f, gen))

    def told(m: Model) -> None:
        m.gen[f].told(gen)
        m.editing[f].told(gen)

    def unknown(m: Model) -> None:
        m.gen[f].unknown(gen)
        m.editing[f].unknown(gen)

    return Request(f"import {file_name(f)} (gen {gen})", f, "import",
                   {"files": [{"path": str(path), "content": path.read_text()}]}, told, unknown)


def inject(w: World) -> Request:
    """Errors on a new disk, five of them: the fault manager opens a case for it."""
    w.disks += 1
    dev = f"dev:///chaos-disk{w.disks}"
    return Request(f"fminject 5 x ereport.io.disk.error {dev}", "", "fm.inject",
                   {"ereports": [{"class": "ereport.io.disk.error", "resource": dev}] * 5},
                   lambda m: None, lambda m: None)


def operator_work(w: World, rng: random.Random, n: int) -> list[Request]:
    """``n`` requests an operator might send now."""
    out: list[Request] = []
    kinds: dict[str, tuple[int, Callable[[str], list[Request]]]] = {
        "enable": (6, lambda f: [enable(f, False)]),
        "disable": (4, lambda f: [disable(f, False)]),
        "enable-t": (2, lambda f: [enable(f, True)]),
        "disable-t": (2, lambda f: [disable(f, True)]),
        "restart": (3, lambda f: [restart(f)]),
        "refresh": (2, lambda f: [setprop(w, f), refresh(f)]),
        "mark": (1, lambda f: [mark(f)]),
        "clear": (2, lambda f: [clear(f)]),
        "import": (1, lambda f: [import_changed(w, f)]),
        "milestone": (1, lambda f: [milestone(rng.choice(["all", "all", MILESTONE]))]),
        "inject": (1, lambda f: [inject(w)]),
    }
    names = list(kinds)
    for _ in range(n):
        kind = rng.choices(names, weights=[kinds[k][0] for k in names])[0]
        out += kinds[kind][1](rng.choice(OPERABLE))
    return out


def run_requests(w: World, reqs: list[Request], log: list[str], *, kill_after: float | None = None,
                 d: Disturbed | None = None) -> None:
    """Send the requests in order; with ``kill_after``, kill -9 the daemon that many seconds in, from another
    thread, whatever is under way (requests after it find no daemon)."""
    killer = None
    if kill_after is not None:
        def kill_it() -> None:
            time.sleep(kill_after)
            w.kill_daemon()
            log.append(f"-- daemon killed {kill_after * 1000:.0f} ms in")

        killer = threading.Thread(target=kill_it)
        killer.start()
    for r in reqs:
        if d is not None:
            d.fmris.add(r.fmri)
            if r.op == "milestone":
                d.everything = True
        r.send(w, log)
    if killer is not None:
        killer.join()


# ==================================================================== faults
def _online(w: World, f: str) -> bool:
    return w.listing().get(f, {}).get("state") in ("online", "degraded")


def _wait_log(w: World, f: str, text: str, before: int, timeout: float = 15) -> bool:
    try:
        wait_until(lambda: w.log_of(f).count(text) > before, timeout, interval=0.01, what=f"{text} in {f}")
        return True
    except AssertionError:
        return False


def _kill_and_restart(w: World, d: Disturbed, log: list[str]) -> None:
    w.kill_daemon()
    d.daemon_killed = True
    w.restart_daemon()
    log.append("-- daemon restarted")


def fault_daemon(w: World, rng: random.Random, reqs: list[Request], log: list[str]) -> Disturbed:
    """kill -9 of the daemon at a random moment while the round's requests go in, then a new daemon."""
    d = Disturbed(daemon_killed=True, window="random")
    run_requests(w, reqs, log, kill_after=rng.uniform(0, 0.4), d=d)
    w.restart_daemon()
    log.append("-- daemon restarted")
    return d


def _window(method: str, f: str, trigger: Callable[[World, random.Random], Request | None]) -> Callable[..., Disturbed]:
    def fault(w: World, rng: random.Random, reqs: list[Request], log: list[str]) -> Disturbed:
        d = Disturbed(window=method)
        run_requests(w, reqs, log, d=d)
        before = w.log_of(f).count(f"Executing {method} method")
        r = trigger(w, rng)
        if r is None:
            log.append(f"-- no {method} of {f} to interrupt now; the daemon is killed anyway")
        else:
            d.fmris.add(f)
            r.send(w, log)
            if _wait_log(w, f, f"Executing {method} method", before):
                time.sleep(rng.uniform(0, 1.6))  # the methods take 1.5 s
                log.append(f"-- in the {method} method of {f}")
            else:
                log.append(f"-- the {method} method of {f} did not begin")
        _kill_and_restart(w, d, log)
        return d
    fault.__doc__ = f"kill -9 of the daemon while the {method} method of {f} runs, then a new daemon."
    return fault


def _start_slowstart(w: World, rng: random.Random) -> Request | None:
    f = "svc:/chaos/slowstart:default"
    st = w.listing()[f]["state"]
    if st in ("online", "degraded"):
        return restart(f)
    if st == "disabled":
        return enable(f, rng.random() < 0.3)
    return None


def _stop_slowstop(w: World, rng: random.Random) -> Request | None:
    f = "svc:/chaos/slowstop:default"
    if not _online(w, f):
        return None
    return rng.choice([disable(f, False), disable(f, True), restart(f), mark(f)])


def _refresh_slowrefresh(w: World, rng: random.Random) -> Request | None:
    f = "svc:/chaos/slowrefresh:default"
    if not _online(w, f):
        return None
    setprop(w, f).send(w, [])
    return refresh(f)


def fault_import(w: World, rng: random.Random, reqs: list[Request], log: list[str]) -> Disturbed:
    """kill -9 of the daemon while an import of a changed manifest goes in (and the refreshes it causes)."""
    d = Disturbed(window="import")
    run_requests(w, reqs, log, d=d)
    f = rng.choice(OPERABLE)
    d.fmris.add(f)
    run_requests(w, [import_changed(w, f)], log, kill_after=rng.uniform(0, 0.05))
    d.daemon_killed = True
    w.restart_daemon()
    log.append("-- daemon restarted")
    return d


def _processes_of(w: World, f: str) -> set[int]:
    return {p for p, g in w.processes().items() if g == f}


def _wait_ended(w: World, f: str, old: set[int], log: list[str]) -> None:
    """Wait until every process ``f`` had when one was killed has ended: the restart the kill causes is under
    way. (keepalived's parent takes a second to follow its killed child; a round that began meanwhile would
    see it running on a process about to end, and take its restart for a failed re-adoption.)"""
    try:
        wait_until(lambda: not (_processes_of(w, f) & old), 20, interval=0.05, what=f"the processes of {f} to end")
    except AssertionError as e:
        log.append(f"-- {e}")


def fault_process(w: World, rng: random.Random, reqs: list[Request], log: list[str]) -> Disturbed:
    """kill -9 of a process of a running instance."""
    d = Disturbed()
    run_requests(w, reqs, log, d=d)
    running = [(f, i["pids"]) for f, i in w.listing().items() if i["pids"] and i["state"] in ("online", "degraded")]
    if running:
        f, pids = rng.choice(running)
        pid = rng.choice(pids)
        d.fmris.add(f)
        old = _processes_of(w, f)
        log.append(f"-- kill -9 {pid} of {f}: {kill(pid)}")
        _wait_ended(w, f, old, log)
    return d


def fault_child(w: World, rng: random.Random, reqs: list[Request], log: list[str]) -> Disturbed:
    """kill -9 of a child of the daemon that forked away (chaos/forker: a session of its own, two children)."""
    d = Disturbed()
    run_requests(w, reqs, log, d=d)
    f = "svc:/chaos/forker:default"
    kids = [p for p, g in w.processes().items() if g == f and _comm(p) == "sleep"]
    d.fmris.add(f)
    if kids:
        pid = rng.choice(kids)
        old = _processes_of(w, f)
        log.append(f"-- kill -9 {pid}, a child of the forked daemon of {f}: {kill(pid)}")
        _wait_ended(w, f, old, log)
    return d


def fault_method(w: World, rng: random.Random, reqs: list[Request], log: list[str]) -> Disturbed:
    """kill -9 of a method itself while it runs: a start, a stop or a refresh method."""
    d = Disturbed()
    run_requests(w, reqs, log, d=d)
    method, f, trigger = rng.choice([("start", "svc:/chaos/slowstart:default", _start_slowstart),
                                     ("stop", "svc:/chaos/slowstop:default", _stop_slowstop),
                                     ("refresh", "svc:/chaos/slowrefresh:default", _refresh_slowrefresh)])
    before = w.log_of(f).count(f"Executing {method} method")
    r = trigger(w, rng)
    if r is None:
        log.append(f"-- no {method} method of {f} to kill now")
        return d
    d.fmris.add(f)
    r.send(w, log)
    if not _wait_log(w, f, f"Executing {method} method", before):
        log.append(f"-- the {method} method of {f} did not begin")
        return d
    time.sleep(rng.uniform(0, 1.2))
    pids = w.method_pids(f, method)
    log.append(f"-- kill -9 of the {method} method of {f} ({pids}): {[kill(p) for p in pids]}")
    return d


def fault_broker(w: World, rng: random.Random, reqs: list[Request], log: list[str]) -> Disturbed:
    """The MQTT broker killed (-9) during a burst of events, and started again a while later."""
    d = Disturbed()
    burst = reqs + [restart(f) for f in rng.sample(OPERABLE, 4)]
    t = threading.Timer(rng.uniform(0, 0.3), w.broker.kill)
    t.start()
    run_requests(w, burst, log, d=d)
    t.join()
    time.sleep(rng.uniform(0.2, 2.0))
    run_requests(w, [restart(f) for f in rng.sample(OPERABLE, 2)], log, d=d)  # events while it is away
    w.broker.start()
    log.append("-- broker killed and started again")
    return d


def fault_keepalived(w: World, rng: random.Random, reqs: list[Request], log: list[str]) -> Disturbed:
    """keepalived killed (-9: its parent or its VRRP child) while the virtual address is held."""
    d = Disturbed(fmris={KEEPALIVED})
    run_requests(w, reqs, log, d=d)
    assert w.lab is not None
    if w.settled()[KEEPALIVED]["state"] not in ("online", "degraded"):  # settled: a milestone may be stopping it
        log.append("-- keepalived is not running now (milestone)")
        return d
    try:
        wait_until(lambda: VIP in w.lab.addresses(1), 20, what=f"{VIP} held before the kill")
    except AssertionError as e:
        w.violations.append(f"keepalived runs but {e}; its log ends:\n{w.log_of(KEEPALIVED)[-1500:]}")
        return d
    pids = sorted(_processes_of(w, KEEPALIVED))
    pid = rng.choice(pids)
    log.append(f"-- kill -9 of keepalived {pid} (of {pids}) holding {VIP}: {kill(pid)}")
    _wait_ended(w, KEEPALIVED, set(pids), log)
    return d


def fault_disk(w: World, rng: random.Random, reqs: list[Request], log: list[str]) -> Disturbed:
    """The filesystem under --root full: requests are answered (a persistent change refused with the reason,
    or written if it fits), the daemon keeps running and says why; space comes back, and it writes again."""
    d = Disturbed()
    ballast = w.root / "ballast"
    fill(ballast)
    try:
        run_requests(w, [*reqs, enable(rng.choice(OPERABLE), False), disable(rng.choice(OPERABLE), False),
                         inject(w)], log, d=d)
        time.sleep(rng.uniform(0.2, 1.5))
        w.call("ping")  # still there
        if any("cannot write the repository" in line and "nothing was changed" in line for line in log):
            w.disk_refusals += 1
    finally:
        ballast.unlink()
    log.append("-- space back")
    wait_until(lambda: w.call("ping").get("unwritable") is None, 15, what="the repository written again")
    return d


DAMAGE = {
    "garbage": lambda b: bytes(x ^ 0x5A for x in b),
    "truncated": lambda b: b[:len(b) // 2],
    "empty": lambda b: b"",
    "header": lambda b: b"\0" * 100 + b[100:],
}


def fault_sqlite(w: World, rng: random.Random, reqs: list[Request], log: list[str]) -> Disturbed:
    """The daemon killed, its SQLite file damaged (garbage, truncated, emptied, its header zeroed): the next one
    must refuse it with the reason and the ways out and leave it as it is, never start afresh. The file is then
    put back (as an operator's backup would) and the daemon starts on it."""
    d = Disturbed(daemon_killed=True, window="sqlite")
    run_requests(w, reqs, log, d=d)
    w.kill_daemon()
    lib = w.root / "lib"
    saved = w.work / "saved-repository"
    shutil.rmtree(saved, ignore_errors=True)
    saved.mkdir()
    for p in lib.glob("repository.db*"):
        if p.name.startswith("repository.db") and not p.name.endswith(".good"):
            shutil.copy2(p, saved / p.name)
    how = rng.choice(sorted(DAMAGE))
    db = lib / "repository.db"
    if rng.random() < 0.7:
        # Damaged at rest: everything in the main file first (what a clean stop leaves). Otherwise the pages
        # in the write-ahead log left by the kill may be all SQLite needs, and it starts.
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        how += " at rest"
    db.write_bytes(DAMAGE[how.split()[0]](db.read_bytes()))
    damaged = db.read_bytes()
    r = w.try_start()
    if r is None:
        # It started: SQLite itself took every page from the write-ahead log. Then nothing may be lost.
        log.append(f"-- repository {how}: the daemon started on it (SQLite recovered it from its log)")
        w.sqlite_recovered += 1
        w.kill_daemon()
    else:
        code, text = r
        ok = code == 65 and f"the repository {db} cannot be used" in text and "--restore-repository" in text \
            and db.read_bytes() == damaged
        log.append(f"-- repository {how}: refused (exit {code}), {'as it must' if ok else 'WRONGLY'}")
        if not ok:
            w.violations.append(f"damaged repository ({how}) not refused as it must: exit {code}, "
                                f"untouched {db.read_bytes() == damaged}: {text[-500:]}")
    for p in lib.glob("repository.db*"):
        if not p.name.endswith(".good"):
            p.unlink()
    for p in saved.iterdir():
        shutil.copy2(p, lib / p.name)
    w.restart_daemon()
    log.append("-- repository put back, daemon restarted")
    return d


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


#: name -> (fault, needs: "lab" | "disk" | None). Names are what the figures count.
FAULTS: dict[str, tuple[Callable[..., Disturbed], str | None]] = {
    "daemon": (fault_daemon, None),
    "daemon-in-start": (_window("start", "svc:/chaos/slowstart:default", _start_slowstart), None),
    "daemon-in-stop": (_window("stop", "svc:/chaos/slowstop:default", _stop_slowstop), None),
    "daemon-in-refresh": (_window("refresh", "svc:/chaos/slowrefresh:default", _refresh_slowrefresh), None),
    "daemon-in-import": (fault_import, None),
    "process": (fault_process, None),
    "forked-child": (fault_child, None),
    "method": (fault_method, None),
    "broker": (fault_broker, None),
    "keepalived": (fault_keepalived, "lab"),
    "disk-full": (fault_disk, "disk"),
    "sqlite": (fault_sqlite, None),
}
#: Faults that kill the daemon (each counts as one daemon kill).
DAEMON_KILLS = frozenset({"daemon", "daemon-in-start", "daemon-in-stop", "daemon-in-refresh", "daemon-in-import",
                          "sqlite"})
