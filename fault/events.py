"""Ereports: the validated form of one piece of error telemetry. A leaf module (stdlib and svcmgr.fmri).

An ereport has a dotted class under ``ereport.`` (``ereport.svc.exit.signal``,
``ereport.io.disk.error``, ``ereport.prometheus.HighLatency``), the time its
detector saw the error (wall clock), the node, the resource it concerns (an FMRI:
``svc:/site/db:default``, ``dev:///dev/sda``, ``alert:///HighLatency``; or "" for
the node itself) and a JSON payload. ``validate`` turns untrusted input from any
source into an ``Ereport`` or raises ``EreportError`` naming the source, the field
and the problem; nothing else in the fault manager sees unchecked input.
"""

from __future__ import annotations

import json
import math
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from svcmgr import fmri as fmri_mod
from svcmgr.events import EREPORT_NAMESPACES, ereport_owner
from svcmgr.schema import FieldError

__all__ = [
    "CLASS_RE",
    "MAX_PAYLOAD",
    "NAMESPACES",
    "Ereport",
    "EreportError",
    "check_class",
    "check_namespace",
    "check_resource",
    "class_matches",
    "describe",
    "detail_of",
    "json_encoder",
    "owner",
    "validate",
]

#: ereport.<word>(.<word>)*: words of letters, digits, '_' and '-'.
CLASS_RE = re.compile(r"^ereport(\.[A-Za-z0-9_-]{1,64}){1,8}\Z")
_NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z")
#: FMRI schemes other than svc: accepted as resources (fmd's, plus alert: for Prometheus alerts).
#: (no unpaired surrogate, which JSON's "\ud800" makes and UTF-8 cannot hold: the error log could not be written)
_OTHER_FMRI_RE = re.compile(r"^(dev|hc|mod|cpu|mem|zfs|pkg|sw|alert|node|net|file):/{1,3}"
                            r"[^\s\x00-\x1f\x7f\ud800-\udfff]{1,500}\Z")
MAX_PAYLOAD = 16 * 1024
#: The classes each confined source owns (one table, in svcmgr.events, for both packages).
NAMESPACES = EREPORT_NAMESPACES
_MAX_DEPTH = 4
#: Times before this (2001-09-09) are not from a working clock.
_MIN_TIME = 1_000_000_000.0
#: A detector's clock may run ahead of ours by this much.
_MAX_AHEAD = 86400.0


class EreportError(FieldError):
    """A malformed ereport: the source, the field and what is wrong."""


@dataclass(slots=True)
class Ereport:
    cls: str
    time: float
    node: str
    resource: str
    payload: dict[str, Any]
    source: str
    #: the payload as stored (JSON), computed once by ``validate``
    payload_json: str = "{}"
    #: the error log's id for this ereport, given on receipt
    id: int = 0
    received: float = field(default_factory=time.time)
    #: ``brief()`` and ``detail_of()``, made once: the trail keeps them on arrival, the cases when diagnosed
    _brief: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)
    _detail: str | None = field(default=None, init=False, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "class": self.cls, "time": self.time, "received": self.received,
                "node": self.node, "resource": self.resource, "source": self.source, "payload": self.payload}

    def brief(self) -> dict[str, Any]:
        """What a case keeps of each ereport that convicted it (one dict, shared: not to be changed)."""
        b = self._brief
        if b is None or b["id"] != self.id:  # made again once the error log gave the ereport its id
            b = self._brief = {"id": self.id, "class": self.cls, "time": self.time, "resource": self.resource}
        return b


#: classes seen valid (bounded as ``_checked``): a source sends the same few classes again and again
_good_classes: set[str] = set()


def check_class(cls: object, source: str = "") -> str:
    if type(cls) is str and cls in _good_classes:
        return cls
    if not isinstance(cls, str):
        raise EreportError(source, "class", f"expected a string, got {type(cls).__name__}")
    if len(cls) > 200 or not CLASS_RE.fullmatch(cls):
        raise EreportError(source, "class", f"{cls[:80]!r} is not an ereport class: expected dotted words "
                                            "under ereport., such as ereport.io.disk.error")
    if len(_good_classes) >= 4096:
        _good_classes.clear()
    _good_classes.add(cls)
    return cls


owner = ereport_owner


def check_namespace(cls: str, source: str) -> None:
    """Refuse a class outside what ``source`` may report (see ``NAMESPACES``)."""
    own = NAMESPACES.get(source)
    if own is not None:
        if not cls.startswith(own):
            raise EreportError(source, "class", f"{cls!r}: the {source} source reports only "
                                                f"{', '.join(p + '*' for p in own)}")
    elif source == "log" and owner(cls) is not None:
        raise EreportError(source, "class", f"{cls!r} belongs to the {owner(cls)} source; log patterns use "
                                            "their own classes (such as ereport.app.*)")


