"""fmadm faulty's catalog: the cases as fmd's records, ordered and printed as illumos' faulty.c does.

A record is one case, or with ``-g`` the cases of the same fault classes, suspects and message
on the same host (their EVENT-IDs listed under the first). Records go most severe first, then
newest first. The default layout: the EVENT-ID line, the host, the fault classes, what the
fault affects with how it is doing (``fault.status``), where the problem is, the knowledge
article wrapped at 80 columns. ``-s``: the EVENT-ID lines only; ``-f``: one entry per
replaceable unit (a suspect that is not a service: a disk); ``-r``: one line per affected
resource with one word. Standard library only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fault.status import affects_words, asru_word, problem_words
from svcmgr.terminal import visible

__all__ = ["Record", "asru_lines", "catalog", "event_line", "fru_lines", "print_line", "record_lines", "summary_header"]

_PRIORITY = {"Minor": 1, "Major": 10, "Critical": 100}
RULE = "--------------- ------------------------------------  -------------- ---------"
PAD = " " * 13


@dataclass
class Record:
    """One line of fmadm faulty: a case, or with -g several alike."""

    case: dict[str, Any]
    more: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> tuple[Any, ...]:
        c = self.case
        return (c["host"], frozenset(c.get("classes") or [c["class"]]),
                frozenset(s["resource"] for s in c["suspects"]), c["msgid"])


def catalog(cases: list[dict[str, Any]], group: bool) -> list[Record]:
    """The records, most severe first, then newest first (cmp_priority)."""
    records: list[Record] = []
    for c in sorted(cases, key=lambda c: c["time_epoch"] or 0):
        r = Record(c)
        same = next((x for x in records if x.key == r.key), None) if group else None
        if same is not None:
            same.more.append(c)
        else:
            records.append(r)
    return sorted(records, key=lambda r: (_PRIORITY.get(r.case["severity"], 0), r.case["time_epoch"] or 0),
                  reverse=True)


def _date(epoch: float | None) -> str:
    return time.strftime("%b %d %H:%M:%S", time.localtime(epoch or 0))


def summary_header(cache_ids: bool) -> list[str]:
    word = "CACHE-ID" if cache_ids else "EVENT-ID"
    return [RULE, f"TIME            {word}                              MSG-ID         SEVERITY", RULE]


def _event_line(case: dict[str, Any]) -> str:
    return f"{_date(case['time_epoch']):<15} {case['uuid']:<37} {case['msgid']:<14} {case['severity']:<9} "


def print_line(label: str, text: str) -> list[str]:
    """A labelled paragraph as fmadm prints it: a blank line, then lines of at most 80 columns where a space
    allows, the next ones under the label."""
    out = [""]
    pad = " " * len(label)
    cp, n = 0, len(text)
    while cp < n:
        i, wp, ep, cut = len(label), None, cp, None
        while ep < n and (wp is None or i < 80):
            ch = text[ep]
            if ch == " ":
                wp = ep
            elif ch == "\n":
                cut = ep
                ep += 1
                while ep < n and text[ep] == " ":
                    ep += 1
                break
            ep += 1
            i += 1
        if cut is None and i >= 80 and wp is not None:
            cut, ep = wp, wp + 1
        out.append(label + text[cp:ep if cut is None else cut])
        cp, label = ep, pad
    return out


def _names(label: str, items: list[tuple[str, list[str], int]], words: Any, limit: int, full: bool) -> list[str]:
    """print_name_list: the names under a label, each with its certainty when below 100%, the status once when
    all share it (else after each), at most ``limit`` names (0: all) unless ``full``."""
    cap = 0 if full else limit
    shown = [it for n, it in enumerate(items) if not cap or n < cap]
    hidden = items[len(shown):]
    if len(hidden) == 1:
        shown, hidden = items, []
    shared = len({frozenset(bits) for _, bits, _ in items}) == 1
    out: list[str] = []
    for n, (name, bits, pct) in enumerate(shown):
        out.append(f"{label if n == 0 else PAD} {name}{f' {pct}%' if 0 < pct < 100 else ''}")
        if not shared and words(bits):
            out.append(f"{PAD}     {words(bits)}")
    if hidden:
        out.append(f"{PAD}... {len(hidden)} more entries suppressed, use -v option for full list")
    if shared and words(items[0][1]):
        out.append(f"{PAD}     {words(items[0][1])}")
    return out


def _frus(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The replaceable units: suspects that are not services (a service is not something one replaces)."""
    return [a for a in case["affected"] if a["role"] == "suspect" and not a["fmri"].startswith("svc:")]


