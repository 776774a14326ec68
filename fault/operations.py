"""The fault manager's ``fm.*`` socket operations, for fmadm, fmdump, fmstat and fminject (a part of
``fault.daemon.FaultManager``).

Reading is open to everyone. A verdict (``fm.verdict``: repair, acquit, replace) is an
action on each service the case names (``svcmgr.authz``), on other resources root's;
injecting ereports is root's.
"""

from __future__ import annotations

import collections
import fnmatch
import re
from collections.abc import Callable
from typing import Any

from fault.agents import NotifyAgent, RetireAgent
from fault.cases import ACTIVE, Case, CaseEv, CaseState, CaseStore, Change
from fault.config import FaultConfig
from fault.diagnosis import Diagnosis
from fault.errlog import ErrorLog
from fault.events import EreportError, check_resource
from fault.knowledge import KnowledgeBase
from fault.rules import RuleSet, scheme_of
from fault.sources.alertmanager import WebhookReceiver
from fault.sources.inject import ereports_from_request
from fault.sources.kmsg import KmsgSource
from fault.views import case_view, log_records
from svcmgr import authz
from svcmgr.api import ApiError, Caller, arg
from svcmgr.authz import Right
from svcmgr.services import EngineError, Services

__all__ = ["Operations"]

_UUID_RE = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{1,12}){0,4}\Z")
_VERDICTS = {"repair": CaseEv.REPAIR, "acquit": CaseEv.ACQUIT, "replace": CaseEv.REPLACE}