_checked: dict[str, str] = {}


def check_resource(resource: object, source: str = "") -> str:
    """The normal form of a resource FMRI ("" for none)."""
    if resource is None or resource == "":
        return ""
    if not isinstance(resource, str):
        raise EreportError(source, "resource", f"expected an FMRI string, got {type(resource).__name__}")
    hit = _checked.get(resource)
    if hit is not None:
        return hit
    normal = _check_resource(resource, source)
    if len(_checked) >= 4096:
        _checked.clear()
    _checked[resource] = normal
    return normal


def _check_resource(resource: str, source: str) -> str:
    if resource.startswith("svc:"):
        try:
            f = fmri_mod.parse(resource)
        except fmri_mod.FmriError as e:
            raise EreportError(source, "resource", str(e)) from None
        return str(f)
    if len(resource) > 512 or not _OTHER_FMRI_RE.fullmatch(resource):
        raise EreportError(source, "resource", f"{resource[:80]!r} is not an FMRI (expected svc:/category/name:inst"
                                               ", dev:///dev/NAME, alert:///NAME, ...)")
    return resource


#: payload keys seen valid (bounded as ``_checked``): most sources send the same few keys every time
_good_keys: set[str] = set()
_SCALARS = (str, int, bool, type(None))
#: the same, as a set: a payload whose keys are all in ``_good_keys`` and whose values all have these types is
#: valid as it is (``validate`` checks that first, as two loops in C, before ``_check_payload``'s loop in Python)
_SCALAR_TYPES = frozenset(_SCALARS)


def json_encoder(*, ensure_ascii: bool = True, allow_nan: bool = True) -> Callable[[Any], str]:
    """``json.dumps(obj, separators=(",", ":"), ensure_ascii=..., allow_nan=...)`` with its encoder made once:
    ``json.dumps`` with arguments, and ``JSONEncoder.encode``, make their C encoder again at every call (1.5 against
    0.6 us for a payload of three fields). Only for objects without cycles: none is looked for (a validated
    payload is at most ``_MAX_DEPTH`` deep; the fault manager's records are built as trees)."""
    py = json.JSONEncoder(separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=allow_nan)
    make = json.encoder.c_make_encoder
    if make is None:  # an interpreter without the C accelerator
        return py.encode
    strings = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    c = make(None, py.default, strings, None, ":", ",", False, False, allow_nan)
    join = "".join

    def encode(obj: Any) -> str:
        return join(c(obj, 0))

    return encode


#: a payload as stored: compact, UTF-8 kept, no NaN
_dumps = json_encoder(ensure_ascii=False, allow_nan=False)


def _check_payload(payload: dict[Any, Any], source: str) -> None:
    """``_check_value`` of the payload table, its flat part inline (the per-ereport cost of validation)."""
    for k, x in payload.items():
        if k not in _good_keys:
            if not isinstance(k, str) or not _KEY_RE.fullmatch(k):
                raise EreportError(source, "payload", f"bad key {k!r} (letters, digits, '_', '.', '-')")
            if len(_good_keys) >= 4096:
                _good_keys.clear()
            _good_keys.add(k)
        if type(x) not in _SCALARS:
            _check_value(x, f"payload.{k}", source, 1)


def _check_value(v: Any, path: str, source: str, depth: int) -> None:
    if v is None or isinstance(v, bool | int | str):
        return
    if isinstance(v, float):
        if not math.isfinite(v):
            raise EreportError(source, path, f"{v!r} is not a finite number")
        return
    if depth >= _MAX_DEPTH:
        raise EreportError(source, path, f"nested deeper than {_MAX_DEPTH} levels")
    if isinstance(v, list):
        for i, x in enumerate(v):
            _check_value(x, f"{path}[{i}]", source, depth + 1)
        return
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, str) or not _KEY_RE.fullmatch(k):
                raise EreportError(source, path, f"bad key {k!r} (letters, digits, '_', '.', '-')")
            _check_value(x, f"{path}.{k}", source, depth + 1)
        return
    raise EreportError(source, path, f"a {type(v).__name__} cannot be stored (use strings, numbers, "
                                     "booleans, lists and tables)")


#: (class, source) pairs seen valid (bounded as ``_checked``): the class, and the source's right to report it
_good_sources: set[tuple[str, str]] = set()


