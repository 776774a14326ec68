"""Named tables that manifests and the node's configuration declare with the same keys
(``[vrrp.instances.NAME]``, ``[lb.frontends.NAME]``): read field by field, then the node's
values laid over the manifests'.

A package describes its tables once (``Tables``: where they live, what one is called, how a
name and the fields of one are read, how one is checked as a whole) and gets from it the
manifest-section validator (``parse_declaration``, put in place by ``register``), the
node's tables (``read``), the overlay of both (``overlay``) and each table of it checked
whole (``completed``), every error with its file and dotted path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svcmgr import fmri as fmri_mod
from svcmgr.manifest import EXTENSIONS
from svcmgr.schema import FieldError, FieldErrors, Reader, typename

__all__ = ["Declaration", "Layer", "Source", "Syntax", "Tables", "read_daemon", "weighted_fmris"]

_BINARY_RE = re.compile(r"^(/[A-Za-z0-9_./+-]*|[A-Za-z0-9_.+-]+)\Z")


@dataclass(frozen=True)
class Declaration:
    """A manifest's section: table name -> its validated fields (before the node's own)."""

    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True)
class Source:
    """A manifest's declaration, with the service that made it."""

    service: str  # svc:/site/web
    instances: tuple[str, ...]  # its instance FMRIs (what a table names by default)
    declaration: Declaration


@dataclass(frozen=True)
class Layer:
    """One table's values as this node runs it: the manifest's, the node's on top."""

    name: str
    values: dict[str, Any]
    origin: tuple[str, ...]
    source: str  # the file an error names
    path: str  # the dotted path an error names


