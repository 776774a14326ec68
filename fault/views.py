"""What the commands see: a case with its knowledge article rendered, and the fault log's records.

``case_view`` is the JSON of ``fmadm faulty --json`` (and what the MQTT bridge or a
fleet view may show): the case, the article's text filled in with the facts of
the case, and each affected resource with its role and present status.
"""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from fault.cases import Case
from fault.disclosure import WITHHELD
from fault.knowledge import KnowledgeBase
from fault.status import affects_words
from svcmgr.terminal import visible

__all__ = ["LIST_EVENTS", "PLATFORM", "case_view", "facts", "log_records"]


def _platform() -> str:
    """What fmadm faulty calls the platform: the machine's product name (DMI), else its architecture."""
    try:
        with open("/sys/class/dmi/id/product_name", encoding="utf-8", errors="replace") as f:
            name = f.read(256).strip()
    except OSError:
        name = ""
    return name or platform.machine() or "-"


PLATFORM = _platform()

#: case history event -> the list event fmd logs for it and fmdump's word for that (an acquittal or a replacement
#: is logged as list.repaired, as fmd does; the suspects' statuses say which)
LIST_EVENTS = {"solved": ("list.suspect", "Diagnosed"), "updated": ("list.updated", "Updated"),
               "isolated": ("list.isolated", "Isolated"), "repaired": ("list.repaired", "Repaired"),
               "acquitted": ("list.repaired", "Repaired"), "replaced": ("list.repaired", "Repaired"),
               "resolved": ("list.resolved", "Resolved")}


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def facts(case: Case, withheld: bool = False) -> dict[str, Any]:
    """The facts a knowledge article's text may name (``withheld``: the detail is ``fault.disclosure.WITHHELD``)."""
    suspects = [s.resource for s in case.suspects]
    detail = WITHHELD if withheld else visible(case.detail or "-")
    return {"suspect": suspects[0] if suspects else case.node, "suspects": ", ".join(suspects) or case.node,
            "impacted": ", ".join(case.impacted) or "none", "impacted_count": len(case.impacted),
            "count": case.ereport_count, "window": case.window, "fires_at": case.fires_at,
            "detail": detail, "class": case.cls, "node": case.node}


def case_view(case: Case, kb: KnowledgeBase, status: Callable[[str, str | None], list[str]],
              withheld: Sequence[str] = ()) -> dict[str, Any]:
    """``status(fmri, suspect status or None)`` gives a resource's status bits now (``fault.status``); each affected
    resource has them (``bits``) and fmadm's words for them (``now``). ``withheld``: the sources whose text the case
    may quote and the caller may not read (``fault.disclosure``): if any, the case's detail and history texts are
    withheld, ``withheld`` names them and ``quotes`` the sources."""
    art = kb.get(case.msgid)
    text = art.render(facts(case, bool(withheld))) if art is not None else {
        "title": case.cls, "description": f"No knowledge article for {case.msgid}.", "response": "-",
        "impact": "-", "action": "-"}
    done = {"degraded": "marked degraded", "maintenance": "put in maintenance",
            "annotated": "in maintenance, its mark naming this case"}
    retired = [f"{f} {done.get(what, what)}" for f, what in case.retired.items()]
    if retired:
        text = dict(text)
        text["response"] = f"{text['response']} The fault manager has {'; '.join(retired)}." \
            if case.response != "none" else f"{text['response']} Now: {'; '.join(retired)}."
    affected = []
    for s in case.suspects:
        bits = status(s.resource, s.status)
        affected.append({"fmri": s.resource, "role": "suspect", "fault": s.fault, "certainty": s.certainty,
                         "status": s.status, "bits": bits, "now": affects_words(bits) or "not present"})
    for f in case.impacted:
        bits = status(f, None)
        affected.append({"fmri": f, "role": "impacted", "bits": bits, "now": affects_words(bits) or "not present"})
    t = case.solved or case.opened
    history = [{**h, "text": WITHHELD} for h in case.history] if withheld else list(case.history)
    view = {
        "uuid": case.uuid, "time": _iso(t), "time_epoch": t, "msgid": case.msgid,
        "severity": case.severity.capitalize(), "class": case.cls, "classes": case.classes,
        "state": str(case.state), "host": case.node, "rule": case.rule,
        "suspects": [asdict(s) for s in case.suspects], "impacted": list(case.impacted),
        "affected": affected, "retired": dict(case.retired),
        "title": text["title"], "description": text["description"], "response": text["response"],
        "impact": text["impact"], "action": text["action"],
        "ereports": list(case.ereports), "ereport_count": case.ereport_count,
        "diagnoses": list(case.diagnoses), "history": history,
        "opened": _iso(case.opened), "solved": _iso(case.solved), "updated": _iso(case.updated),
        "closed": _iso(case.closed),
    }
    if withheld:
        view["withheld"] = ["detail", "history"]
        view["quotes"] = list(withheld)
    return view


def log_records(cases: list[Case], *, xrefs: bool = False,
                withheld: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
    """The fault log: one record per lifecycle event of each case (fmdump without -e), oldest first; ``xrefs``
    adds the ereports that convicted the case (fmdump -V); the records of the cases ``withheld`` names (UUID ->
    the sources whose text the case may quote and the caller may not read) have their text withheld
    (``fault.disclosure``), and say whose (``quotes``)."""
    out = []
    for c in cases:
        hide = (withheld or {}).get(c.uuid)
        for h in c.history:
            if h["event"] not in LIST_EVENTS:
                continue
            list_class, label = LIST_EVENTS[h["event"]]
            rec = {"time": h["time"], "uuid": c.uuid, "msgid": c.msgid, "event": label, "list_class": list_class,
                   "verdict": h["event"], "class": c.cls, "classes": c.classes, "severity": c.severity,
                   "state": str(c.state), "text": WITHHELD if hide else h["text"],
                   "suspects": [asdict(s) for s in c.suspects],
                   "impacted": list(c.impacted), "node": c.node, "rule": c.rule, "diagnosed": c.solved or c.opened}
            if xrefs:
                rec["ereports"] = list(c.ereports)
            if hide:
                rec["withheld"] = ["text"]
                rec["quotes"] = list(hide)
            out.append(rec)
    out.sort(key=lambda r: r["time"])
    return out