def validate(cls: object, *, time_: object = None, node: object = "", resource: object = "",
             payload: object = None, source: str = "", default_node: str = "") -> Ereport:
    """Check every field of an ereport from an untrusted source; raise EreportError naming the first problem.
    A ``source`` may report only its own classes (``check_namespace``)."""
    if type(cls) is str and (cls, source) in _good_sources:
        c = cls
    else:
        c = check_class(cls, source)
        if source:
            check_namespace(c, source)
        if len(_good_sources) >= 4096:
            _good_sources.clear()
        _good_sources.add((c, source))
    now = time.time()
    if time_ is None:
        t = now
    elif isinstance(time_, bool) or not isinstance(time_, int | float) or not math.isfinite(time_):
        raise EreportError(source, "time", f"expected seconds since the epoch, got {time_!r}")
    else:
        t = float(time_)
        if t < _MIN_TIME or t > now + _MAX_AHEAD:
            raise EreportError(source, "time", f"{t:.0f} is not a plausible time (more than a day ahead, "
                                               "or before 2001)")
    if node is None or node == "":
        n = default_node
    elif not isinstance(node, str) or not _NODE_RE.fullmatch(node):
        raise EreportError(source, "node", f"{node!r} is not a node name")
    else:
        n = node
    if type(resource) is str:  # check_resource's memory (and its answer for none), without the call
        r = _checked.get(resource) if resource else ""
    else:
        r = None
    if r is None:
        r = check_resource(resource, source)
    if payload is None:
        payload = {}
    elif not isinstance(payload, dict):
        raise EreportError(source, "payload", f"expected a table, got {type(payload).__name__}")
    # a flat table of keys seen before (what nearly every source sends) needs no more
    if not (_good_keys.issuperset(payload) and _SCALAR_TYPES.issuperset(map(type, payload.values()))):
        _check_payload(payload, source)
    try:
        blob = _dumps(payload)
    except (TypeError, ValueError) as e:
        raise EreportError(source, "payload", f"cannot be stored as JSON: {e}") from None
    if len(blob) > MAX_PAYLOAD:
        raise EreportError(source, "payload", f"is {len(blob)} bytes, more than {MAX_PAYLOAD}")
    if not blob.isascii():
        try:
            blob.encode()
        except UnicodeEncodeError as e:  # JSON's "\ud800": an unpaired surrogate, which no store can hold
            raise EreportError(source, "payload", f"holds text that is not Unicode (an unpaired surrogate at "
                                                  f"{e.start} of its JSON)") from None
    return Ereport(c, t, n, r, payload, source, blob, 0, now)  # by position: id, received


def class_matches(pattern: str, cls: str) -> bool:
    """``ereport.svc.exit.*`` matches ``ereport.svc.exit.signal`` (one or more words); otherwise exact."""
    if pattern.endswith(".*"):
        return cls.startswith(pattern[:-1])
    return cls == pattern


_SIGNAMES = {int(s): s.name for s in signal.Signals}


def detail_of(e: Ereport) -> str:
    """The most telling text of an ereport, for case descriptions (made once per ereport)."""
    d = e._detail
    if d is None:
        d = e._detail = describe(e.cls, e.payload)
    return d


_TEXTS = ("reason", "summary", "detail", "line", "message")
#: the same, as a set: whether a payload holds any of them is then a look-up of each of its keys
_TEXT_KEYS = frozenset(_TEXTS)


def describe(cls: str, payload: dict[str, Any]) -> str:
    """The most telling text of an ereport of class ``cls`` with this (validated) payload: ``detail_of``'s, made
    anew at each call."""
    p = payload
    if not _TEXT_KEYS.isdisjoint(p):
        for k in _TEXTS:
            v = p.get(k)
            if isinstance(v, str) and v:
                return v[:300]
    if cls.startswith("ereport.svc.exit."):
        pid = p.get("pid")
        who = f"a process (pid {pid})" if type(pid) is int else "a process"  # not a bool: True is no pid
        sig = p.get("signal")
        if type(sig) is int and sig:
            core = " and dumped core" if p.get("core") else ""
            return f"{who} died on {_SIGNAMES.get(sig) or f'signal {sig}'} ({sig}){core}"
        code = p.get("code")
        if type(code) is int:
            return f"{who} exited with status {code}"
    if cls == "ereport.kernel.oom":
        return f"process {p.get('pid', '?')} ({p.get('comm', '?')}) killed, {p.get('anon_rss_kb', '?')} kB resident"
    if "value" in p:
        return f"{cls} value {p['value']}"
    return cls
