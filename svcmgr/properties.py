"""SMF's property groups over svcmgr's manifests: one table, read for ``svcprop`` and written for ``setprop``.

Each row of ``GROUPS`` names a standard property once: its group, its name, its
SMF type, how its value is read from an instance's configuration, and, when
``svccfg setprop`` may change it, where it goes in the manifest and how the typed
values are written there (or why it cannot be set). A manifest's own groups
(``[properties]``) follow the standard ones with the types they were declared with.
So a property keeps its type whichever way it goes: ``setprop`` without a type
uses the row's (or the existing property's) type, and one with another type is
refused for a standard property.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from svcmgr.security import Security
from svcmgr.spec import METHODS, InstanceConfig, Property, ServiceSpec, check_property_value, resolve_instance
from svcmgr.units import format_duration

if TYPE_CHECKING:
    from svcmgr.instance import Instance
    from svcmgr.spec import Dependency

__all__ = ["GROUPS", "EditError", "View", "Where", "add_group", "attached_view", "delete", "find", "property_view",
           "service_view", "set_property"]

#: pg -> name -> {"type": str, "values": [...]}, as ``svcprop`` shows them.
View = dict[str, dict[str, dict[str, Any]]]


class EditError(Exception):
    """A ``setprop`` refused; ``code`` is the exit status it means (2: a bad value, 1: not allowed here)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Where:
    """What a row reads from: the instance's configuration, the live instance (None for the editing
    copy), and for a method group its name, for a dependency group its dependency."""

    cfg: InstanceConfig
    inst: Instance | None = None
    method: str = ""
    dep: Dependency | None = None

    @property
    def security(self) -> Security:
        return self.cfg.method_context(self.method).security if self.method else self.cfg.context.security


def _one(values: Sequence[Any]) -> Any:
    if len(values) != 1:
        raise EditError("takes one value", 2)
    return values[0]


def _words(values: Sequence[Any]) -> list[str]:
    """Values that may each hold several names, separated by commas or spaces."""
    return [w for v in values for w in str(v).replace(",", " ").split()]


def _commas(values: Sequence[Any]) -> list[str]:
    return [w for v in values for w in str(v).split(",") if w]


def _joined(v: Any) -> Any:
    return ",".join(v) if isinstance(v, list | tuple) else v


def _target(v: Any) -> Any:
    return " ".join(v) if isinstance(v, tuple) else v


@dataclass(frozen=True)
class Prop:
    """One standard property. ``key``: where ``setprop`` writes it, a path in the manifest table (in the
    method's table for a method group); ``write`` turns the typed values into the manifest's value. A row
    without a key is read-only, ``why`` says where it is changed instead."""

    name: str
    type: str
    read: Callable[[Where], Any]  # the value(s), or None when the property is not there
    key: tuple[str, ...] = ()
    write: Callable[[Sequence[Any]], Any] = _one
    why: str = ""
    unit: str = ""  # what a number counts, for a clearer error


@dataclass(frozen=True)
class Group:
    """Standard properties under one group name, or under each name ``each`` gives (methods, dependencies)."""

    name: str
    props: tuple[Prop, ...]
    each: Callable[[InstanceConfig], Iterator[tuple[str, Where]]] | None = None
    #: where the group's values live in the manifest table (the method's own table for a method group)
    base: Callable[[str], tuple[str, ...]] = lambda pg: ()
    #: whether a group of this kind may be written although the configuration does not have it yet
    names: Callable[[str], bool] = lambda pg: False


_DAEMON = "is managed by the daemon; use svcadm"
_MANIFEST = "is declared in the manifest; change it there and import it again"


def _security_props() -> tuple[Prop, ...]:
    """A context's privileges and limits, with SMF's names where it has them (supp_groups)."""

    def dec(key: str) -> Callable[[Where], Any]:
        return lambda w: w.security.declared().get(key)

    return (
        Prop("privileges", "astring", lambda w: _joined(dec("privileges")(w)), ("privileges",)),
        Prop("limit_privileges", "astring", lambda w: _joined(dec("limit_privileges")(w)), ("limit_privileges",)),
        Prop("capabilities", "astring", lambda w: _joined(dec("capabilities")(w)), ("capabilities",), _words),
        Prop("no_new_privileges", "boolean", dec("no_new_privileges"), ("no_new_privileges",)),
        Prop("supp_groups", "astring", lambda w: _joined(dec("supplemental_groups")(w)),
             ("supplemental_groups",), _words),
        Prop("umask", "astring", dec("umask"), ("umask",)),
        Prop("rlimits", "astring", lambda w: (None if (v := dec("rlimits")(w)) is None else
                                              [f"{k}={s}:{h}" for k, (s, h) in sorted(v.items())]),
             why=_MANIFEST),
    )


