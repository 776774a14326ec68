"""The fault manager's ``fm.*`` socket operations, for fmadm, fmdump, fmstat and fminject (a part of
``fault.daemon.FaultManager``).

Reading is open to everyone, but a line of a service's log that a log pattern made an ereport's payload, and the
texts of a case that may quote one, only to root and those the service grants ``log``; a kernel-log ereport's
payload, and the texts of a case that may quote one, only to those the kernel gives its log (root;
everyone while ``kernel.dmesg_restrict`` is 0) and, of a service's own process, those it grants ``log``
(``fault.disclosure``). A
verdict (``fm.verdict``: repair, acquit, replace) is an action on each service the case names (``svcmgr.authz``), on
other resources root's; injecting ereports is root's.
"""

from __future__ import annotations

import asyncio
import collections
import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from fault.agents import NotifyAgent, RetireAgent
from fault.cases import ACTIVE, Case, CaseEv, CaseState, CaseStore, Change
from fault.config import FaultConfig
from fault.diagnosis import Diagnosis
from fault.disclosure import Reader
from fault.errlog import ErrorLog
from fault.events import EreportError, check_resource
from fault.knowledge import KnowledgeBase
from fault.rules import RuleSet, scheme_of
from fault.sources.alertmanager import WebhookReceiver
from fault.sources.inject import ereports_from_request
from fault.sources.kmsg import KmsgSource
from fault.status import bits_of
from fault.views import PLATFORM, case_view, log_records
from svcmgr import authz
from svcmgr.api import ApiError, Caller, arg
from svcmgr.authz import Right
from svcmgr.fmri import MAX_GLOB, MAX_GLOB_TEXT, ROOT_SCALE, glob_text, is_glob, name_test
from svcmgr.services import EngineError, Services

__all__ = ["Operations"]

_UUID_RE = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{1,12}){0,4}\Z")
_VERDICTS = {"repair": CaseEv.REPAIR, "acquit": CaseEv.ACQUIT, "replace": CaseEv.REPLACE}
MAX_UUIDS = 1000
MAX_EREPORTS_SHOWN = 1000
#: records one ``fm.dump`` reply carries at most: for root, and for any other caller (fmdump's --last default).
#: The reply is built and encoded on the event loop, which 100,000 error log entries held for seconds.
MAX_DUMP, MAX_DUMP_USER = 1_000_000, 10_000
#: error log rows read between two turns of the event loop while an ``fm.dump`` reply is built
DUMP_PAGE = 1000


def _uuids(req: dict[str, Any]) -> list[str]:
    """``uuid`` (one) or ``uuids`` (a list, at most 1000) of a request, each once (one named 1,000 times had its
    ereports read, and given, 1,000 times)."""
    one = arg(req, "uuid", str, None)
    many = arg(req, "uuids", list, None) or []
    if len(many) > MAX_UUIDS or not all(isinstance(u, str) for u in many):
        raise ApiError(f"uuids: expected at most {MAX_UUIDS} strings", 2)
    return list(dict.fromkeys(([one] if one is not None else []) + many))


def _within_globs(patterns: list[str], caller: Caller) -> None:
    """Refuse a class glob of more than ``fmri.MAX_GLOB`` characters (no class is that long), or globs of more than
    ``fmri.MAX_GLOB_TEXT`` in all (root: ``fmri.ROOT_SCALE`` times more): fnmatch makes each different glob a
    regular expression in time quadratic in its unclosed brackets, in the event loop (one of 100,000 ``[`` held it
    for minutes)."""
    globs = [p for p in patterns if is_glob(p)]
    long = next((p for p in globs if len(p) > MAX_GLOB), None)
    if long is not None:
        raise ApiError(f"class: {long[:24]!r}...: a glob of more than {MAX_GLOB} characters", 2)
    if glob_text(globs) > MAX_GLOB_TEXT * (ROOT_SCALE if caller.privileged else 1):
        raise ApiError(f"class: globs of more than {MAX_GLOB_TEXT} characters in all", 2)


