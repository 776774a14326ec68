"""SMF property groups into the manifest vocabulary: typed values, and the groups SMF gives meaning to.

``general`` (enabled, authorizations, stability) and ``startd`` (duration, ignore_error,
timeout_retry, failure rate) map onto svcmgr's own keys; a group of type ``svcmgr``
carries a section SMF has no element for; every other group is kept as properties
with its type, for ``svcprop`` and for export. Mixed into the translator's entity
(``translate._Entity``), which provides ``ctx``, ``data``, ``smf``, ``prop`` and ``note``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from svcmgr.smfxml.reading import tag
from svcmgr.spec import PROP_TYPES, check_property_value

__all__ = ["EXTRA_CONTEXT", "SVCMGR_SECTIONS", "GroupsMixin", "context_keys"]

#: svcmgr sections without an SMF element; they travel as property groups of type "svcmgr".
SVCMGR_SECTIONS = ("readiness", "health", "log", "resources")
#: Context keys SMF has no attribute for: properties of the method's group (an exec_method's
#: propvals), or of a ``context`` group of type svcmgr for a service or instance.
EXTRA_CONTEXT = ("capabilities", "no_new_privileges", "umask", "rlimits")
_DURATIONS = {"contract": "contract", "transient": "transient", "child": "child", "wait": "child"}


def context_keys(props: dict[str, list[Any]]) -> dict[str, Any]:
    """The manifest keys of EXTRA_CONTEXT properties (``rlimits`` values are ``name=soft[:hard]``);
    what cannot be read is passed on as written, for the validator to name."""
    out: dict[str, Any] = {}
    for key, values in props.items():
        if key == "rlimits":
            limits: dict[str, Any] = {}
            for v in values:
                name, _, pair = str(v).partition("=")
                soft, _, hard = pair.partition(":")
                limits[name] = [_number(soft), _number(hard or soft)]
            out[key] = limits
        elif key == "capabilities":
            out[key] = [str(v) for v in values]
        else:
            out[key] = values[0] if len(values) == 1 else values
    return out


def _number(v: str) -> Any:
    return int(v) if v.isdigit() else v


class GroupsMixin:
    """``<property_group>`` and its values, written into the entity's ``data``."""

    ctx: Any
    data: dict[str, Any]
    smf: dict[str, Any]
    is_instance: bool

    # Provided by the class this is mixed into (translate.Entity).
    prop: Callable[[str, str, str, list[Any]], None]
    note: Callable[[str], None]
    _nested_props: Callable[[ET.Element, str, tuple[str, ...]], None]

    def property_group(self, el: ET.Element) -> None:
        ctx = self.ctx
        pg = ctx.attr(el, "name")
        ptype = ctx.attr(el, "type")
        if pg is None or ptype is None:
            return
        if pg == "general" and ptype == "framework":
            self._general(el)
            return
        if pg == "startd" and ptype == "framework":
            self._startd(el)
            return
        if ptype == "svcmgr":
            self._svcmgr(el, pg)
            return
        self.smf.setdefault("pg_types", {})[pg] = ptype
        self.data.setdefault("properties", {}).setdefault(pg, {})
        self._nested_props(el, pg, allowed=())

    def _svcmgr(self, el: ET.Element, pg: str) -> None:
        """A group of type ``svcmgr``: a section svcmgr understands (readiness, health, log, or an
        extension such as vrrp as JSON), as ``svccfg export --xml`` writes it."""
        ctx = self.ctx
        items = self._each(el, pg)
        if pg in SVCMGR_SECTIONS:
            table: dict[str, Any] = {}
            for ch, name, _ptype, values in items:
                if name == "patterns" and pg == "log":
                    pats = []
                    for v in values:
                        cls, sep, rx = str(v).partition("=")
                        if not sep:
                            ctx.error(ch, f"log/patterns value {v!r}: expected CLASS=REGEX")
                        pats.append({"match": rx, "class": cls})
                    table["patterns"] = pats
                elif ch.tag == "property":
                    table[name] = values
                else:
                    table[name] = values[0]
            self.data[pg] = table
            return
        if pg == "context":  # the context keys SMF has no attribute for (translate.EXTRA_CONTEXT)
            for ch, name, _ptype, _values in items:
                if name not in EXTRA_CONTEXT:
                    ctx.error(ch, f"context/{name}: not a context key (known: {', '.join(EXTRA_CONTEXT)})")
            self.data.update(context_keys({name: values for _, name, _, values in items if name in EXTRA_CONTEXT}))
            return
        if self.is_instance:
            ctx.error(el, f"a property group of type svcmgr named {pg!r} belongs to the service, not an instance")
            return
        for ch, name, _ptype, values in items:
            if name != "json" or len(values) != 1:
                ctx.error(ch, f"a property group of type svcmgr named {pg!r} holds one propval 'json'")
                return
            try:
                self.data[pg] = json.loads(str(values[0]))
            except ValueError as e:
                ctx.error(ch, f"{pg}/json is not valid JSON: {e}")

    def _values(self, el: ET.Element, pg: str) -> tuple[str, str, list[Any]] | None:
        """(name, type, values) of a ``propval`` or ``property``, values coerced to the type."""
        ctx = self.ctx
        name = ctx.attr(el, "name")
        ptype = ctx.attr(el, "type")
        if name is None or ptype is None:
            return None
        if ptype not in PROP_TYPES:
            ctx.error(el, f"unknown property type {ptype!r} (known: {', '.join(PROP_TYPES)})")
            return None
        raw: list[str] = []
        if el.tag == "propval":
            v = ctx.attr(el, "value")
            if v is None:
                return None
            raw = [v]
        else:
            for lst in el:
                if lst.tag != f"{ptype}_list":
                    ctx.error(lst, f"a property of type {ptype} holds a <{ptype}_list>, not <{tag(lst)}>")
                    return None
                for node in lst:
                    if node.tag != "value_node":
                        ctx.error(node, f"unexpected element inside <{ptype}_list>")
                        return None
                    v = ctx.attr(node, "value")
                    if v is None:
                        return None
                    raw.append(v)
        try:
            values = [check_property_value(ptype, x) for x in raw]
        except ValueError as e:
            ctx.error(el, f"property {pg}/{name}: {e}")
            return None
        return name, ptype, values

    def _propval(self, el: ET.Element, pg: str) -> None:
        got = self._values(el, pg)
        if got is not None:
            self.prop(pg, *got)

    def _property(self, el: ET.Element, pg: str) -> None:
        self._propval(el, pg)

    def _each(self, el: ET.Element, pg: str) -> list[tuple[ET.Element, str, str, list[Any]]]:
        out = []
        for ch in el:
            if ch.tag in ("propval", "property"):
                got = self._values(ch, pg)
                if got is not None:
                    out.append((ch, *got))
            elif ch.tag == "stability":
                v = self.ctx.attr(ch, "value")
                if v is not None:
                    out.append((ch, "stability", "astring", [v]))
            else:
                self.ctx.error(ch, "unexpected element inside <property_group>")
        return out

    def _general(self, el: ET.Element) -> None:
        """``general``: enabled, authorizations, stability go to their keys; the rest stays a property."""
        for _ch, name, ptype, values in self._each(el, "general"):
            if name in ("action_authorization", "value_authorization") and ptype in ("astring", "ustring"):
                if self.is_instance:
                    self.prop("general", name, ptype, values)
                    self.note(f"general/{name} on an instance (svcmgr grants per service)")
                    continue
                kind = "action" if name.startswith("action") else "value"
                grant = self.data.setdefault("authorizations", {}).setdefault(kind, {})
                for v in values:
                    for word in str(v).replace(",", " ").split():
                        key, _, who = word.partition(":")
                        if key in ("user", "group") and who:
                            grant.setdefault(f"{key}s", []).append(who)
                        else:
                            grant.setdefault("names", []).append(word)
            elif name == "enabled" and ptype == "boolean" and len(values) == 1:
                self.data["enabled"] = values[0]
            elif name == "entity_stability" and not self.is_instance and len(values) == 1:
                self.data["stability"] = str(values[0])
            else:
                self.prop("general", name, ptype, values)

    def _startd(self, el: ET.Element) -> None:
        """``startd``: duration, ignore_error, timeout_retry and the failure rate go to their keys."""
        ctx = self.ctx
        for ch, name, ptype, values in self._each(el, "startd"):
            one = values[0] if len(values) == 1 else None
            if name == "duration" and isinstance(one, str):
                if one not in _DURATIONS:
                    ctx.error(ch, f"startd/duration must be contract, transient, child or wait, not {one!r}")
                    continue
                self.data["duration"] = _DURATIONS[one]
            elif name == "ignore_error" and isinstance(one, str):
                self.data.setdefault("restart", {})["ignore_error"] = [x.strip() for x in one.split(",")
                                                                       if x.strip()]
            elif name == "timeout_retry" and isinstance(one, bool):
                self.data.setdefault("restart", {})["timeout_retry"] = one
            elif name == "critical_failure_count" and isinstance(one, int) and one > 0:
                self.data.setdefault("restart", {})["limit"] = one
            elif name == "critical_failure_period" and isinstance(one, int) and one > 0:
                self.data.setdefault("restart", {})["period"] = one
            else:
                self.prop("startd", name, ptype, values)