def _grant(which: str) -> Callable[[Where], Any]:
    def read(w: Where) -> Any:
        g = getattr(w.cfg.authorizations, which)
        if not (g.names or g):
            return None
        return list(g.names) or [*(f"user:{u}" for u in g.users), *(f"group:{x}" for x in g.groups)]
    return read


def _methods(cfg: InstanceConfig) -> Iterator[tuple[str, Where]]:
    for name in sorted(cfg.methods):
        yield name, Where(cfg, method=name)


def _dependencies(cfg: InstanceConfig) -> Iterator[tuple[str, Where]]:
    for d in cfg.dependencies:
        yield d.name, Where(cfg, dep=d)


def _method_value(attr: str) -> Callable[[Where], Any]:
    return lambda w: getattr(w.cfg.method_context(w.method), attr) or None


def _timeout(w: Where) -> int:
    t = w.cfg.methods[w.method].timeout
    return 0 if t is None else int(t)


def _dep(attr: str) -> Callable[[Where], Any]:
    return lambda w: getattr(w.dep, attr)


def _health(attr: str, fmt: Callable[[Any], Any] = lambda v: v) -> Callable[[Where], Any]:
    return lambda w: None if w.cfg.health is None else fmt(getattr(w.cfg.health, attr))


def _smf_time(t: float) -> str:
    """A wall-clock time as libscf encodes a ``time`` value: seconds, a point and nine digits (the
    microseconds the clock gives, then zeros: no float noise)."""
    us = round(t * 1_000_000)
    return f"{us // 1_000_000}.{us % 1_000_000 * 1000:09d}"


def _restarter(read: Callable[[Instance], Any]) -> Callable[[Where], Any]:
    return lambda w: None if w.inst is None else read(w.inst)


def _resource(key: str) -> Callable[[Where], Any]:
    return lambda w: w.cfg.resources.declared().get(key)


#: Every standard property group, in the order ``svcprop`` lists them.
GROUPS: tuple[Group, ...] = (
    Group("general", (
        Prop("enabled", "boolean", lambda w: w.cfg.enabled if w.inst is None else w.inst.enabled, why=_DAEMON),
        Prop("entity_stability", "astring", lambda w: w.cfg.spec.stability or None, why=_DAEMON),
        Prop("action_authorization", "astring", _grant("action"), why=_DAEMON),
        Prop("value_authorization", "astring", _grant("value"), why=_DAEMON),
    )),
    Group("restarter", (
        Prop("state", "astring", _restarter(lambda i: i.state.value), why=_DAEMON),
        Prop("next_state", "astring", _restarter(lambda i: i.next_state.value if i.next_state else "none"),
             why=_DAEMON),
        Prop("state_timestamp", "time", _restarter(lambda i: _smf_time(i.stime)), why=_DAEMON),
        Prop("contract", "count", _restarter(lambda i: i.contract.ctid if i.contract is not None else None),
             why=_DAEMON),
        Prop("logfile", "astring", _restarter(lambda i: i.log.path if i.log else ""), why=_DAEMON),
    )),
    Group("startd", (
        Prop("duration", "astring", lambda w: w.cfg.duration, ("duration",)),
        Prop("ignore_error", "astring", lambda w: ",".join(w.cfg.restart.ignore_error) or None,
             ("restart", "ignore_error"), _commas),
        Prop("timeout_retry", "boolean", lambda w: w.cfg.restart.timeout_retry, ("restart", "timeout_retry")),
    )),
    Group("method", (
        Prop("type", "astring", lambda w: "method", why=_MANIFEST),
        Prop("exec", "astring", lambda w: w.cfg.methods[w.method].exec.display(), ("exec",)),
        Prop("timeout_seconds", "count", _timeout, ("timeout",), unit="seconds"),
        Prop("user", "astring", _method_value("user"), ("user",)),
        Prop("group", "astring", _method_value("group"), ("group",)),
        Prop("working_directory", "astring", _method_value("working_directory"), ("working_directory",)),
        Prop("environment", "astring", lambda w: [f"{k}={v}" for k, v in
                                                  sorted(w.cfg.method_context(w.method).environment.items())] or None,
             why=_MANIFEST),
        *_security_props(),
    ), each=_methods, base=lambda pg: ("methods", pg), names=lambda pg: pg in METHODS),
    Group("method_context", _security_props()),
    Group("dependency", (
        Prop("type", "astring", lambda w: "dependency", why=_MANIFEST),
        Prop("grouping", "astring", _dep("grouping"), why=_MANIFEST),
        Prop("restart_on", "astring", _dep("restart_on"), why=_MANIFEST),
        Prop("entities", "fmri", lambda w: list(w.dep.fmris) if w.dep else None, why=_MANIFEST),
        Prop("dep_type", "astring", _dep("type"), why=_MANIFEST),
    ), each=_dependencies),
    Group("resources", (
        Prop("memory", "count", _resource("memory"), ("resources", "memory")),
        Prop("cpu", "float", _resource("cpu"), ("resources", "cpu")),
        Prop("tasks", "count", _resource("tasks"), ("resources", "tasks")),
    )),
    Group("restart", (
        Prop("limit", "count", lambda w: w.cfg.restart.limit, ("restart", "limit")),
        Prop("period", "astring", lambda w: format_duration(w.cfg.restart.period), ("restart", "period")),
    )),
    Group("readiness", (
        Prop("type", "astring", lambda w: w.cfg.readiness.kind, why=_MANIFEST),
        Prop("target", "astring", lambda w: _target(w.cfg.readiness.target), why=_MANIFEST),
    )),
    Group("health", (
        Prop("type", "astring", _health("kind"), why=_MANIFEST),
        Prop("target", "astring", _health("target", _target), why=_MANIFEST),
        Prop("interval", "astring", _health("interval", format_duration), ("health", "interval")),
        Prop("failures", "count", _health("failures"), ("health", "failures")),
        Prop("action", "astring", _health("action"), ("health", "action")),
    )),
    Group("tm_common_name", (
        Prop("C", "ustring", lambda w: w.cfg.spec.template.get("common_name") or None, ("template", "common_name")),
    )),
    Group("tm_description", (
        Prop("C", "ustring", lambda w: w.cfg.spec.template.get("description") or None, ("template", "description")),
    )),
)