@dataclass(frozen=True)
class Tables:
    section: str  # "vrrp"
    key: str  # "instances"
    what: str  # "instance"
    name: Callable[[Reader, str], str | None]  # a table's name checked (errors on the reader), or None
    fields: Callable[[Reader], dict[str, Any]]  # a table's fields, each validated, in normal form
    #: check(name, values, errors, source, path, required=..., final=False): a table checked as a whole
    check: Callable[..., Any]
    required: tuple[str, ...] = ()  # what a manifest's table must set

    def read(self, r: Reader, *, required: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """The ``KEY.NAME`` tables of a section, each validated field by field and as far as ``required``
        asks; the caller calls ``r.done()``."""
        out: dict[str, dict[str, Any]] = {}
        tables = r.table(self.key)
        if tables is None:
            return out
        for name in list(tables.data):
            sub = tables.table(name)
            if sub is None or self.name(tables, name) is None:
                continue
            vals = self.fields(sub)
            if sub.ok:
                self.check(name, vals, r.errors, r.source, sub.path, required=required, final=False)
                out[name] = vals
        return out

    def register(self) -> None:
        """Have manifests validate their ``[<section>]`` with ``parse_declaration``."""
        EXTENSIONS[self.section] = self.parse_declaration

    def parse_declaration(self, data: Any, source: str, key: str) -> Declaration:
        """The manifest-section validator (``svcmgr.manifest.EXTENSIONS``). Raises FieldErrors."""
        errors: list[FieldError] = []
        r = Reader(source, errors, data, key)
        tables = self.read(r, required=self.required)
        r.done()
        if not r.has(self.key) and r.ok:
            r.error("", f"declares no {self.what} (add [{self.section}.{self.key}.NAME])")
        if errors:
            raise FieldErrors(errors)
        return Declaration(tables, source)

    def overlay(self, node: Mapping[str, Mapping[str, Any]], node_source: str, sources: Iterable[Source],
                default: Callable[[Source], Mapping[str, Any]]) -> tuple[list[Layer], list[FieldError]]:
        """Each table this node runs: ``default(source)``, the manifest's values, the node's on top. A name
        two manifests declare is an error."""
        errors: list[FieldError] = []
        declared: dict[str, tuple[Source, Mapping[str, Any]]] = {}
        for s in sorted(sources, key=lambda s: s.service):
            for name, vals in s.declaration.tables.items():
                if name in declared:
                    other = declared[name][0]
                    errors.append(FieldError(s.declaration.source, f"{self.section}.{self.key}.{name}",
                                             f"is also declared by {other.service} ({other.declaration.source}); "
                                             f"{self.what} names must be unique on a node"))
                    continue
                declared[name] = (s, vals)
        out = []
        for name in sorted(set(declared) | set(node)):
            values: dict[str, Any] = {}
            origin: list[str] = []
            source = ""
            if name in declared:
                s, vals = declared[name]
                values.update({**default(s), **vals})
                origin.append(s.service)
                source = s.declaration.source
            if name in node:
                values.update(node[name])
                origin.append("node configuration")
                source = node_source or source
            out.append(Layer(name, values, tuple(origin), source, f"{self.section}.{self.key}.{name}"))
        return out, errors

    def completed(self, layers: Iterable[Layer], errors: list[FieldError]) -> list[tuple[Layer, Any]]:
        """Each layer checked as a whole (``check``), with what it gives; one with errors is left out."""
        out = []
        for layer in layers:
            item = self.check(layer.name, layer.values, errors, layer.source, layer.path, origin=layer.origin)
            if item is not None:
                out.append((layer, item))
        return out


def weighted_fmris(r: Reader, key: str, *, what: str, most: int, weight: tuple[int, int, int],
                   refuse: Callable[[str], str | None], empty: bool = False) -> list[tuple[str, int]] | None:
    """A list of instance FMRIs, each a string or ``{ fmri = ..., weight = ... }`` (``weight``: default, least,
    most), at most ``most``, none twice, empty only if ``empty``; ``refuse`` says why a text cannot be used at
    all. None on error."""
    v = r.get(key)
    if not isinstance(v, list) or not (v or empty):
        r.error(key, f"expected a {'' if empty else 'non-empty '}list of FMRIs or {{ fmri = ..., weight = ... }} "
                     f"tables, got {typename(v)}")
        return None
    if len(v) > most:
        r.error(key, f"at most {most} {what}")
        return None
    out: list[tuple[str, int]] = []
    for i, x in enumerate(v):
        k = f"{key}[{i}]"
        w = weight[0]
        if isinstance(x, dict):
            sub = Reader(r.source, r.errors, x, r.f(k))
            text = sub.str("fmri", required=True, maxlen=512)
            w = sub.int("weight", weight[0], lo=weight[1], hi=weight[2])
            sub.done()
            if text is None or not sub.ok:
                return None
        elif isinstance(x, str):
            text = x
        else:
            r.error(k, f"expected an FMRI or a table, got {typename(x)}")
            return None
        bad = refuse(text)
        if bad is not None:
            r.error(k, bad)
            return None
        try:
            f = str(fmri_mod.parse(text, instance_required=True))
        except fmri_mod.FmriError as e:
            r.error(k, str(e))
            return None
        if any(o == f for o, _ in out):
            r.error(k, f"{f} is listed twice")
            return None
        out.append((f, w))
    return out


def read_daemon(r: Reader, key: str) -> tuple[str | None, str | None]:
    """A section's daemon: ``KEY`` (its binary: a command name or an absolute path) and ``manifest`` (the
    service manifest that runs it, an absolute path); None where absent or refused."""
    binary = r.str(key, None, maxlen=256)
    if binary is not None and not _BINARY_RE.match(binary):
        r.error(key, f"{binary!r}: give a command name or an absolute path (letters, digits, '_', '.', '/', '+', "
                     "'-')")
        binary = None
    manifest = r.str("manifest", None, maxlen=1024)
    if manifest is not None and not os.path.isabs(manifest):
        r.error("manifest", f"{manifest!r} must be an absolute path")
        manifest = None
    return binary, manifest


@dataclass(frozen=True)
class Syntax:
    """What a daemon's configuration parser reads as syntax: a value holding it is refused before it can
    reach the file (it could inject a directive)."""

    daemon: str  # as people write it: keepalived, HAProxy
    specials: Mapping[str, str]  # character -> its name in a refusal
    space: bool = False  # white space is syntax too (refused with the control characters)

    def refusal(self, text: str) -> str | None:
        """Why ``text`` may not reach the daemon's configuration, or None."""
        if self.space and any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
            return f"{text!r} holds white space or a control character, which {self.daemon}'s parser reads as syntax"
        for ch, what in self.specials.items():
            if ch in text:
                return (f"{text!r} holds {what}, which {self.daemon}'s parser reads as syntax "
                        "(it could inject a directive)")
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            return f"{text!r} holds a control character"
        return None

    def refused(self, text: str) -> str | None:
        """``refusal`` as an error message says it."""
        bad = self.refusal(text)
        return None if bad is None else bad + "; refused"

    def checked(self, r: Reader, key: str, value: str, pattern: re.Pattern[str], what: str) -> str | None:
        """``value`` if it is plain and matches ``pattern`` (a ``what``), else None with the error on ``r``."""
        bad = self.refused(value)
        if bad is not None:
            r.error(key, bad)
            return None
        if not pattern.match(value):
            r.error(key, f"{value!r} is not a valid {what}")
            return None
        return value

    def field(self, r: Reader, key: str, pattern: re.Pattern[str], what: str) -> str | None:
        """The string at ``key`` (None when absent), ``checked``."""
        v = r.get(key)
        if v is None:
            return None
        if not isinstance(v, str):
            r.error(key, f"expected a string, got {typename(v)}")
            return None
        return self.checked(r, key, v, pattern, what)
