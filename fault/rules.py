"""Diagnosis rules: declarative TOML files (``manifests/fault/*.toml``), validated at load.

Each ``[[rule]]`` says which ereport classes it consumes (``match``), on which
kinds of resource (``resources``: FMRI schemes), how evidence becomes a fault, and
what the fault is:

* ``serd = { n = N, t = "10m" }``: a SERD engine per resource, firing at N+1 events within T (fmd's);
* ``threshold = { field = "value", above = X, below = Y, count = K }``: a telemetry value out of bounds
  on K consecutive ereports;
* ``cascade = { window = "30s" }``: graph-aware: a failure of a service within the window after one of
  its dependencies failed (or while that dependency is unhealthy) is a symptom of the dependency;
* none of those: the first ereport is the fault.

then ``fault`` (the class diagnosed: ``fault.*``, ``defect.*``, ``upset.*`` or ``alert.*``),
``severity`` (minor, major, critical), ``msgid`` (an article in the knowledge base),
``certainty`` (percent), ``response`` (none, degrade, maintenance) and optionally
``resolve_when`` (payload values that mean the condition is over).

A bad file is refused whole; its errors name the file, the rule and the reason,
and the other files still load.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fault.events import class_matches
from fault.knowledge import MSGID_RE, KnowledgeBase
from fault.serd import Bound
from svcmgr.paths import shipped
from svcmgr.schema import MISSING, FieldError, Reader, read_toml, toml_files

__all__ = ["RESPONSES", "SEVERITIES", "SHIPPED_RULES", "Rule", "RuleSet", "human_duration", "load_rules",
           "scheme_of"]

#: The rules shipped with svcmgr (source tree, or where pip installed the data files).
SHIPPED_RULES = Path(shipped("fault") or Path(__file__).resolve().parent.parent / "manifests" / "fault")
SEVERITIES = ("minor", "major", "critical")
RESPONSES = ("none", "degrade", "maintenance")
SCHEMES = ("svc", "dev", "hc", "mod", "cpu", "mem", "zfs", "pkg", "sw", "alert", "node", "net", "file")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\Z")
_MATCH_RE = re.compile(r"^ereport(\.[A-Za-z0-9_-]{1,64}){0,8}(\.\*)?\Z")
_FAULT_RE = re.compile(r"^(fault|defect|upset|alert)(\.[A-Za-z0-9_-]{1,64}){1,8}\Z")
_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z")
_CACHE_MAX = 4096


def human_duration(seconds: float | None) -> str:
    """600 -> 10m, 90 -> 90s, 0.5 -> 500ms, 86400 -> 1d."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


#: resource -> its scheme, remembered for the resources seen (bounded: a source may make resources up)
_schemes: dict[str, str] = {}


def scheme_of(resource: str) -> str:
    """``svc:/a/b:c`` -> ``svc``; "" (the node itself) -> ``node``. Remembered per resource: diagnosis asks at every
    ereport, and a scheme given again is the same string, its hash known (the key of the rules it goes to)."""
    hit = _schemes.get(resource)
    if hit is None:
        if len(_schemes) >= _CACHE_MAX:
            _schemes.clear()
        hit = _schemes[resource] = sys.intern(resource.partition(":")[0]) if resource else "node"
    return hit


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    match: tuple[str, ...]
    resources: tuple[str, ...]
    kind: str  # serd | threshold | cascade | immediate
    fault: str
    severity: str
    msgid: str
    certainty: int
    response: str
    source: str
    n: int | None = None
    t: float | None = None
    bound: Bound | None = None
    window: float | None = None
    resolve_when: tuple[tuple[str, Any], ...] = ()

    def consumes(self, cls: str, scheme: str) -> bool:
        if self.resources and scheme not in self.resources:
            return False
        return any(class_matches(p, cls) for p in self.match)

    def resolves(self, payload: dict[str, Any]) -> bool:
        return bool(self.resolve_when) and all(payload.get(k) == v for k, v in self.resolve_when)

    def describe_engine(self) -> str:
        if self.kind == "serd":
            return f"SERD N={self.n} T={human_duration(self.t)}"
        if self.kind == "threshold":
            assert self.bound is not None
            return f"threshold {self.bound.describe()}"
        if self.kind == "cascade":
            return f"cascade window {human_duration(self.window)}"
        return "first event"

    @property
    def window_text(self) -> str:
        w = self.t if self.kind == "serd" else self.window
        return human_duration(w) if w is not None else "-"

    @property
    def fires_at(self) -> int:
        if self.kind == "serd":
            assert self.n is not None
            return self.n + 1
        if self.kind == "threshold":
            assert self.bound is not None
            return self.bound.count
        return 1

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "match": list(self.match),
                "resources": list(self.resources), "engine": self.kind, "detail": self.describe_engine(),
                "fault": self.fault, "severity": self.severity, "msgid": self.msgid,
                "certainty": self.certainty, "response": self.response, "source": self.source,
                "resolve_when": dict(self.resolve_when)}


class RuleSet:
    """The loaded rules, with a cache from (class, scheme) to the rules that consume it."""

    def __init__(self, rules: list[Rule] | None = None) -> None:
        self.rules: list[Rule] = list(rules or [])
        self.by_name = {r.name: r for r in self.rules}
        self._cache: dict[tuple[str, str], tuple[Rule, ...]] = {}

    def consumers(self, cls: str, scheme: str) -> tuple[Rule, ...]:
        key = (cls, scheme)
        hit = self._cache.get(key)
        if hit is None:
            hit = tuple(r for r in self.rules if r.consumes(cls, scheme))
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.rules)