def _values(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list | tuple) else [v]


def _groups(cfg: InstanceConfig, inst: Instance | None) -> Iterator[tuple[str, Group, Where]]:
    for g in GROUPS:
        if g.each is None:
            yield g.name, g, Where(cfg, inst)
        else:
            for pg, w in g.each(cfg):
                yield pg, g, w


def property_view(cfg: InstanceConfig, inst: Instance | None = None) -> View:
    """Property groups as ``svcprop`` shows them: the standard ones read through ``GROUPS``, then the
    manifest's own with their declared types."""
    pgs: View = {}
    for pg, g, w in _groups(cfg, inst):
        for p in g.props:
            v = p.read(w)
            if v is not None:
                pgs.setdefault(pg, {})[p.name] = {"type": p.type, "values": _values(v)}
    for pg, props in sorted(cfg.properties.items()):
        group = pgs.setdefault(pg, {})  # a group added with svccfg addpg exists before it holds anything
        for name, prop in sorted(props.items()):
            group[name] = {"type": prop.type, "values": list(prop.values)}
    return pgs


def service_view(spec: ServiceSpec) -> View:
    """A service's own property groups (``svcprop`` of a service): what its manifest declares outside
    any instance; enabling and state belong to the instances."""
    pgs = property_view(resolve_instance(spec, ""))
    pgs.get("general", {}).pop("enabled", None)
    return {pg: props for pg, props in pgs.items() if props or pg == "general"}


#: The groups an instance always has of its own, whatever its manifest says.
_INSTANCE_GROUPS = ("general", "restarter")


def attached_view(cfg: InstanceConfig, inst: Instance | None) -> View:
    """The groups an instance sets itself (``svcprop -C``): its general and restarter groups, and the
    properties, methods and dependencies its ``[instances.NAME]`` table declares."""
    o = cfg.spec.instances.get(cfg.fmri.instance or "")
    own = set(_INSTANCE_GROUPS)
    if o is not None:
        own |= set(o.properties) | set(o.methods) | {d.name for d in o.dependencies}
    return {pg: props for pg, props in property_view(cfg, inst).items() if pg in own}


def find(cfg: InstanceConfig, pg: str, name: str) -> tuple[Group, Prop] | None:
    """The standard property ``pg/name`` of this configuration (or of its kind of group), if it is one."""
    for gname, g, _w in _groups(cfg, None):
        if gname == pg:
            return g, next((p for p in g.props if p.name == name), None) or _no_such(g, pg, name)
    for g in GROUPS:
        if g.names(pg):
            return g, next((p for p in g.props if p.name == name), None) or _no_such(g, pg, name)
    return None