class Operations:
    """The ``fm.*`` operations (a part of ``FaultManager``)."""

    # What this part reads of the fault manager...
    cfg: FaultConfig
    node: str
    clock: Callable[[], float]
    services: Services
    kb: KnowledgeBase
    rules: RuleSet
    load_errors: list[str]
    store: CaseStore
    errlog: ErrorLog
    diag: Diagnosis | None
    retire: RetireAgent
    notify: NotifyAgent
    sources: dict[str, dict[str, int]]
    hold: collections.deque[tuple[float, Any, float]]
    kmsg: KmsgSource | None
    webhook: WebhookReceiver | None
    source_errors: dict[str, str]
    sub: Any
    # ... and does through it:
    post: Callable[..., None]
    act: Callable[[list[Change]], None]

    # ============================================================ views
    def _status(self, fmri: str, suspect_status: str | None) -> str:
        if suspect_status in ("repaired", "acquitted", "replaced"):
            return suspect_status
        inst = self.services.instance(fmri) if fmri.startswith("svc:") else None
        if inst is None:
            return "faulty" if suspect_status == "faulty" else "-"
        state = inst.state.value
        if state == "maintenance":
            return "faulted and taken out of service"
        if state == "degraded":
            return "degraded but still in service"
        if state == "online":
            return "faulty but still in service" if suspect_status == "faulty" else "in service"
        if state == "disabled":
            return "disabled"
        return "not running" if inst.next_state is None else f"{state}, going {inst.next_state.value}"

    def view(self, c: Case) -> dict[str, Any]:
        return case_view(c, self.kb, self._status)

    # ============================================================ operations
    async def op_faulty(self, caller: Caller, req: dict[str, Any]) -> list[dict[str, Any]]:
        """``{"all": bool?, "uuid": str?}``: solved cases (``all``: every case, closed ones too)."""
        everything = arg(req, "all", bool, False)
        uuid = arg(req, "uuid", str, None)
        cases = self.store.query(include_closed=everything, uuid=uuid)
        if not everything:
            cases = [c for c in cases if c.state == CaseState.SOLVED]
        return [self.view(c) for c in cases]

    async def op_dump(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"errlog": bool?, "since": epoch?, "class": glob?, "uuid": str?, "limit": int?}``."""
        errlog = arg(req, "errlog", bool, False)
        since = arg(req, "since", (int, float), None)
        pattern = arg(req, "class", str, None)
        uuid = arg(req, "uuid", str, None)
        limit = max(1, min(arg(req, "limit", int, 1000), 1_000_000))
        if errlog:
            if uuid is not None:
                c = self.store.find(uuid)
                if c is None:
                    raise ApiError(f"{uuid}: no such case", 1)
                found = {x["id"]: x for x in self.errlog.query(ids=[b["id"] for b in c.ereports], limit=limit)}
                entries = [found.get(b["id"], {**b, "payload": {}, "expired": True}) for b in c.ereports]
            else:
                entries = self.errlog.query(since=since, cls=pattern, limit=limit)
            return {"entries": entries, "errlog": self.errlog.statistics()}
        cases = self.store.query(include_closed=True, uuid=uuid)
        records = log_records(cases)
        if since is not None:
            records = [r for r in records if r["time"] >= since]
        if pattern is not None:
            records = [r for r in records if any(fnmatch.fnmatchcase(k, pattern) for k in r["classes"])]
        return {"records": records[-limit:]}

    async def op_stat(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"engines": bool?}``: counters per rule and per source; with ``engines`` each SERD/threshold engine."""
        assert self.diag is not None
        d = self.diag.statistics()
        sources = {k: dict(v) for k, v in self.sources.items()}
        if self.kmsg is not None:
            sources.setdefault("kmsg", {"received": 0, "rejected": 0}).update(
                {f"kmsg_{k}": v for k, v in self.kmsg.counters.items()})
        if self.webhook is not None:
            sources.setdefault("alertmanager", {"received": 0, "rejected": 0}).update(
                {f"webhook_{k}": v for k, v in self.webhook.counters.items()})
        bus = self.sub.statistics()
        out = {"rules": d.pop("rules"), "diagnosis": d, "sources": sources, "errlog": self.errlog.statistics(),
               "cases": self.store.counts(), "bus": {"delivered": bus.delivered, "dropped": bus.dropped,
                                                     "queued": bus.queued},
               "hold": len(self.hold), "source_errors": dict(self.source_errors), "load_errors": self.load_errors,
               "agents": {"marked": self.retire.marked, "cleared": self.retire.cleared,
                          "published": self.notify.published},
               "kmsg": self.kmsg.path if self.kmsg else "", "webhook": self.cfg.webhook}
        if arg(req, "engines", bool, False):
            out["engines"] = self.diag.engine_list(self.clock())
        return out

    async def op_rules(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{}``: the rules in the order they are tried, and the errors of refused files."""
        return {"rules": [r.to_dict() for r in self.rules], "errors": self.load_errors,
                "knowledge": sorted(self.kb.articles)}

    def _resolve(self, target: str) -> str:
        if re.match(r"^[a-z]+:/", target) and not target.startswith("svc:"):
            try:
                return check_resource(target)
            except EreportError as e:
                raise ApiError(f"{target}: {e.message}", 2) from None
        try:
            return self.services.resolve(target)
        except EngineError as e:
            raise ApiError(str(e), e.code) from None

    def _authorize(self, caller: Caller, fmris: list[str], what: str) -> None:
        """A verdict is an action on each service concerned (``svcmgr.authz``); other resources: root."""
        targets = []
        for f in fmris:
            inst = self.services.instance(f) if f.startswith("svc:") else None
            targets.append((f, inst.config.spec if inst is not None else None))
        authz.require(caller, targets, Right.ACTION, what)

    async def op_verdict(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"target": UUID|FMRI, "verdict": "repair"|"acquit"|"replace"}``."""
        assert self.diag is not None
        target = arg(req, "target", str)
        verdict = arg(req, "verdict", str, choices=tuple(_VERDICTS))
        ev = _VERDICTS[verdict]
        case = self.store.find(target) if _UUID_RE.fullmatch(target) else None
        if case is not None:
            if not case.active:
                raise ApiError(f"{case.uuid}: the case is already {case.state}", 1)
            jobs: list[tuple[Case, list[str] | None]] = [(case, None)]
            concerned = [s.resource for s in case.faulty]
        else:
            if _UUID_RE.fullmatch(target) and "-" in target:
                raise ApiError(f"{target}: no such case (fmadm faulty -a lists them)", 1)
            fmri = self._resolve(target)
            cases = [c for c in self.store.cases.values() if c.state in ACTIVE and c.suspect(fmri) is not None
                     and c.suspect(fmri).status == "faulty"]  # type: ignore[union-attr]
            if not cases:
                raise ApiError(f"{fmri}: no open case names it as a faulty suspect (fmadm faulty lists them)", 1)
            jobs = [(c, [fmri]) for c in cases]
            concerned = [fmri]
        self._authorize(caller, concerned, verdict)
        changes: list[Change] = []
        done = []
        for c, res in jobs:
            got = self.diag.close(c, ev, res, f"{verdict} requested by {caller.describe()} (fmadm {verdict})")
            changes.extend(got)
            if got:
                done.append(c)
        self.act(changes)
        return {"cases": [{"uuid": c.uuid, "state": str(c.state)} for c in done], "fmris": concerned,
                "verdict": verdict}

    async def op_inject(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"ereports": [{"class", "resource"?, "payload"?, "time"?, "node"?}, ...]}`` (root only)."""
        authz.require_operator(caller, "inject ereports")

        def resolve(name: str) -> str:
            try:
                return self.services.resolve(name)
            except EngineError as e:
                raise ValueError(str(e)) from None

        try:
            ereports = ereports_from_request(req.get("ereports"), node=self.node, resolve=resolve)
        except EreportError as e:
            raise ApiError(str(e), 2) from None
        unmatched = sorted({e.cls for e in ereports if not self.rules.consumers(e.cls, scheme_of(e.resource))})
        for e in ereports:
            self.post(e.cls, e.resource, e.payload, "inject", e.time)
        return {"posted": len(ereports), "unmatched": unmatched}
