"""FMA's name-value lists for fmdump: a fault log record or an ereport as the event fmd would have logged, printed
as ``nvlist_print`` does, and fmdump's ``-n name[.name]*[=value]`` selection.

An nvlist is a dict, in order; a value is a string, an int (``Hex`` for the protocol's unsigned
members, printed ``0x..``; a plain int is signed, printed in decimal), a bool, a float, a list of
scalars, a dict (an embedded nvlist) or a list of dicts (an array of them). FMRIs are embedded
nvlists (``scheme``, ``svc-name``/``svc-instance``, ``device-path``...), so that
``-n detector.device-path=...`` selects as on illumos. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from svcmgr.terminal import visible

__all__ = ["Hex", "Selector", "ereport", "fault_event", "fmri", "render", "to_json"]

#: fmd's suspect status bits (FM_SUSPECT_*)
SUSPECT_BITS = {"faulty": 0x1, "unusable": 0x2, "not_present": 0x4, "degraded": 0x8, "repaired": 0x10,
                "replaced": 0x20, "acquitted": 0x40}
_NAME = re.compile(r"([^.\[\]]+)(?:\[(\d+)\])?")


def _number(text: str) -> int | None:
    """A number as strtoull(.., 0) reads it: 0x.. hex, 0.. octal, else decimal."""
    t = text.strip()
    try:
        if re.fullmatch(r"[+-]?0[0-7]+", t):
            return int(t, 8)
        return int(t, 0)
    except ValueError:
        return None


class Hex(int):
    """An unsigned member (uint8..uint64): nvlist_print writes it in hex."""


def fmri(text: str, node: str | None = None) -> dict[str, Any]:
    """An FMRI as the embedded nvlist its scheme defines (svc, dev; others keep the string). ``node`` is the
    authority's server-id, left out of a dev FMRI as the drivers' ereports leave it (fmdump's examples)."""
    scheme, _, rest = text.partition(":")
    nvl: dict[str, Any] = {"version": Hex(0), "scheme": scheme}
    if node and scheme != "dev":
        nvl["authority"] = {"version": Hex(0), "server-id": node}
    if scheme == "svc":
        name = rest.lstrip("/")
        svc, _, inst = name.partition(":")
        nvl["svc-name"] = svc
        if inst:
            nvl["svc-instance"] = inst
    elif scheme == "dev":
        nvl["device-path"] = "/" + rest.lstrip("/")
    else:
        nvl["fmri"] = text
    return nvl


def _tod(t: float) -> list[Hex]:
    sec = int(t)
    return [Hex(sec), Hex(round((t - sec) * 1e9) % 1_000_000_000)]


def _payload(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _payload(v) for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [_payload(v) for v in value]
    return value


def ereport(entry: dict[str, Any]) -> dict[str, Any]:
    """An error log entry as its ereport: class, ena (the entry's id), detector (the resource), the payload."""
    nvl: dict[str, Any] = {"class": entry["class"], "ena": Hex(entry.get("id") or 0)}
    if entry.get("resource"):
        nvl["detector"] = fmri(entry["resource"], entry.get("node"))
    if entry.get("source"):
        nvl["source"] = entry["source"]
    for k, v in (entry.get("payload") or {}).items():
        nvl.setdefault(str(k), _payload(v))
    nvl["__ttl"] = Hex(1)
    nvl["__tod"] = _tod(entry["time"])
    return nvl


def suspect_bits(record: dict[str, Any], suspect: dict[str, Any]) -> int:
    """A suspect's status when the record was logged: faulty until the case is closed."""
    if record["list_class"] in ("list.suspect", "list.updated", "list.isolated"):
        return SUSPECT_BITS["faulty"]
    return SUSPECT_BITS.get(suspect.get("status") or "faulty", 0)


def fault_event(record: dict[str, Any], version: str = "") -> dict[str, Any]:
    """A fault log record as the list event fmd logs (list.suspect, list.repaired, ...)."""
    diagnosed = record.get("diagnosed") or record["time"]
    de = {"version": Hex(0), "scheme": "fmd", "authority": {"version": Hex(0), "server-id": record.get("node", "")},
          "mod-name": record.get("rule", ""), "mod-version": version}
    faults = []
    for s in record["suspects"]:
        res = fmri(s["resource"])
        faults.append({"version": Hex(0), "class": s["fault"], "certainty": Hex(s["certainty"]), "asru": res,
                       "resource": res})
    nvl: dict[str, Any] = {"version": Hex(0), "class": record["list_class"], "uuid": record["uuid"],
                           "code": record["msgid"], "diag-time": [int(diagnosed), int(diagnosed % 1 * 1e6)],
                           "de": de, "fault-list-sz": Hex(len(faults))}
    if faults:
        nvl["fault-list"] = faults
        nvl["fault-status"] = [Hex(suspect_bits(record, s)) for s in record["suspects"]]
    if record.get("impacted"):
        nvl["impacted"] = list(record["impacted"])
    nvl["__ttl"] = Hex(1)
    nvl["__tod"] = _tod(record["time"])
    return nvl


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, Hex):
        return f"0x{int(v):x}"
    if isinstance(v, float):
        return f"{v:f}"
    if v is None:
        return ""
    return visible(str(v))


def render(nvl: dict[str, Any], depth: int = 0) -> Iterator[str]:
    """The lines nvlist_print writes: one tab a level, embedded nvlists and arrays of them between markers."""
    pad = "\t" * depth
    yield f"{pad}nvlist version: 0"
    for name, v in nvl.items():
        inner = "\t" * (depth + 1)
        if isinstance(v, dict):
            yield f"{inner}{name} = (embedded nvlist)"
            yield from render(v, depth + 1)
            yield f"{inner}(end {name})"
            yield ""
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            yield f"{inner}{name} = (array of embedded nvlists)"
            for i, x in enumerate(v):
                yield f"{inner}(start {name}[{i}])"
                yield from render(x, depth + 1)
                yield f"{inner}(end {name}[{i}])"
            yield ""
        elif isinstance(v, list):
            yield f"{inner}{name} =" + "".join(" " + _scalar(x) for x in v)
        else:
            yield f"{inner}{name} = {_scalar(v)}"


def to_json(v: Any) -> Any:
    """The nvlist as plain JSON (fmdump -V -j)."""
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_json(x) for x in v]
    return int(v) if isinstance(v, Hex) else v


