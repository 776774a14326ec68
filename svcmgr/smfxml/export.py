"""A manifest in normal form (TOML-shaped) written as an SMF XML ``service_bundle``.

The inverse of ``translate``: an XML manifest imported and exported gives a bundle
that imports to the same manifest again. What only svcmgr knows (readiness,
health, log, extension sections) travels as property groups of type ``svcmgr``,
which SMF would keep as plain application data and ``translate`` reads back.
Verbatim fragments kept at import (a template with ``pg_pattern``\\ s, unknown
elements) are re-read with the hardened parser before they are written out.
"""

from __future__ import annotations

import json
import math
import shlex
import xml.etree.ElementTree as ET
from typing import Any

from svcmgr.schema import FieldErrors
from svcmgr.security import KEYS as SECURITY_KEYS
from svcmgr.smfxml.reading import XML_LANG
from svcmgr.smfxml.safe import parse
from svcmgr.smfxml.translate import CREDENTIAL_KEYS, EXTRA_CONTEXT, IGNORED_CONTEXT, SVCMGR_SECTIONS
from svcmgr.spec import property_type
from svcmgr.units import parse_duration

__all__ = ["archive_xml", "export_xml"]

DOCTYPE = '<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">'
_NOT_EXTENSIONS = {"name", "description", "type", "duration", "enabled", "user", "group", "working_directory",
                   "environment", "methods", "dependencies", "dependents", "readiness", "health", "restart",
                   "log", "authorizations", "properties", "template", "stability", "instances", "smf",
                   "resources", *SECURITY_KEYS}


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _ptype(v: Any) -> str:
    return property_type(v) or "astring"


def _norm_prop(p: Any) -> tuple[str, list[Any]]:
    if isinstance(p, dict):
        vals = p.get("values", [])
        vals = vals if isinstance(vals, list) else [vals]
        return p.get("type") or (_ptype(vals[0]) if vals else "astring"), vals
    vals = p if isinstance(p, list) else [p]
    return (_ptype(vals[0]) if vals else "astring"), vals


def _prop(parent: ET.Element, name: str, ptype: str, values: list[Any], *, as_list: bool = False) -> None:
    if len(values) == 1 and not as_list:
        ET.SubElement(parent, "propval", name=name, type=ptype, value=_text(values[0]))
        return
    p = ET.SubElement(parent, "property", name=name, type=ptype)
    lst = ET.SubElement(p, f"{ptype}_list")
    for v in values:
        ET.SubElement(lst, "value_node", value=_text(v))