def _seconds(req: dict[str, Any], key: str) -> float | None:
    """A time of ``fm.dump`` (seconds since the epoch) as a float: NaN, an infinity or an integer beyond a float is
    a bad request naming the argument (an integer beyond 64 bits reached SQLite, an internal error)."""
    v = arg(req, key, (int, float), None)
    if v is None:
        return None
    try:
        t = float(v)
    except OverflowError:
        t = math.inf
    if not math.isfinite(t):
        raise ApiError(f"bad request: fm.dump: {key!r} must be a finite number of seconds since the epoch", 2)
    return t


def _pick(cases: list[Case], uuids: list[str]) -> list[Case]:
    """The cases one of ``uuids`` names: exactly, or as a prefix of at least 8 characters."""
    return [c for c in cases if any(c.uuid == u or (len(u) >= 8 and c.uuid.startswith(u)) for u in uuids)]


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
    loaded: float
    # ... and does through it:
    post: Callable[..., None]
    act: Callable[[list[Change]], None]

    # ============================================================ views
    def _bits(self, fmri: str, suspect_status: str | None) -> list[str]:
        """A resource's status bits (``fault.status``): the suspect's status, and a service's state."""
        if fmri.startswith("svc:"):
            inst = self.services.instance(fmri)
            return bits_of(suspect_status, inst.state.value if inst is not None else None)
        return bits_of(suspect_status, "")

    def view(self, c: Case, withheld: Sequence[str] = ()) -> dict[str, Any]:
        return {**case_view(c, self.kb, self._bits, withheld), "platform": PLATFORM}

    # ============================================================ operations
    async def op_faulty(self, caller: Caller, req: dict[str, Any]) -> list[dict[str, Any]]:
        """``{"all": bool?, "uuid": str?, "uuids": [str]?}``: solved cases (``all``: every case, closed ones too;
        ``uuid``/``uuids``: only these)."""
        everything = arg(req, "all", bool, False)
        uuids = _uuids(req)
        cases = self.store.query(include_closed=everything or bool(uuids))
        if uuids:
            cases = _pick(cases, uuids)
        elif not everything:
            cases = [c for c in cases if c.state == CaseState.SOLVED]
        reader = Reader(caller, self.services)
        return [self.view(c, reader.withholds(c, self.rules)) for c in cases]

    async def op_dump(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"errlog": bool?, "since": epoch?, "until": epoch?, "class": glob|[glob]?, "uuid": str|[str]?,
        "limit": int?, "xrefs": bool?, "after": int?}``: the last ``limit`` records at or after ``since``, at or
        before ``until``, of any of the classes (fault log: the list event's class or a fault class), of any of
        the cases (error log: the ereports that convicted them); ``xrefs`` gives each fault record its ereports.
        ``more`` says that older ones matched too. The error log's entries are those logged after the entry
        ``after`` (``last``, the newest entry's id, is what fmdump -e -f asks after next: an ereport a detector
        dated earlier than the last one shown is still new)."""
        errlog = arg(req, "errlog", bool, False)
        after = arg(req, "after", int, None)
        if after is not None and not -2**63 <= after < 2**63:  # what SQLite's integers hold
            raise ApiError("bad request: fm.dump: 'after' must be an error log id (a 64-bit integer)", 2)
        since, until = _seconds(req, "since"), _seconds(req, "until")
        raw = req.get("class")
        patterns = [raw] if isinstance(raw, str) else arg(req, "class", list, None)
        if patterns is not None and not all(isinstance(p, str) for p in patterns):
            raise ApiError("class: expected a string or a list of strings", 2)
        if patterns is not None and len(patterns) > MAX_UUIDS:
            raise ApiError(f"class: at most {MAX_UUIDS} patterns", 2)
        _within_globs(patterns or [], caller)
        uuids = _uuids(req)
        limit = max(1, min(arg(req, "limit", int, 1000), MAX_DUMP if caller.privileged else MAX_DUMP_USER))

        of_class = name_test(patterns or [])

        def keep(t: float, classes: list[str]) -> bool:
            return ((since is None or t >= since) and (until is None or t <= until)
                    and (not patterns or any(of_class(k) for k in classes)))

        reader = Reader(caller, self.services)
        if errlog:
            last = self.errlog.last_id  # what this reply covers: what arrives while it is read is asked for next
            if uuids:
                entries = []
                for u in uuids:
                    c = self.store.find(u)
                    if c is None:
                        raise ApiError(f"{u}: no such case", 1)
                    found = {x["id"]: x for x in self.errlog.query(ids=[b["id"] for b in c.ereports],
                                                                   limit=MAX_EREPORTS_SHOWN)}
                    entries.extend(found.get(b["id"], {**b, "payload": {}, "expired": True}) for b in c.ereports)
                entries = [reader.entry(e) for e in entries
                           if keep(e["time"], [e["class"]]) and (after is None or e["id"] > after)]
            else:
                pages: list[list[dict[str, Any]]] = []
                for page in self.errlog.pages(since=since, until=until, cls=patterns, after=after, limit=limit + 1,
                                              page=DUMP_PAGE):
                    pages.append([reader.entry(e) for e in page if keep(e["time"], [e["class"]])])
                    await asyncio.sleep(0)  # the next page after a turn of the loop
                entries = [e for page in reversed(pages) for e in page]
            return {"entries": entries[-limit:], "more": len(entries) > limit, "limit": limit,
                    "errlog": self.errlog.statistics(), "last": last}
        cases = self.store.query(include_closed=True)
        if uuids:
            cases = _pick(cases, uuids)
        withheld = {c.uuid: why for c in cases if (why := reader.withholds(c, self.rules))}
        records = [r for r in log_records(cases, xrefs=arg(req, "xrefs", bool, False), withheld=withheld)
                   if keep(r["time"], [r["list_class"], *r["classes"]])]
        return {"records": records[-limit:], "more": len(records) > limit, "limit": limit}

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
               "kmsg": self.kmsg.path if self.kmsg else "", "webhook": self.cfg.webhook,
               "loaded": self.loaded, "now": time.time()}
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
        """``{"target": UUID|FMRI, "verdict": "repair"|"acquit"|"replace", "case": UUID?, "by": "any"|"resource"?}``:
        close a case (a UUID), or record the verdict on a resource (an FMRI) in every open case naming it faulty
        (``case``: in that case only; ``by`` resource: the target is not taken as a UUID, as fmadm repaired,
        replaced and acquit FMRI UUID do)."""
        assert self.diag is not None
        target = arg(req, "target", str)
        verdict = arg(req, "verdict", str, choices=tuple(_VERDICTS))
        only = arg(req, "case", str, None)
        by = arg(req, "by", str, "any", choices=("any", "resource"))
        ev = _VERDICTS[verdict]
        case = self.store.find(target) if by == "any" and only is None and _UUID_RE.fullmatch(target) else None
        if case is not None:
            if not case.active:
                raise ApiError(f"{case.uuid}: the case is already {case.state}", 1)
            jobs: list[tuple[Case, list[str] | None]] = [(case, None)]
            concerned = [s.resource for s in case.faulty]
        else:
            if by == "any" and only is None and _UUID_RE.fullmatch(target) and "-" in target:
                raise ApiError(f"{target}: no such case (fmadm faulty -a lists them)", 1)
            fmri = self._resolve(target)
            cases = [c for c in self.store.cases.values() if c.state in ACTIVE and c.suspect(fmri) is not None
                     and c.suspect(fmri).status == "faulty"]  # type: ignore[union-attr]
            if only is not None:
                cases = _pick(cases, [only])
                if not cases:
                    raise ApiError(f"{only}: no open case names {fmri} as a faulty suspect", 1)
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
        """``{"ereports": [{"class", "resource"?, "payload"?, "time"?, "node"?}, ...], "check": bool?}`` (root only):
        post them, all or none (``check``: only validate them, as fminject does with each request of a file that
        takes several before it posts any)."""
        authz.require_operator(caller, "inject ereports")
        check = arg(req, "check", bool, False)

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
        if check:
            return {"posted": 0, "unmatched": unmatched}
        for e in ereports:
            self.post(e.cls, e.resource, e.payload, "inject", e.time)
        return {"posted": len(ereports), "unmatched": unmatched}