def _fru_word(bits: list[str]) -> str:
    for bit, word in (("not_present", "not present"), ("faulty", "faulty"), ("replaced", "replaced"),
                      ("repaired", "repair attempted"), ("acquitted", "acquitted")):
        if bit in bits:
            return word
    return "removed"


def record_lines(rec: Record, *, full: bool, max_fault: int, cache_ids: bool) -> Iterator[str]:
    """One record after its EVENT-ID line (print_sup_record)."""
    c = rec.case
    more = rec.more
    keep = max(max_fault, 0)
    first = keep // 2
    last_from = len(more) + 1 - (keep - first)
    for n, other in enumerate(more):
        if full or n < first or n >= last_from or max_fault == 0 or len(more) + 1 == max_fault + 1:
            yield f"{_date(other['time_epoch']):<15} {other['uuid']}"
        elif n == first:
            yield f"... {len(more) + 1 - max_fault} more entries suppressed"
    yield ""
    yield f"Host        : {c['host']}"
    yield f"Platform    : {c.get('platform', '-')}\tChassis_id  : "
    yield "Product_sn  : "
    yield ""
    pct = {s["fault"]: s["certainty"] for s in c["suspects"]}
    classes = list(dict.fromkeys(c.get("classes") or [c["class"]]))
    yield from _names("Fault class :", [(k, [], pct.get(k, 100)) for k in classes], lambda b: "", 0, full)
    affected = c["affected"]
    if affected:
        yield from _names("Affects     :", [(a["fmri"], a.get("bits", []), 0) for a in affected], affects_words,
                          max_fault, full)
    suspects = [a for a in affected if a["role"] == "suspect"]
    frus = _frus(c)
    if (full or not frus or not affected) and suspects:
        yield from _names("Problem in  :", [(a["fmri"], a.get("bits", []), 0) for a in suspects], problem_words,
                          max_fault, full)
    if frus:
        yield from _names("FRU         :", [(a["fmri"], a.get("bits", []), a.get("certainty", 100)) for a in frus],
                          _fru_word, 0, full)
    yield from _article(c)
    yield ""


def _article(c: dict[str, Any]) -> Iterator[str]:
    """The case's knowledge article, each paragraph as print_line writes it (print_dict_info)."""
    for label, key in (("Description : ", "description"), ("Response    : ", "response"),
                       ("Impact      : ", "impact"), ("Action      : ", "action")):
        yield from print_line(label, visible(str(c.get(key) or "-"), keep="\n").replace("UUID", c["uuid"]))


def event_line(rec: Record) -> str:
    return _event_line(rec.case)


def fru_lines(records: list[Record], summary: bool) -> Iterator[str]:
    """fmadm faulty -f: each replaceable unit, its status, the cases naming it with their certainty and (but with
    ``summary``, -s) their knowledge article."""
    units: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for rec in records:
        for case in (rec.case, *rec.more):
            for a in _frus(case):
                units.setdefault(a["fmri"], []).append((case, a))
    for name, seen in units.items():
        if not summary:
            yield "-" * 78
        bits = sorted({b for _, a in seen for b in a.get("bits", [])})
        yield f"{name} {_fru_word(bits)}"
        for case, a in seen:
            pct = a.get("certainty", 100)
            what = "total certainty" if pct == 100 else "max certainty"
            yield f"{case['uuid']} 1 suspects in this FRU {what} {pct}%"
        if not summary:  # then the article of each message, once for cases one after the other with the same
            msgid = None
            for case, _ in seen:
                if case["msgid"] != msgid:
                    msgid = case["msgid"]
                    yield from _article(case)


def asru_lines(records: list[Record]) -> Iterator[str]:
    """fmadm faulty -r: each faulty resource (a suspect) with one word for how it is doing."""
    bits: dict[str, set[str]] = {}
    for rec in records:
        for case in (rec.case, *rec.more):
            for a in case["affected"]:
                if a["role"] == "suspect":
                    bits.setdefault(a["fmri"], set()).update(a.get("bits", []))
    for name, b in bits.items():
        yield f"{name:<69} {asru_word(b)}"