class Selector:
    """One ``-n name[.name]*[=value]``: the named member exists (an index ``a[1]`` picks an element of an array; an
    array without one, any element) and, given a value, matches it: a string by regular expression (anywhere in
    it, as regexec), a number equal to the value read as octal, hex or decimal, a boolean as true/false/1/0."""

    def __init__(self, text: str) -> None:
        name, eq, value = text.partition("=")
        self.path = []
        for part in name.split("."):
            m = _NAME.fullmatch(part)
            if m is None:
                raise ValueError(f"illegal name in {text!r}")
            self.path.append((m.group(1), None if m.group(2) is None else int(m.group(2))))
        self.value = value.lstrip() if eq else None
        self.regex = None
        if self.value is not None:
            try:
                self.regex = re.compile(self.value)
            except re.error as e:
                raise ValueError(f"unexpected regular expression in {self.value}: {e}") from None

    def _found(self, node: Any, path: list[tuple[str, int | None]]) -> Iterator[Any]:
        if not path:
            yield node
            return
        if isinstance(node, list):
            for x in node:
                yield from self._found(x, path)
            return
        if not isinstance(node, dict):
            return
        (name, index), rest = path[0], path[1:]
        if name not in node:
            return
        v = node[name]
        if index is not None:
            if not isinstance(v, list) or index >= len(v):
                return
            v = v[index]
        yield from self._found(v, rest)

    def _matches(self, v: Any) -> bool:
        if self.value is None:
            return True
        if isinstance(v, list):
            return any(self._matches(x) for x in v)
        if isinstance(v, bool):
            return self.value.lower() in (("true", "1") if v else ("false", "0"))
        if isinstance(v, int):
            return _number(self.value) == v
        if isinstance(v, float):
            try:
                return float(self.value) == v
            except ValueError:
                return False
        assert self.regex is not None
        return isinstance(v, str) and self.regex.search(v) is not None

    def __call__(self, nvl: dict[str, Any]) -> bool:
        return any(self._matches(v) for v in self._found(nvl, self.path))
