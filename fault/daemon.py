"""The fault manager as a component of svcmgrd: wiring, tasks and the ``fm.*`` socket operations.

Ereports reach it on the bus (from the restarter, manifests' log patterns, the
MQTT bridge, and its own sources: the kernel log, the Alertmanager webhook and
``fminject``). Each is validated (a malformed one is refused and counted), stored
in the error log and remembered on arrival; ereports about services wait
``correlation_skew`` before diagnosis so that a dependency's failure reported a
moment late still counts as first. The diagnosis engine's changes go to the
response agents (retire, then notify). ``svc.cleared`` from the engine repairs the
cases of the cleared service; ``svc.state.online`` lets a degrade be asserted again.

Operations (``fault.operations``; reading is open to everyone, a service's log lines only with its log right, the
kernel log's only to those the kernel would give it: ``fault.disclosure``):

* ``fm.faulty {"all": bool?, "uuid": str?}`` -> cases as ``fmadm faulty`` shows them;
* ``fm.dump {"errlog": bool?, "since": epoch?, "class": glob?, "uuid": str?, "limit": int?}``
  -> the fault log's records, or error log entries;
* ``fm.stat {"engines": bool?}`` -> per rule and per source counters and times;
* ``fm.rules {}`` -> the loaded rules and the errors of refused files;
* ``fm.verdict {"target": UUID|FMRI, "verdict": "repair"|"acquit"|"replace"}``: root, or a
  user holding the action (or value) authorization of every service suspect concerned;
* ``fm.inject {"ereports": [{"class", "resource"?, "payload"?, "time"?, "node"?}]}``: root only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import sqlite3
import time
from typing import Any

from fault.agents import NotifyAgent, RetireAgent
from fault.cases import CaseState, CaseStore, Change
from fault.config import FaultConfig
from fault.diagnosis import Diagnosis
from fault.errlog import ErrorLog
from fault.events import EreportError, validate
from fault.knowledge import SHIPPED, KnowledgeBase, load_knowledge
from fault.operations import Operations
from fault.rules import SHIPPED_RULES, RuleSet, load_rules
from fault.sources.alertmanager import WebhookReceiver
from fault.sources.kmsg import KmsgSource
from fault.topology import ViewTopology
from svcmgr.eventclasses import EREPORT, LIST_UPDATED, SVC_CLEARED, state_class
from svcmgr.events import Event
from svcmgr.services import Services

__all__ = ["FaultManager", "create"]

log = logging.getLogger("fault")

MAX_HOLD = 50_000
_MAX_SOURCES = 32
#: Seconds after an ereport (a service's death, say) that the fault manager is woken to take it and what came
#: meanwhile: diagnosis is not urgent, the restart the death sets going is (its stop and start run first).
LAG = 0.02


def _load(cfg: FaultConfig) -> tuple[KnowledgeBase, RuleSet, list[str]]:
    kb, kb_errors = load_knowledge([SHIPPED, *cfg.knowledge])
    paths = ([SHIPPED_RULES] if cfg.builtin_rules else []) + list(cfg.rules)
    rules, rule_errors = load_rules(paths, kb)
    return kb, rules, [str(e) for e in (*kb_errors, *rule_errors)]


class FaultManager(Operations):
    name = "fault"

    def __init__(self, ctx: Any, cfg: FaultConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.node = ctx.node
        self.clock = ctx.clock
        self.services: Services = ctx.services
        self.kb, self.rules, self.load_errors = _load(cfg)
        conn = ctx.db
        self.store = CaseStore(conn, keep_closed=cfg.cases_keep)
        self.errlog = ErrorLog(conn, max_entries=cfg.errlog_max, retention=cfg.errlog_retention)
        self.diag: Diagnosis | None = None
        self._unwritable_said = 0.0  # when "cannot write the repository" was last logged
        self.retire = RetireAgent(ctx.services)
        self.notify = NotifyAgent(ctx.bus)
        self.sources: dict[str, dict[str, int]] = {}
        self.hold: collections.deque[tuple[float, Any, float]] = collections.deque()
        self._wake = asyncio.Event()
        #: pid -> FMRI, from the restarter's exit ereports (for OOM kills reported after the reaping)
        self.exited: collections.OrderedDict[int, str] = collections.OrderedDict()
        self.kmsg: KmsgSource | None = None
        self.webhook: WebhookReceiver | None = None
        self.source_errors: dict[str, str] = {}
        self._warned = 0
        self.loaded = time.time()

    # ============================================================ setup
    def setup(self) -> None:
        ctx = self.ctx
        for e in self.load_errors:
            log.error("fault rules refused: %s", e)
        self.store.load()
        self.diag = Diagnosis(self.rules, self.store, ViewTopology(self.services), node=self.node,
                              skew=self.cfg.correlation_skew, conn=ctx.db)
        self.diag.load_engines(self.clock())
        self.sub = ctx.bus.subscribe(EREPORT, maxlen=50_000, lag=LAG)
        self.svc_sub = ctx.bus.subscribe(SVC_CLEARED, state_class("online"))
        ctx.bus.listen(self._listen)
        for op in ("faulty", "dump", "stat", "rules", "verdict", "inject"):
            ctx.api.register(f"fm.{op}", getattr(self, f"op_{op}"))
        kmsg = self._kmsg_path()
        if kmsg:
            self.kmsg = KmsgSource(kmsg, lambda c, r, p: self.post(c, r, p, "kmsg"), self.resolve_pid)
        addr = self.cfg.webhook_address
        if addr is not None:
            self.webhook = WebhookReceiver(addr[0], addr[1],
                                           lambda c, r, p, t: self.post(c, r, p, "alertmanager", t),
                                           secret=self.cfg.webhook_secret, node=self.node)
        active = sum(1 for c in self.store.cases.values() if c.active)
        log.info("fault manager: %d rules, %d knowledge articles, %d cases open; kernel log: %s; webhook: %s",
                 len(self.rules), len(self.kb), active, kmsg or "off", self.cfg.webhook or "off")

    def _kmsg_path(self) -> str:
        """``auto``: the host's kernel log for the system daemon; a private one (``--root``) leaves it alone."""
        k = self.cfg.kmsg
        if k == "auto":
            private = self.ctx.paths.root is not None
            return "/dev/kmsg" if not private and os.access("/dev/kmsg", os.R_OK) else ""
        return k

    def reconfigure(self, config: Any) -> None:
        cfg = config.section("fault") or FaultConfig()
        kb, rules, errors = _load(cfg)
        for e in errors:
            log.error("fault rules refused: %s", e)
        self.kb, self.rules, self.load_errors = kb, rules, errors
        assert self.diag is not None
        self.diag.set_rules(rules)
        self.diag.skew = cfg.correlation_skew
        self.errlog.max_entries = cfg.errlog_max
        self.errlog.retention = cfg.errlog_retention
        self.store.keep_closed = cfg.cases_keep
        if (cfg.webhook, cfg.kmsg) != (self.cfg.webhook, self.cfg.kmsg):
            log.warning("fault: webhook and kmsg changes take effect when svcmgrd restarts")
        if self.webhook is not None and cfg.webhook_secret:
            self.webhook.secret = cfg.webhook_secret  # a rotated credential applies at once
        self.cfg = cfg
        log.info("fault manager: %d rules loaded", len(rules))

    # ============================================================ tasks
    def announce_open_cases(self) -> int:
        """Say again, as ``list.updated``, every solved case still open: the metrics, the MQTT
        bridge and the VRRP agent keep no memory across a daemon restart."""
        n = 0
        for case in sorted(self.store.cases.values(), key=lambda c: c.opened):
            if case.state == CaseState.SOLVED:
                self.ctx.bus.emit(LIST_UPDATED, "", **case.event_data(), announced=True)
                n += 1
        return n

    async def run(self) -> None:
        self.announce_open_cases()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._consume(), name="fault-ereports")
                tg.create_task(self._release(), name="fault-hold")
                tg.create_task(self._svc_events(), name="fault-svc")
                tg.create_task(self._housekeeping(), name="fault-housekeeping")
                if self.kmsg is not None:
                    tg.create_task(self._source("kmsg", self.kmsg.run()), name="fault-kmsg")
                if self.webhook is not None:
                    tg.create_task(self._source("webhook", self.webhook.run()), name="fault-webhook")
        finally:
            self._flush()

    async def _source(self, name: str, coro: Any) -> None:
        """A source that fails (a port in use, an unreadable file) is logged; the rest goes on."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.source_errors[name] = f"{type(e).__name__}: {e}"
            log.exception("fault: source %s stopped: %s", name, self.source_errors[name])

    async def _consume(self) -> None:
        n = 0
        while True:
            ev = await self.sub.get()
            self.receive(ev)
            n += 1
            if n % 512 == 0:
                await asyncio.sleep(0)

    async def _release(self) -> None:
        n = 0
        while True:
            if not self.hold:
                self._wake.clear()
                await self._wake.wait()
                continue
            due, e, arrived = self.hold[0]
            delay = due - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            self.hold.popleft()
            self._process(e, arrived)
            n += 1
            if n % 512 == 0:
                await asyncio.sleep(0)

    async def _svc_events(self) -> None:
        async for ev in self.svc_sub:
            try:
                self._on_svc(ev)
            except Exception:
                log.exception("fault: handling %s of %s failed", ev.cls, ev.resource)

    def _on_svc(self, ev: Event) -> None:
        assert self.diag is not None
        if ev.cls == SVC_CLEARED:
            case = ev.data.get("case")
            self.act(self.diag.on_cleared(ev.resource, case if isinstance(case, str) else None))
        elif ev.cls == state_class("online"):
            c = self.diag.solved_case_for(ev.resource)
            if c is not None and c.response == "degrade" and self.retire.on_online(ev.resource, c):
                self.store.save(c)

    async def _housekeeping(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(0.25)
            tick += 1
            self._flush()
            if tick % 20 == 0:
                assert self.diag is not None
                with contextlib.suppress(Exception):
                    self.diag.gc(self.clock())
            if tick % 2400 == 1:
                try:
                    n = self.errlog.expire()
                except Exception:
                    log.exception("fault: error log expiry failed")
                else:
                    if n:
                        log.info("fault: %d ereports older than the retention dropped", n)

    def _flush(self) -> None:
        try:
            self.errlog.flush()
            self.store.flush()
            if self.diag is not None:
                self.diag.save_engines(self.clock())
        except sqlite3.Error as e:
            # A full disk: what waits stays queued and the next tick writes it; said once a minute.
            if time.monotonic() - self._unwritable_said > 60:
                self._unwritable_said = time.monotonic()
                log.error("fault: cannot write the repository: %s; cases and ereports wait to be written", e)
        except Exception:
            log.exception("fault: cannot write the repository")

    # ============================================================ ereports
    def post(self, cls: str, resource: str, payload: dict[str, Any], source: str,
             when: float | None = None) -> None:
        """Publish an ereport from one of our sources on the bus (we consume it from there like any other)."""
        data = dict(payload)
        data["source"] = source
        self.ctx.bus.publish(Event(cls, resource, data, self.node, time.time() if when is None else when))

    def _listen(self, ev: Event) -> None:
        if ev.cls.startswith("ereport.svc.exit.") and isinstance(ev.data.get("pid"), int):
            self.exited[ev.data["pid"]] = ev.resource
            if len(self.exited) > 4096:
                self.exited.popitem(last=False)

    def resolve_pid(self, pid: int, memcg: str | None) -> str | None:
        """The service whose contract held ``pid`` (or the memory cgroup ``memcg``)."""
        return self.services.owner(pid, memcg) or self.exited.get(pid)

    def _source_stats(self, source: str) -> dict[str, int]:
        st = self.sources.get(source)
        if st is None:
            if len(self.sources) >= _MAX_SOURCES:
                source = "other"
                st = self.sources.get(source)
            if st is None:
                st = self.sources[source] = {"received": 0, "rejected": 0}
        return st

    def receive(self, ev: Event) -> None:
        data = ev.data if isinstance(ev.data, dict) else {}
        src = data.get("source")
        if isinstance(src, str) and src:
            source = src[:32]
            payload = {k: v for k, v in data.items() if k != "source"}
        else:
            source = "restarter" if ev.cls.startswith("ereport.svc.") else "bus"
            payload = data
        st = self._source_stats(source)
        try:
            e = validate(ev.cls, time_=ev.time, node=ev.node, resource=ev.resource, payload=payload,
                         source=source, default_node=self.node)
        except EreportError as err:
            st["rejected"] += 1
            self.errlog.reject()
            self._warned += 1
            if self._warned <= 20 or self._warned % 1000 == 0:
                log.warning("fault: ereport refused (%d so far): %s", self._warned, err)
            return
        st["received"] += 1
        self.errlog.append(e)
        now = self.clock()
        assert self.diag is not None
        self.diag.arrive(e, now)
        if self.cfg.correlation_skew <= 0 or not e.resource.startswith("svc:") or len(self.hold) >= MAX_HOLD:
            self._process(e, now)
        else:
            self.hold.append((now + self.cfg.correlation_skew, e, now))
            self._wake.set()

    def _process(self, e: Any, arrived: float) -> None:
        assert self.diag is not None
        try:
            changes = self.diag.process(e, arrived)
        except Exception:
            self.diag.counters["errors"] += 1
            log.exception("fault: diagnosis of %s (%s) failed", e.cls, e.resource)
            return
        if changes:
            self.act(changes)

    def act(self, changes: list[Change]) -> None:
        for ch in changes:
            if ch.kind == "suspect":
                with contextlib.suppress(Exception):
                    self.errlog.flush()
            try:
                if self.retire.apply(ch):
                    self.store.save(ch.case)
            except Exception:
                log.exception("fault: retire agent failed on case %s", ch.case.uuid)
            try:
                self.notify.apply(ch)
            except Exception:
                log.exception("fault: notify agent failed on case %s", ch.case.uuid)
            log.info("fault: case %s %s: %s %s on %s", ch.case.uuid, ch.kind, ch.case.cls, ch.case.msgid,
                     ", ".join(s.resource for s in ch.case.suspects))

    def statistics(self) -> dict[str, Any]:
        counts = self.store.counts()
        return {"cases": counts, "errlog": self.errlog.statistics(), "rules": len(self.rules)}


def create(ctx: Any) -> FaultManager:
    cfg = ctx.config.section("fault") or FaultConfig()
    return FaultManager(ctx, cfg)