def _no_such(g: Group, pg: str, name: str) -> Prop:
    return Prop(name, "astring", lambda w: None, why=f"is not a property of a {g.name} group "
                f"(known: {', '.join(p.name for p in g.props)})")


def set_property(table: dict[str, Any], cfg: InstanceConfig, pg: str, name: str, ptype: str | None,
                 values: Sequence[Any], existing: Property | None) -> None:
    """Write ``pg/name`` into a manifest table (the service's, or an instance's under it): a standard
    property where ``GROUPS`` puts it, another one under ``[properties]`` with its type: the given one,
    else the existing property's (at this level, or the service's for an instance), as svccfg does; a
    new property needs a type. Raises EditError."""
    prop = f"{pg}/{name}"
    std = find(cfg, pg, name)
    if std is None:
        ptype = ptype or (existing.type if existing is not None else None)
        if ptype is None:
            raise EditError("Type required for new properties.", 1)
        try:
            typed = [check_property_value(ptype, v) for v in values]
        except ValueError as e:
            raise EditError(f"{prop}: {e}", 2) from None
        table.setdefault("properties", {}).setdefault(pg, {})[name] = {"type": ptype, "values": typed}
        return
    g, p = std
    if not p.key:
        raise EditError(f"{prop} {p.why}", 1)
    if ptype is not None and ptype != p.type:
        raise EditError(f"{prop} is of type {p.type}, not {ptype}", 2)
    try:
        value = p.write([check_property_value(p.type, v) for v in values])
    except ValueError as e:
        raise EditError(f"{prop}: " + (f"expected a {p.type} of {p.unit}, got {', '.join(map(repr, values))}"
                                       if p.unit else str(e)), 2) from None
    except EditError as e:
        raise EditError(f"{prop} {e}", e.code) from None
    *parents, last = (*g.base(pg), *p.key)
    where = table
    for k in parents:
        where = where.setdefault(k, {})
    where[last] = value
    if g.base(pg) and "exec" not in where:
        raise EditError(f"{pg} has no exec; set {pg}/exec first", 1)


def _level(data: dict[str, Any], instance: str | None) -> dict[str, Any]:
    """The manifest table of the service (``instance`` None) or of one of its instances."""
    return data if instance is None else data.setdefault("instances", {}).setdefault(instance, {})


def _pg_types(data: dict[str, Any], instance: str | None) -> dict[str, str]:
    smf = data.setdefault("smf", {})
    level = smf if instance is None else smf.setdefault("instances", {}).setdefault(instance, {})
    return level.setdefault("pg_types", {})


def add_group(data: dict[str, Any], instance: str | None, cfg: InstanceConfig, pg: str, ptype: str) -> None:
    """Declare a property group (``svccfg addpg``): its type, and for a group of the manifest's own an
    empty ``[properties]`` table; a standard group (a method's) takes its properties from ``GROUPS``."""
    if find(cfg, pg, "type") is None:
        _level(data, instance).setdefault("properties", {}).setdefault(pg, {})
    _pg_types(data, instance)[pg] = ptype


def delete(data: dict[str, Any], instance: str | None, cfg: InstanceConfig, pg: str, name: str | None) -> None:
    """Remove a property group, or one property, from a manifest table (``svccfg delprop``, ``delpg``);
    EditError when it is not there or is not the manifest's to remove."""
    table = _level(data, instance)
    own = table.get("properties", {})
    declared = _pg_types(data, instance)
    if name is None:
        if pg in own or pg in declared:
            own.pop(pg, None)
            declared.pop(pg, None)
        elif pg in table.get("methods", {}):
            del table["methods"][pg]
        elif any(d.get("name") == pg for d in table.get("dependencies", [])):
            table["dependencies"] = [d for d in table["dependencies"] if d.get("name") != pg]
        else:
            std = find(cfg, pg, "type")
            raise EditError(f'No such property group "{pg}".' if std is None else
                            f"{pg} is a group of the daemon's own (its properties are changed, not removed)", 1)
        return
    if pg in own:
        if name not in own[pg]:
            raise EditError(f"No such property {pg}/{name}.", 1)
        del own[pg][name]
        return
    std = find(cfg, pg, name)
    if std is None:
        raise EditError(f'No such property group "{pg}".', 1)
    g, p = std
    *parents, last = (*g.base(pg), *p.key) if p.key else ("", "")
    where: Any = table
    for k in parents:
        where = where.get(k, {}) if isinstance(where, dict) else {}
    if not p.key or not isinstance(where, dict) or last not in where:
        raise EditError(f"No such property {pg}/{name}." if p.key else f"{pg}/{name} {p.why}", 1)
    del where[last]
