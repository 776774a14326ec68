"""The columns of ``svcs`` as svcs.c prints them: each one's name, fixed width, cell and sort key.

A line is each cell padded to its column's width and followed by one space, the
line's trailing blanks cut (a longer value pushes the rest of the line along, as
svcs does); the header is the column names padded the same way. An ``item`` is one
instance as the ``list`` operation describes it.
"""

from __future__ import annotations

import functools
import time
from collections import namedtuple
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (2-4 ms of each command's start)
if TYPE_CHECKING:
    from typing import Any

    Item = dict[str, Any]

__all__ = ["COLUMNS", "Column", "header", "line", "lines", "process_line", "sort", "stime"]

#: svcs.c's state characters (S, N, SN) and abbreviations (STA, NSTA).
_CHAR = {"uninitialized": "u", "offline": "0", "online": "1", "maintenance": "m", "disabled": "d",
         "degraded": "D", "legacy_run": "L"}
_ABBREV = {"uninitialized": "UN", "offline": "OFF", "online": "ON", "maintenance": "MNT", "disabled": "DIS",
           "degraded": "DGD", "legacy_run": "LRC"}
#: Sort rank of a state: the least interesting first (unknown states last).
_RANK = {"disabled": 1, "online": 2, "degraded": 3, "offline": 4, "maintenance": 5, "uninitialized": 6}


def _rank(state: str | None) -> int:
    return _RANK.get(state or "", 7)


def stime(epoch: float | None, now: float | None = None) -> str:
    """svcs' STIME: ``%k:%M:%S`` within 24 hours, ``%b_%d`` within about a year, else the year."""
    if epoch is None:
        return "-"
    now = time.time() if now is None else now
    if now - epoch < 24 * 3600:
        return _clock(int(epoch))
    if now - epoch < 12 * 30 * 24 * 3600:
        return time.strftime("%b_%d", time.localtime(epoch))
    return time.strftime("%Y", time.localtime(epoch))


@functools.lru_cache(maxsize=1024)
def _clock(second: int) -> str:
    """``%k:%M:%S`` of a second (instances started together share it: a listing formats each once)."""
    t = time.localtime(second)
    return f"{t.tm_hour:2d}:{t.tm_min:02d}:{t.tm_sec:02d}"


class Column(namedtuple("Column", ("name", "width", "cell", "key", "help", "right", "next_state", "reads"),
                        defaults=(False, False, ()))):
    """One column: what ``typing.NamedTuple`` makes, from ``collections``: svcs starts without typing (2-4 ms),
    nor dataclasses and inspect (``fmri._Frozen``)."""

    __slots__ = ()
    name: str
    width: int
    cell: Callable[[Item, bool], str]  # (item, whether a next-state column is shown) -> text
    key: Callable[[Item], Any]
    help: str
    # the defaults are namedtuple's (a value here would hide the field):
    right: bool  # right-aligned (CTID); False
    next_state: bool  # a next-state column: STATE, STA and S then carry no '*'; False
    reads: tuple[str, ...]  # the fields of the ``list`` reply its cell and its key read; ()


def _star(item: Item, nstate_shown: bool) -> str:
    return "*" if item.get("nstate") and not nstate_shown else ""


def _ctid(item: Item, _n: bool) -> str:
    return "-" if item.get("ctid") is None else str(item["ctid"])


_STATE = ("state", "nstate")

COLUMNS: dict[str, Column] = {c.name: c for c in (
    Column("CTID", 6, _ctid, lambda i: i.get("ctid") or 0, "contract ID for service", right=True,
           reads=("ctid",)),
    Column("DESC", 100, lambda i, n: (i.get("desc") or "-").replace("\n", " "), lambda i: 0,
           "human-readable description of the service", reads=("desc",)),
    Column("FMRI", 50, lambda i, n: i["fmri"], lambda i: i["fmri"][:50],
           "Fault Managed Resource Identifier for service", reads=("fmri",)),
    Column("INST", 20, lambda i, n: i.get("inst") or "-", lambda i: (i.get("inst") or "-")[:20],
           "portion of the FMRI indicating service instance", reads=("inst",)),
    Column("N", 1, lambda i, n: _CHAR.get(i.get("nstate") or "", "-") if i.get("nstate") else "-",
           lambda i: _rank(i.get("nstate")), "abbreviation for next state (if in transition)", next_state=True,
           reads=("nstate",)),
    Column("NSTA", 4, lambda i, n: _ABBREV.get(i.get("nstate") or "", "?") if i.get("nstate") else "-",
           lambda i: _rank(i.get("nstate")), "abbreviation for next state (if in transition)", next_state=True,
           reads=("nstate",)),
    Column("NSTATE", 13, lambda i, n: i.get("nstate") or "-", lambda i: _rank(i.get("nstate")),
           "name for next state (if in transition)", next_state=True, reads=("nstate",)),
    Column("S", 2, lambda i, n: _CHAR.get(i.get("state") or "", "?") + _star(i, n),
           lambda i: _rank(i.get("state")), "abbreviation for current state", reads=_STATE),
    Column("SCOPE", 20, lambda i, n: "localhost", lambda i: "localhost",
           "name for scope associated with service"),
    Column("SN", 2, lambda i, n: _CHAR.get(i.get("state") or "", "?")
           + (_CHAR.get(i["nstate"], "?") if i.get("nstate") else "-"),
           lambda i: (_rank(i.get("state")), _rank(i.get("nstate"))),
           "abbreviation for current state and next state", next_state=True, reads=_STATE),
    Column("SVC", 20, lambda i, n: i.get("svc") or "-", lambda i: (i.get("svc") or "-")[:20],
           "portion of the FMRI representing service name", reads=("svc",)),
    Column("STA", 4, lambda i, n: _ABBREV.get(i.get("state") or "", "?") + _star(i, n),
           lambda i: _rank(i.get("state")), "abbreviation for current state", reads=_STATE),
    Column("STATE", 14, lambda i, n: (i.get("state") or "-") + _star(i, n), lambda i: _rank(i.get("state")),
           "name for current state", reads=_STATE),
    Column("STIME", 8, lambda i, n: stime(i.get("stime_epoch")), lambda i: i.get("stime_epoch") or 0.0,
           "time of last state change", reads=("stime_epoch",)),
    Column("ZONE", 16, lambda i, n: "global", lambda i: "global", "name of zone (svcmgr has one: global)"),
)}


def header(cols: list[Column]) -> str:
    return "".join(c.name.ljust(c.width) + " " for c in cols).rstrip()


def lines(cols: list[Column], items: list[Item]) -> list[str]:
    """Each instance's line, made a column at a time (1,000 instances: a few calls per cell, not a dozen)."""
    shown = any(c.next_state for c in cols)
    cells = [[(str.rjust if c.right else str.ljust)(c.cell(i, shown), c.width) for i in items] for c in cols]
    return [" ".join(row).rstrip() for row in zip(*cells, strict=True)]


def line(cols: list[Column], item: Item) -> str:
    """One instance's line."""
    return lines(cols, [item])[0]


def process_line(started: float | None, pid: int, comm: str, now: float | None = None) -> str:
    """One process under its instance (``svcs -p``): start time, pid and command name."""
    return f"{'':15}{stime(started, now):<8}   {pid:>6} {comm}"


def sort(items: list[Item], keys: list[tuple[Column, bool]]) -> list[Item]:
    """Sort by each (column, descending) in turn, the first the most significant; stable."""
    out = list(items)
    for col, descending in reversed(keys):
        out.sort(key=col.key, reverse=descending)
    return out