def _rule(r: Reader, kb: KnowledgeBase | None, source: str) -> Rule | None:
    name = r.str("name", required=True, pattern=_NAME_RE)
    description = r.str("description", "")
    match = r.strlist("match", nonempty=True)
    for m in match:
        if not _MATCH_RE.fullmatch(m):
            r.error("match", f"{m!r} is not an ereport class or pattern (e.g. ereport.svc.exit.* or "
                             "ereport.io.disk.error)")
    resources = r.strlist("resources", ())
    for s in resources:
        if s not in SCHEMES:
            r.error("resources", f"unknown FMRI scheme {s!r} (known: {', '.join(SCHEMES)})")
    fault = r.str("fault", required=True)
    if fault is not None and not _FAULT_RE.fullmatch(fault):
        r.error("fault", f"{fault!r} is not a fault class (fault.*, defect.*, upset.* or alert.*, "
                         "e.g. fault.svc.flapping)")
    severity = r.str("severity", "major", choices=SEVERITIES)
    msgid = r.str("msgid", required=True)
    if msgid is not None:
        if not MSGID_RE.fullmatch(msgid):
            r.error("msgid", f"{msgid!r} is not a message id (e.g. SVC-8000-3Q)")
        elif kb is not None and msgid not in kb:
            r.error("msgid", f"{msgid} has no article in the knowledge base")
    certainty = r.int("certainty", 100, lo=1, hi=100)
    response = r.str("response", "none", choices=RESPONSES)
    engines = [k for k in ("serd", "threshold", "cascade") if r.has(k)]
    if len(engines) > 1:
        r.error(engines[1], f"a rule has one engine, not both {engines[0]} and {engines[1]}")
    kind = engines[0] if engines else "immediate"
    n = t = window = None
    bound = None
    if kind == "serd":
        s = r.table("serd")
        assert s is not None
        n = s.int("n", None, lo=0, hi=100_000)
        if not s.has("n"):
            s.error("n", "is required (the engine fires at N+1 events within T)")
        t = s.duration("t", None, positive=True)
        if not s.has("t"):
            s.error("t", "is required (a duration such as 10m)")
        s.done()
    elif kind == "threshold":
        s = r.table("threshold")
        assert s is not None
        fld = s.str("field", required=True, pattern=_FIELD_RE)
        above = _number(s, "above")
        below = _number(s, "below")
        count = s.int("count", 1, lo=1, hi=100_000)
        if above is None and below is None and s.ok:
            s.error("", "needs 'above' or 'below' (or both)")
        if above is not None and below is not None and below >= above:
            s.error("below", f"{below:g} must be below 'above' ({above:g}): no value could be in bounds")
        s.done()
        if fld is not None:
            bound = Bound(fld, above, below, count)
    elif kind == "cascade":
        s = r.table("cascade")
        assert s is not None
        window = s.duration("window", 30.0, positive=True)
        s.done()
        if resources and resources != ("svc",):
            r.error("resources", "a cascade rule follows the service graph: only 'svc' resources")
        resources = ("svc",)
    resolve: list[tuple[str, Any]] = []
    rw = r.table("resolve_when")
    if rw is not None:
        for k, v in rw.data.items():
            rw.get(k)
            if not _FIELD_RE.fullmatch(k):
                rw.error(k, "is not a payload field name")
            elif isinstance(v, dict | list) or (isinstance(v, float) and v != v):
                rw.error(k, "expected a string, number or boolean to compare the payload with")
            else:
                resolve.append((k, v))
        if not rw.data:
            rw.error("", "is empty: name payload fields and the values that end the condition")
    if not r.ok or name is None or fault is None or msgid is None:
        return None
    return Rule(name, description, tuple(match), tuple(resources), kind, fault, severity, msgid, certainty,
                response, source, n, t, bound, window, tuple(resolve))


def _number(r: Reader, key: str) -> float | None:
    v = r.get(key, MISSING)
    if v is MISSING:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v or v in (float("inf"), float("-inf")):
        r.error(key, f"expected a finite number, got {v!r}")
        return None
    return float(v)


def parse_rules(data: Any, source: str, kb: KnowledgeBase | None) -> tuple[list[Rule], list[FieldError]]:
    """The rules of one file, or the errors that refuse it."""
    errors: list[FieldError] = []
    top = Reader(source, errors, data, "")
    items = top.get("rule", MISSING)
    top.done()
    rules: list[Rule] = []
    if items is MISSING:
        top.error("rule", "is required: a rule file holds [[rule]] tables")
        return [], errors
    if not isinstance(items, list) or not items:
        top.error("rule", "expected an array of tables ([[rule]])")
        return [], errors
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        label = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else str(i)
        r = Reader(source, errors, item, f"rule[{label}]")
        rule = _rule(r, kb, source)
        r.done()
        if rule is not None:
            if rule.name in seen:
                r.error("name", f"{rule.name!r} is also rule number {seen[rule.name] + 1} of this file")
                continue
            seen[rule.name] = i
            rules.append(rule)
    return (rules if not errors else []), errors


def load_rules(paths: Iterable[str | os.PathLike[str]], kb: KnowledgeBase | None = None
               ) -> tuple[RuleSet, list[FieldError]]:
    """Rules from files and folders of ``*.toml``; each bad file is refused whole, the others load."""
    files, errors = toml_files(paths)
    rules: list[Rule] = []
    names: dict[str, str] = {}
    for path in files:
        try:
            data = read_toml(path)
        except FieldError as e:
            errors.append(e)
            continue
        got, errs = parse_rules(data, path, kb)
        dup = [FieldError(path, f"rule[{r.name}].name", f"{r.name!r} is also defined in {names[r.name]}")
               for r in got if r.name in names]
        if errs or dup:
            errors.extend(errs or dup)
            continue
        for r in got:
            names[r.name] = path
        rules.extend(got)
    return RuleSet(rules), errors