def _props_into(parent: ET.Element, props: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    for name, p in props.items():
        if name in skip:
            continue
        ptype, vals = _norm_prop(p)
        if name == "stability" and ptype == "astring" and len(vals) == 1:
            continue  # written as <stability> below
        _prop(parent, name, ptype, vals)
    st = props.get("stability")
    if st is not None and "stability" not in skip:
        ptype, vals = _norm_prop(st)
        if ptype == "astring" and len(vals) == 1:
            ET.SubElement(parent, "stability", value=_text(vals[0]))


def _fragment(text: str) -> ET.Element | None:
    try:
        return parse(text.encode(), "export").root
    except FieldErrors:
        return None


def _timeout(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    try:
        d = parse_duration(v, allow_none=True)
    except ValueError:
        return "30"
    return "0" if d is None else str(math.ceil(d))


def _exec(v: Any) -> str:
    return shlex.join(v) if isinstance(v, list) else str(v)


def _context(parent: ET.Element, table: dict[str, Any], kept: dict[str, Any], *, force: bool = False) -> None:
    """``<method_context>`` from a table's user/group/working_directory/environment and kept properties."""
    attrs: dict[str, str] = {}
    if table.get("working_directory"):
        attrs["working_directory"] = str(table["working_directory"])
    for a in ("project", "resource_pool", "security_flags"):
        if a in kept:
            attrs[a] = _text(_norm_prop(kept[a])[1][0])
    cred: dict[str, str] = {}
    if table.get("user"):
        cred["user"] = str(table["user"])
    if table.get("group"):
        cred["group"] = str(table["group"])
    for a, key in CREDENTIAL_KEYS.items():
        v = table.get(key)
        if v:
            cred[a] = ",".join(v) if isinstance(v, list) else str(v)
    env = table.get("environment") or {}
    if not (attrs or cred or env or force):
        return
    mc = ET.SubElement(parent, "method_context", attrs)
    if cred:
        cred.setdefault("user", ":default")
        ET.SubElement(mc, "method_credential", cred)
    if env:
        me = ET.SubElement(mc, "method_environment")
        for k, v in env.items():
            ET.SubElement(me, "envvar", name=str(k), value=_text(v))


def _extra_context(table: dict[str, Any]) -> list[tuple[str, str, list[Any]]]:
    """(name, type, values) of the context keys SMF has no attribute for (translate.EXTRA_CONTEXT)."""
    out: list[tuple[str, str, list[Any]]] = []
    for key in EXTRA_CONTEXT:
        v = table.get(key)
        if v is None:
            continue
        if key == "rlimits":
            vals = []
            for name, lim in v.items():
                soft, hard = (lim, lim) if not isinstance(lim, list) else lim
                vals.append(f"{name}={_text(soft)}" + ("" if hard == soft else f":{_text(hard)}"))
            out.append((key, "astring", vals))
        elif key == "no_new_privileges":
            out.append((key, "boolean", [bool(v)]))
        elif key == "capabilities":
            out.append((key, "astring", list(v)))
        else:
            out.append((key, "astring", [_text(v)]))
    return out


def _split_kept(props: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(context properties folded back into <method_context>, the rest)."""
    kept = {k: v for k, v in props.items() if k in IGNORED_CONTEXT and len(_norm_prop(v)[1]) == 1}
    rest = {k: v for k, v in props.items() if k not in kept}
    return kept, rest


class _Writer:
    """Writes one service or instance's children in the order the DTD wants them."""

    def __init__(self, el: ET.Element, table: dict[str, Any], smf: dict[str, Any], *, service: bool) -> None:
        self.el = el
        self.t = table
        self.smf = smf
        self.service = service
        self.props: dict[str, dict[str, Any]] = {pg: dict(p) for pg, p in (table.get("properties") or {}).items()}
        self.pg_types: dict[str, str] = dict(smf.get("pg_types") or {})

    def take(self, pg: str, name: str) -> Any:
        p = self.props.get(pg, {})
        return p.pop(name, None)

    def restarter(self) -> None:
        r = self.take("general", "restarter")
        if r is not None:
            _, vals = _norm_prop(r)
            rs = ET.SubElement(self.el, "restarter")
            ET.SubElement(rs, "service_fmri", value=_text(vals[0]))

    def dependencies(self) -> None:
        for d in self.t.get("dependencies") or []:
            de = ET.SubElement(self.el, "dependency", name=d["name"], grouping=d.get("grouping", "require_all"),
                               restart_on=d.get("restart_on", "none"), type=d.get("type") or _dep_type(d))
            for f in d.get("fmris", []):
                ET.SubElement(de, "service_fmri", value=f)
            self._nested(de, d["name"])
        for d in self.t.get("dependents") or []:
            de = ET.SubElement(self.el, "dependent", name=d["name"], grouping=d.get("grouping", "require_all"),
                               restart_on=d.get("restart_on", "none"))
            for f in d.get("fmris", []):
                ET.SubElement(de, "service_fmri", value=f)
            self._nested(de, d["name"])

    def _nested(self, el: ET.Element, pg: str) -> None:
        if pg in self.props and pg not in self.pg_types:
            _props_into(el, self.props.pop(pg))

    def context(self) -> None:
        kept: dict[str, Any] = {}
        if "method_context" in self.props and "method_context" not in self.pg_types:
            kept, rest = _split_kept(self.props["method_context"])
            if rest:
                self.props["method_context"] = rest
            else:
                del self.props["method_context"]
        _context(self.el, self.t, kept)

    def methods(self) -> None:
        for name, m in (self.t.get("methods") or {}).items():
            if self.service and name == "start" and self.smf.get("placeholder_start"):
                continue
            em = ET.SubElement(self.el, "exec_method", type="method", name=name, exec=_exec(m.get("exec", ":true")),
                               timeout_seconds=_timeout(m.get("timeout", 30)))
            props = self.props.pop(name, {}) if name not in self.pg_types else {}
            kept, rest = _split_kept(props)
            _context(em, m, kept)
            for pname, ptype, vals in _extra_context(m):
                _prop(em, pname, ptype, vals, as_list=ptype == "astring" and pname != "umask")
            _props_into(em, rest)
        for pg, ptype in list(self.pg_types.items()):
            if ptype != "method" or pg not in self.props:
                continue
            props = self.props.pop(pg)
            del self.pg_types[pg]
            ex = props.pop("exec", None)
            exec_text = _text(_norm_prop(ex)[1][0]) if ex is not None else ":true"
            ts = props.pop("timeout_seconds", None)
            em = ET.SubElement(self.el, "exec_method", type="method", name=pg, exec=exec_text,
                               timeout_seconds=_text(_norm_prop(ts)[1][0]) if ts is not None else "0")
            table: dict[str, Any] = {}
            for k in ("user", "group", "working_directory", *CREDENTIAL_KEYS.values()):
                if k in props:
                    table[k] = _text(_norm_prop(props.pop(k))[1][0])
            if "environment" in props:
                _, vals = _norm_prop(props.pop("environment"))
                table["environment"] = dict(str(v).split("=", 1) for v in vals if "=" in str(v))
            kept, rest = _split_kept(props)
            _context(em, table, kept)
            _props_into(em, rest)

    def extra(self) -> None:
        for text in self.smf.get("extra_xml") or []:
            frag = _fragment(text)
            if frag is not None:
                self.el.append(frag)

    def groups(self) -> None:
        self._general()
        self._startd()
        for sec in SVCMGR_SECTIONS:
            if self.t.get(sec):
                self._svcmgr_pg(sec, self.t[sec])
        extra = _extra_context(self.t)
        if extra:
            g = ET.SubElement(self.el, "property_group", name="context", type="svcmgr")
            for pname, ptype, vals in extra:
                _prop(g, pname, ptype, vals, as_list=ptype == "astring" and pname != "umask")
        if self.service:
            for key, value in self.t.items():
                if key not in _NOT_EXTENSIONS:
                    pg = ET.SubElement(self.el, "property_group", name=key, type="svcmgr")
                    ET.SubElement(pg, "propval", name="json", type="astring", value=json.dumps(value, sort_keys=True))
        for pg, props in self.props.items():
            ptype = self.pg_types.get(pg, "application")
            g = ET.SubElement(self.el, "property_group", name=pg, type=ptype)
            _props_into(g, props)

    def _svcmgr_pg(self, name: str, table: dict[str, Any]) -> None:
        g = ET.SubElement(self.el, "property_group", name=name, type="svcmgr")
        for k, v in table.items():
            if k == "patterns" and isinstance(v, list):
                _prop(g, "patterns", "astring", [f"{p.get('class', '')}={p.get('match', '')}" for p in v], as_list=True)
            elif isinstance(v, list):
                _prop(g, k, "astring", [_text(x) for x in v], as_list=True)
            else:
                _prop(g, k, _ptype(v), [v])

    def _general(self) -> None:
        g = ET.Element("property_group", name="general", type="framework")
        if "enabled" in self.t and self.service:
            _prop(g, "enabled", "boolean", [bool(self.t["enabled"])])
        auth = self.t.get("authorizations") or {}
        for kind in ("action", "value"):
            grant = auth.get(kind) or {}
            words = [*grant.get("names", []), *(f"user:{u}" for u in grant.get("users", [])),
                     *(f"group:{x}" for x in grant.get("groups", []))]
            if words:
                _prop(g, f"{kind}_authorization", "astring", words)
        rest = self.props.pop("general", {})
        self.pg_types.pop("general", None)
        _props_into(g, rest)
        if len(g):
            self.el.append(g)

    def _startd(self) -> None:
        g = ET.Element("property_group", name="startd", type="framework")
        if self.t.get("duration"):
            _prop(g, "duration", "astring", [self.t["duration"]])
        r = self.t.get("restart") or {}
        if r.get("ignore_error"):
            _prop(g, "ignore_error", "astring", [",".join(r["ignore_error"])])
        if "timeout_retry" in r:
            _prop(g, "timeout_retry", "boolean", [bool(r["timeout_retry"])])
        if "limit" in r:
            _prop(g, "critical_failure_count", "count", [int(r["limit"])])
        if "period" in r:
            _prop(g, "critical_failure_period", "count", [int(_timeout(r["period"]))])
        rest = self.props.pop("startd", {})
        self.pg_types.pop("startd", None)
        _props_into(g, rest)
        if len(g):
            self.el.append(g)


def _dep_type(d: dict[str, Any]) -> str:
    fmris = d.get("fmris") or []
    return "path" if fmris and all(str(f).startswith("file:") for f in fmris) else "service"


def _loctext(parent: ET.Element, tag: str, text: str) -> None:
    e = ET.SubElement(parent, tag)
    lt = ET.SubElement(e, "loctext")
    lt.set(XML_LANG, "C")
    lt.text = text


def export_xml(manifest: dict[str, Any]) -> str:
    """The bundle as text, with the XML declaration and SMF's DOCTYPE."""
    smf = manifest.get("smf") or {}
    bundle = ET.Element("service_bundle", type="manifest",
                        name=smf.get("bundle") or manifest["name"].replace("/", "-"))
    _service(bundle, manifest)
    note = f"<!-- svc:/{manifest['name']} as exported by svcmgr (svccfg export with the xml option) -->"
    return _text_of(bundle, note)


def archive_xml(manifests: list[dict[str, Any]]) -> str:
    """Every service in one bundle of type ``archive`` (``svccfg archive``)."""
    bundle = ET.Element("service_bundle", type="archive", name="none")
    for m in manifests:
        _service(bundle, m)
    return _text_of(bundle, "<!-- every service, as archived by svcmgr (svccfg archive) -->")


def _text_of(bundle: ET.Element, note: str) -> str:
    ET.indent(bundle, "\t")
    body = ET.tostring(bundle, encoding="unicode")
    return f'<?xml version="1.0"?>\n{DOCTYPE}\n{note}\n{body}\n'


def _service(bundle: ET.Element, m: dict[str, Any]) -> None:
    """One manifest as a ``<service>`` of the bundle."""
    name = m["name"]
    smf = m.get("smf") or {}
    svc = ET.SubElement(bundle, "service", name=name, type=m.get("type", "service"),
                        version=str(smf.get("version", "1")))
    instances: dict[str, Any] = m.get("instances") or {"default": {}}
    ismf_all = smf.get("instances") or {}
    w = _Writer(svc, m, smf, service=True)
    default = instances.get("default")
    simple_default = default is not None and set(default) <= {"enabled"} and "default" not in ismf_all
    if simple_default:
        ET.SubElement(svc, "create_default_instance", enabled=_text(default.get("enabled", m.get("enabled", True))))
    single = w.take("general", "single_instance")
    if single is not None and _norm_prop(single)[1] == [True]:
        ET.SubElement(svc, "single_instance")
    elif single is not None:
        w.props.setdefault("general", {})["single_instance"] = single
    w.restarter()
    w.dependencies()
    w.context()
    w.methods()
    w.extra()
    w.groups()
    for iname, inst in instances.items():
        if iname == "default" and simple_default:
            continue
        inst = inst or {}
        ie = ET.SubElement(svc, "instance", name=iname, enabled=_text(inst.get("enabled", m.get("enabled", True))))
        ismf = ismf_all.get(iname) or {}
        iw = _Writer(ie, inst, ismf, service=False)
        iw.restarter()
        iw.dependencies()
        iw.context()
        iw.methods()
        iw.extra()
        iw.groups()
        if ismf.get("template_xml"):
            frag = _fragment(ismf["template_xml"])
            if frag is not None:
                ie.append(frag)
        elif inst.get("description"):
            t = ET.SubElement(ie, "template")
            _loctext(t, "common_name", inst["description"])
    if m.get("stability"):
        ET.SubElement(svc, "stability", value=m["stability"])
    frag = _fragment(smf["template_xml"]) if smf.get("template_xml") else None
    if frag is not None:
        svc.append(frag)
    else:
        tpl = m.get("template") or {}
        common = tpl.get("common_name") or m.get("description")
        if common or tpl.get("description"):
            t = ET.SubElement(svc, "template")
            if common:
                _loctext(t, "common_name", common)
            if tpl.get("description"):
                _loctext(t, "description", tpl["description"])
