"""The ``[smf]`` manifest section: what an SMF XML manifest declared that only export needs.

It holds the bundle's name, the service's version, the types of property groups,
verbatim XML the translation kept without interpreting (a ``<template>`` with
``pg_pattern``\\ s, unknown elements), and whether the start method is a
placeholder for a delegated restarter. svcmgr runs nothing from it. The section is
validated like every other (a TOML manifest may carry it too), and each verbatim
fragment is re-read with the hardened parser, so nothing unsafe can be stored.
"""

from __future__ import annotations

import re
from typing import Any

from svcmgr.fmri import valid_instance_name
from svcmgr.schema import FieldError, FieldErrors, Reader

__all__ = ["validate"]

_PG_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.,+-]*\Z")


def _fragment(r: Reader, key: str, text: Any, tags: tuple[str, ...] | None) -> None:
    if not isinstance(text, str):
        r.error(key, "expected a string of XML")
        return
    from svcmgr.smfxml.safe import parse  # the XML stack only for a section that holds XML: not at a TOML boot

    try:
        root = parse(text.encode(), r.source).root
    except FieldErrors as e:
        r.error(key, "; ".join(x.message for x in e.errors))
        return
    if tags is not None and root.tag not in tags:
        r.error(key, f"expected <{'> or <'.join(tags)}>, not <{root.tag}>")


def _entity(r: Reader, *, service: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    t = r.table("pg_types")
    if t is not None:
        types = {}
        for pg in list(t.data):
            v = t.str(pg, pattern=_PG_TYPE_RE, maxlen=256)
            if v is not None and _PG_TYPE_RE.match(pg):
                types[pg] = v
            elif not _PG_TYPE_RE.match(pg):
                t.error(pg, "is not a valid property group name")
        out["pg_types"] = types
    if r.has("template_xml"):
        _fragment(r, "template_xml", r.get("template_xml"), ("template",))
        out["template_xml"] = r.data["template_xml"]
    extra = r.get("extra_xml", None)
    if extra is not None:
        if not isinstance(extra, list):
            r.error("extra_xml", "expected a list of XML strings")
        else:
            for i, x in enumerate(extra):
                _fragment(r, f"extra_xml[{i}]", x, None)
            out["extra_xml"] = list(extra)
    if service:
        for k in ("bundle", "version"):
            v = r.str(k, maxlen=1024)
            if v is not None:
                out[k] = v
        ph = r.bool("placeholder_start")
        if ph is not None:
            out["placeholder_start"] = ph
        it = r.table("instances")
        if it is not None:
            out["instances"] = {}
            for name in list(it.data):
                sub = it.table(name)
                if not valid_instance_name(name):
                    it.error(name, "is not a valid instance name")
                    continue
                if sub is not None:
                    out["instances"][name] = _entity(sub, service=False)
    r.done()
    return out


def validate(value: Any, source: str, key: str) -> dict[str, Any]:
    """The ``[smf]`` section, checked; raises FieldErrors naming each problem."""
    errors: list[FieldError] = []
    r = Reader(source, errors, value, key)
    out = _entity(r, service=True)
    if errors:
        raise FieldErrors(errors)
    return out
