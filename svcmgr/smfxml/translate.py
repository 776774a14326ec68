"""SMF XML (a parsed ``service_bundle``) into the TOML-shaped manifests that ``parse_service`` validates.

One job: translate. Each ``<service>`` becomes one mapping in svcmgr's manifest
vocabulary; what SMF declares and svcmgr runs maps onto its own keys (methods,
dependencies, dependents, instances, method contexts, startd, authorizations,
template), what it declares but svcmgr does not act on is kept as properties
(so ``svcprop`` shows it) or in the ``[smf]`` section (so ``svccfg export --xml``
gives it back), and is named once in the service's warnings. Structural errors
(a missing attribute, a bad boolean) name the file, the line and the element.

SMF stores a method's context, an ``exec_method``'s nested ``propval``\\ s and a
``<stability>`` inside a group as properties of that group; this translation does
the same, so ``svcprop -p start/privileges`` answers as it would on illumos.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from svcmgr.proptypes import decimal_text
from svcmgr.smfxml.groups import EXTRA_CONTEXT, SVCMGR_SECTIONS, GroupsMixin, context_keys
from svcmgr.smfxml.reading import XML_LANG, Reading, Translation, loctext, tag, verbatim
from svcmgr.smfxml.safe import Parsed
from svcmgr.spec import METHODS, parse_exec

__all__ = ["CONTEXT_PROPS", "CREDENTIAL_KEYS", "EXTRA_CONTEXT", "IGNORED_CONTEXT", "SVCMGR_SECTIONS", "Translation",
           "context_keys", "translate"]

#: method_context attributes that have no meaning on Linux (svcmgr's [resources] take their place).
IGNORED_CONTEXT = ("project", "resource_pool", "security_flags")
#: method_credential attributes -> the manifest keys that apply them (svcmgr.security)
CREDENTIAL_KEYS = {"privileges": "privileges", "limit_privileges": "limit_privileges",
                   "supp_groups": "supplemental_groups"}
#: What a method's (or the service's) context may hold once it is kept as properties.
CONTEXT_PROPS = ("user", "group", "working_directory", "environment", *IGNORED_CONTEXT, *CREDENTIAL_KEYS.values())
_DEFAULT = ":default"
#: the largest timeout_seconds svccfg reads (strtoull: 64 bits)
_COUNT_MAX = 2**64 - 1


def translate(parsed: Parsed, source: str) -> Translation:
    """Every ``<service>`` of the bundle as (manifest mapping, warnings)."""
    out = Translation()
    root = parsed.root
    ctx = Reading(parsed, source, out)
    if root.tag != "service_bundle":
        ctx.error(root, "the document element must be <service_bundle> (an SMF manifest)")
        return out
    btype = root.get("type", "manifest")
    if btype == "profile":
        ctx.error(root, "service_bundle type 'profile' is not supported: import the manifests the "
                        "profile applies to, then use svcadm and svccfg setprop")
        return out
    if btype not in ("manifest", "archive"):
        ctx.error(root, f"service_bundle type must be 'manifest' or 'archive', not {btype!r}")
        return out
    services = 0
    for el in root:
        if el.tag != "service":
            ctx.error(el, "unexpected element in <service_bundle> (only <service> is allowed)")
            continue
        services += 1
        sctx = Reading(parsed, source, out)
        data = _service(sctx, el, root.get("name"))
        if data is not None:
            name = data.get("name", "?")
            warnings = [f"{source}: svc:/{name}: kept as properties, not acted on: {'; '.join(sctx.notes)}"
                        ] if sctx.notes else []
            out.services.append((data, warnings))
    if not services and not out.errors:
        ctx.error(root, "declares no <service>")
    return out


# ----------------------------------------------------------------- service, instance


def _service(ctx: Reading, el: ET.Element, bundle: str | None) -> dict[str, Any] | None:
    name = ctx.attr(el, "name")
    if name is None:
        return None
    data: dict[str, Any] = {"name": name}
    stype = el.get("type", "service")
    if stype not in ("service", "restarter", "milestone"):
        ctx.error(el, f"attribute 'type' must be service, restarter or milestone, not {stype!r}")
    elif stype != "service":
        data["type"] = stype
    smf: dict[str, Any] = {}
    if bundle:
        smf["bundle"] = bundle
    if el.get("version"):
        smf["version"] = el.get("version")
    instances: dict[str, dict[str, Any]] = {}
    ent = _Entity(ctx, data, smf, is_instance=False)
    for ch in el:
        tag = ch.tag
        if tag == "create_default_instance":
            enabled = ctx.boolean(ch, "enabled")
            if enabled is not None:
                instances.setdefault("default", {})["enabled"] = enabled
        elif tag == "single_instance":
            ent.prop("general", "single_instance", "boolean", [True])
        elif tag == "instance":
            iname = ctx.attr(ch, "name")
            if iname is None:
                continue
            if iname in instances and iname != "default":
                ctx.error(ch, f"instance {iname!r} is declared twice")
                continue
            inst = instances.setdefault(iname, {})
            enabled = ctx.boolean(ch, "enabled")
            if enabled is not None:
                inst["enabled"] = enabled
            ismf: dict[str, Any] = {}
            ient = _Entity(ctx, inst, ismf, is_instance=True, service=data, service_ent=ent, instance=iname)
            for ich in ch:
                ient.child(ich)
            if ismf:
                smf.setdefault("instances", {})[iname] = ismf
        else:
            ent.child(ch)
    if instances:
        data["instances"] = instances
    else:
        ctx.error(el, "declares no instance (<create_default_instance> or <instance>): "
                      "svcmgr needs at least one to run")
    single = data.get("properties", {}).get("general", {}).get("single_instance")
    if single and single["values"] == [True] and len(instances) > 1:
        ctx.error(el, f"<single_instance/> but {len(instances)} instances are declared")
    # A service whose instances a delegated restarter (inetd ...) runs has no start method
    # of its own; svcmgr runs none of those, so its instances fail with a clear reason.
    restarter = _restarter_of(data)
    has_start = "start" in data.get("methods", {}) or (
        instances and all("start" in i.get("methods", {}) for i in instances.values()))
    if restarter and not has_start and data.get("type") != "milestone":
        msg = (f"svcmgr: svc:/{name} is run by the delegated restarter {restarter}, "
               "which svcmgr does not provide")
        data.setdefault("methods", {})["start"] = {"exec": f"/bin/sh -c \"echo '{msg}' >&2; exit 96\""}
        smf["placeholder_start"] = True
    if smf:
        data["smf"] = smf
    return data


def _restarter_of(data: dict[str, Any]) -> str | None:
    vals = [d.get("properties", {}).get("general", {}).get("restarter", {}).get("values")
            for d in (data, *data.get("instances", {}).values())]
    for v in vals:
        if v:
            return str(v[0])
    return None


class _Entity(GroupsMixin):
    """What a ``<service>`` and an ``<instance>`` have in common, written into ``data``."""

    def __init__(self, ctx: Reading, data: dict[str, Any], smf: dict[str, Any], *, is_instance: bool,
                 service: dict[str, Any] | None = None, service_ent: _Entity | None = None,
                 instance: str = "") -> None:
        self.ctx = ctx
        self.data = data
        self.smf = smf
        self.is_instance = is_instance
        self.service = service
        self.service_ent = service_ent
        self.instance = instance
        self.where = f"instance {instance}: " if is_instance else ""

    # ------------------------------------------------------------ helpers
    def prop(self, pg: str, name: str, ptype: str, values: list[Any]) -> None:
        self.data.setdefault("properties", {}).setdefault(pg, {})[name] = {"type": ptype, "values": values}

    def note(self, what: str) -> None:
        self.ctx.note(self.where + what)

    def child(self, el: ET.Element) -> None:
        tag = el.tag
        handler = {
            "dependency": self.dependency, "dependent": self.dependent, "exec_method": self.exec_method,
            "method_context": self.method_context, "property_group": self.property_group,
            "restarter": self.restarter, "stability": self.stability, "template": self.template,
        }.get(tag) if isinstance(tag, str) else None
        if handler is not None:
            handler(el)
            return
        # Anything else (notification_parameters, ...) is kept as written and named once.
        self.smf.setdefault("extra_xml", []).append(verbatim(el))
        self.note(f"<{tag(el)}> (not interpreted; kept for export)")

    # ------------------------------------------------------------ elements
    def dependency(self, el: ET.Element) -> None:
        ctx = self.ctx
        name = ctx.attr(el, "name")
        grouping = ctx.attr(el, "grouping")
        restart_on = ctx.attr(el, "restart_on")
        dtype = ctx.attr(el, "type")
        if None in (name, grouping, restart_on, dtype):
            return
        assert name is not None
        fmris = self._fmris(el)
        dep: dict[str, Any] = {"name": name, "grouping": grouping, "restart_on": restart_on, "type": dtype,
                               "fmris": fmris}
        if not fmris:
            ctx.error(el, "names no <service_fmri>")
            return
        self.data.setdefault("dependencies", []).append(dep)
        self._nested_props(el, name, allowed=("service_fmri",))

    def dependent(self, el: ET.Element) -> None:
        ctx = self.ctx
        name = ctx.attr(el, "name")
        grouping = ctx.attr(el, "grouping")
        restart_on = ctx.attr(el, "restart_on")
        if None in (name, grouping, restart_on):
            return
        assert name is not None
        fmris = self._fmris(el)
        if not fmris:
            ctx.error(el, "names no <service_fmri>")
            return
        dep = {"name": name, "grouping": grouping, "restart_on": restart_on, "fmris": fmris}
        target = self.data
        if self.is_instance:
            # svcmgr's dependents belong to the service; with one instance that is the same thing.
            assert self.service is not None
            target = self.service
            self.note(f"<dependent name='{name}'> applies to the whole service, not only this instance")
        target.setdefault("dependents", []).append(dep)
        self._nested_props(el, name, allowed=("service_fmri",))

    def _fmris(self, el: ET.Element) -> list[str]:
        out = []
        for f in el.findall("service_fmri"):
            v = self.ctx.attr(f, "value")
            if v is not None:
                out.append(v.strip())
        return out

    def _nested_props(self, el: ET.Element, pg: str, allowed: tuple[str, ...]) -> None:
        """``propval``/``property``/``stability`` inside an element: properties of the group ``pg``."""
        for ch in el:
            if ch.tag in allowed:
                continue
            if ch.tag == "propval":
                self._propval(ch, pg)
            elif ch.tag == "property":
                self._property(ch, pg)
            elif ch.tag == "stability":
                v = self.ctx.attr(ch, "value")
                if v is not None:
                    self.prop(pg, "stability", "astring", [v])
            elif ch.tag == "property_group":
                # Not in the DTD, but some manifests nest one: its properties join the group.
                for g in ch:
                    if g.tag == "propval":
                        self._propval(g, pg)
                    elif g.tag == "property":
                        self._property(g, pg)
            else:
                self.ctx.error(ch, f"unexpected element inside <{tag(el)}>")

    def exec_method(self, el: ET.Element) -> None:
        ctx = self.ctx
        name = ctx.attr(el, "name")
        exec_ = ctx.attr(el, "exec")
        ts = ctx.attr(el, "timeout_seconds")
        if name is None or exec_ is None:
            return
        timeout = None
        if ts is not None:
            if not decimal_text(ts):  # as svccfg's strtoull reads it: int() also takes 1_000 and other digits
                ctx.error(el, f"timeout_seconds must be an integer, not {ts!r}")
                return
            timeout = int(ts)
            if abs(timeout) > _COUNT_MAX:  # strtoull's ERANGE, which svccfg refuses ("-1" it takes, as 2^64-1)
                ctx.error(el, f"timeout_seconds must be an integer of at most 64 bits, not {ts!r}")
                return
        mc = el.find("method_context")
        unrunnable = _unrunnable(exec_)
        if unrunnable:
            self.note(f"method {name!r}: {unrunnable}")
        if name in METHODS and not unrunnable:
            m: dict[str, Any] = {"exec": exec_}
            if timeout is not None:
                m["timeout"] = timeout
            if mc is not None:
                self._context(mc, m, pg=name)
            self.data.setdefault("methods", {})[name] = m
        else:
            # A method svcmgr's restarter never runs (inetd_start, restart, ...): kept as SMF
            # stores it, a property group of type "method".
            self.prop(name, "exec", "astring", [exec_])
            if timeout is not None:
                self.prop(name, "timeout_seconds", "count" if timeout >= 0 else "integer", [timeout])
            self.smf.setdefault("pg_types", {})[name] = "method"
            if mc is not None:
                kept: dict[str, Any] = {}
                self._context(mc, kept, pg=name)
                for k in ("user", "group", "working_directory", *CREDENTIAL_KEYS.values()):
                    if k in kept:
                        v = kept[k]
                        self.prop(name, k, "astring", [",".join(v) if isinstance(v, list) else v])
                if kept.get("environment"):
                    self.prop(name, "environment", "astring", [f"{k}={v}" for k, v in kept["environment"].items()])
            if not unrunnable:
                self.note(f"method {name!r} (svcmgr runs only start, stop and refresh)")
        self._nested_props(el, name, allowed=("method_context",))
        if name in METHODS and not unrunnable:
            props = self.data.get("properties", {}).get(name, {})
            m.update(context_keys({k: props.pop(k)["values"] for k in EXTRA_CONTEXT if k in props}))
            if name in self.data.get("properties", {}) and not props:
                del self.data["properties"][name]

    def method_context(self, el: ET.Element) -> None:
        self._context(el, self.data, pg="method_context")

    def _context(self, el: ET.Element, target: dict[str, Any], pg: str) -> None:
        """A ``<method_context>``: what Linux can do into ``target``, the rest as properties of ``pg``."""
        ctx = self.ctx
        wd = el.get("working_directory")
        if wd is not None and wd != "":
            target["working_directory"] = wd
        for a in ("project", "resource_pool", "security_flags"):
            v = el.get(a)
            if v is not None:
                self._ignored(pg, a, v)
        for ch in el:
            if ch.tag == "method_credential":
                user = ch.get("user")
                group = ch.get("group")
                if user is None:
                    ctx.error(ch, "attribute 'user' is required")
                elif user != _DEFAULT:
                    target["user"] = user
                if group is not None and group != _DEFAULT:
                    target["group"] = group
                for a, key in CREDENTIAL_KEYS.items():
                    v = (ch.get(a) or "").strip()
                    if v and v != _DEFAULT:
                        target[key] = [g for g in re.split(r"[\s,]+", v) if g] if a == "supp_groups" else v
            elif ch.tag == "method_profile":
                ctx.error(ch, f"method_profile {ch.get('name', '')!r}: RBAC execution profiles are not "
                              "supported; name the user and privileges in <method_credential> instead")
            elif ch.tag == "method_environment":
                env = target.setdefault("environment", {})
                for ev in ch:
                    if ev.tag != "envvar":
                        ctx.error(ev, "unexpected element inside <method_environment>")
                        continue
                    k = ctx.attr(ev, "name")
                    v = ctx.attr(ev, "value")
                    if k is not None and v is not None:
                        env[k] = v
            else:
                ctx.error(ch, "unexpected element inside <method_context>")

    def _ignored(self, pg: str, name: str, value: str) -> None:
        self.prop(pg, name, "astring", [value])
        if value not in (_DEFAULT, ""):
            self.note(f"{pg}/{name} = {value!r} (no meaning on Linux)")

    def restarter(self, el: ET.Element) -> None:
        fmris = self._fmris(el)
        if len(fmris) != 1:
            self.ctx.error(el, "must name exactly one <service_fmri>")
            return
        self.prop("general", "restarter", "fmri", fmris)
        if fmris[0] not in ("svc:/system/svc/restarter:default", "svc:/system/svc/restarter"):
            self.note(f"delegated restarter {fmris[0]} (svcmgr runs every instance itself)")

    def stability(self, el: ET.Element) -> None:
        v = self.ctx.attr(el, "value")
        if v is None:
            return
        if self.is_instance:
            self.prop("general", "entity_stability", "astring", [v])
        else:
            self.data["stability"] = v

    def template(self, el: ET.Element) -> None:
        common = loctext(el.find("common_name"))
        desc = loctext(el.find("description"))
        plain = all(ch.tag in ("common_name", "description") and
                    all(lt.get(XML_LANG, "C") == "C" for lt in ch.findall("loctext")) for ch in el)
        if self.is_instance:
            if common:
                self.data["description"] = common
            if not (plain and desc is None):
                self.smf["template_xml"] = verbatim(el)
        else:
            t: dict[str, str] = {}
            if common:
                t["common_name"] = common
                self.data["description"] = common
            if desc:
                t["description"] = desc
            doc = _documentation(el.find("documentation"))
            if doc:
                t["documentation"] = doc
            if t:
                self.data["template"] = t
            if not plain:
                self.smf["template_xml"] = verbatim(el)
        if el.find("pg_pattern") is not None:
            self.note("template <pg_pattern> property rules (documentation only, not enforced)")


def _unrunnable(exec_: str) -> str:
    """Why a method cannot run on Linux (a signal only Solaris has, as cron's ``:kill -THAW``), or ''."""
    text = exec_.strip()
    if not text.startswith(":kill"):
        return ""
    try:
        parse_exec(text)
    except ValueError as e:
        if "unknown signal" in str(e):
            return f"{text!r} names a signal Linux does not have (kept, never run)"
    return ""


def _documentation(el: ET.Element | None) -> str:
    if el is None:
        return ""
    out = []
    for ch in el:
        if ch.tag == "manpage" and ch.get("title"):
            out.append(f"{ch.get('title')}({ch.get('section', '')})")
        elif ch.tag == "doc_link" and ch.get("uri"):
            out.append(ch.get("uri", ""))
    return ", ".join(out)
