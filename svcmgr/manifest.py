"""Service manifests: the TOML vocabulary validated into a typed, immutable ``ServiceSpec`` (``svcmgr.spec``).

A manifest describes one service and its instances with keys that mirror SMF's
XML vocabulary (docs/manifests.md). Every field is checked; an error names the file,
the field and what is wrong, and all errors of a file are reported together.
``svcmgr.sections`` reads each table; this module assembles the service, its
instances and the sections other packages declare (``EXTENSIONS``), and checks what
spans tables (a start method, names used twice, each method's privileges). The same
validator serves TOML files and SMF XML (both read by ``svcmgr.loader``) and specs
stored in the repository (``ServiceSpec.to_dict`` round-trips).
"""

from __future__ import annotations

import copy
import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from svcmgr import fmri as fmri_mod
from svcmgr.schema import FieldError, FieldErrors
from svcmgr.schema import Reader as _Reader
from svcmgr.sections import (
    CONTEXT_KEYS,
    read_authorizations,
    read_context,
    read_dependency,
    read_health,
    read_log,
    read_methods,
    read_properties,
    read_readiness,
    read_restart,
)
from svcmgr.security import NO_RESOURCES, NO_SECURITY, read_resources
from svcmgr.security import check as check_security
from svcmgr.smfxml import section as smf_section
from svcmgr.spec import (
    DEFAULT_TIMEOUT,
    DURATIONS,
    Exec,
    InstanceOverride,
    LogPolicy,
    Method,
    RestartPolicy,
    ServiceSpec,
    resolve_instance,
)

__all__ = ["EXTENSIONS", "ManifestError", "ManifestErrors", "parse_service"]

ManifestError = FieldError
ManifestErrors = FieldErrors

# Shared by every spec that leaves these unset (specs and their mappings are never changed in place; the shared
# mappings are read-only, so that one changed by mistake fails there rather than changing every service): made
# once, not once per service, which a boot of many services keeps.
_NO_RESTART = RestartPolicy()
_NO_LOG = LogPolicy()
_EMPTY: Mapping[str, Any] = MappingProxyType({})
#: The instances of a manifest without an [instances] table: its one instance, "default", as the service says.
_DEFAULT_INSTANCES: Mapping[str, InstanceOverride] = MappingProxyType({"default": InstanceOverride("default")})


def _instance(r: _Reader, name: str, base_dir: str | None, spec_restart: RestartPolicy,
              spec_log: LogPolicy) -> InstanceOverride | None:
    enabled = r.bool("enabled")
    description = r.str("description")
    duration = r.str("duration", None, choices=DURATIONS)
    ctx = None
    if not CONTEXT_KEYS.isdisjoint(r.data):
        ctx = read_context(r, base_dir)
    methods = read_methods(r.table("methods"), base_dir)
    deps = tuple(d for d in (read_dependency(t, "dependency") for t in r.tables("dependencies")) if d)
    readiness = read_readiness(r.table("readiness"))
    health = read_health(r.table("health"))
    restart = read_restart(r.table("restart"), spec_restart)
    log = read_log(r.table("log"), spec_log)
    props = read_properties(r.table("properties"))
    resources = read_resources(r.table("resources"))
    r.done()
    if not r.ok:
        return None
    return InstanceOverride(name, enabled, description, duration, ctx, methods, deps, readiness,
                            health, restart, log, props, dict(r.data), resources)


#: Sections a manifest may carry for other packages: name -> validator(value, source, key) -> value.
#: ``[smf]`` (what an SMF XML manifest declares beyond svcmgr's vocabulary) is svcmgr's own; the VRRP and
#: load-balancer packages sit above svcmgr and register theirs when imported (``_EXTENSION_MODULES``).
EXTENSIONS: dict[str, Callable[[Any, str, str], Any]] = {"smf": smf_section.validate}
_EXTENSION_MODULES = {"vrrp": "vrrp.model", "lb": "lb.model"}


def _extension(name: str) -> Callable[[Any, str, str], Any] | None:
    if name not in EXTENSIONS and name in _EXTENSION_MODULES:
        try:
            importlib.import_module(_EXTENSION_MODULES[name])
        except ImportError:
            return None
    return EXTENSIONS.get(name)


def parse_service(data: Any, source: str = "", *, base_dir: str | None = None, fresh: bool = False) -> ServiceSpec:
    """Validate one manifest (a TOML-shaped mapping). Raises ManifestErrors listing every problem.

    ``fresh``: ``data`` was just decoded by a reader and nothing else holds it, so the spec keeps it as its
    normal form instead of a deep copy (most of a manifest's copying at a boot)."""
    errors: list[ManifestError] = []
    r = _Reader(source, errors, data, "")
    name = r.str("name", required=True)
    svc = None
    if name is not None:
        try:
            svc = fmri_mod.parse(name)
        except fmri_mod.FmriError as e:
            r.error("name", str(e))
        else:
            if svc.instance is not None:
                r.error("name", f"{name!r} names an instance; a manifest names a service "
                                "and declares instances under [instances]")
                svc = None
    description = r.str("description", "")
    stype = r.str("type", "service", choices=("service", "milestone", "restarter"))
    duration = r.str("duration", None, choices=DURATIONS)
    enabled = r.bool("enabled", True)
    ctx = read_context(r, base_dir)
    methods = read_methods(r.table("methods"), base_dir)
    deps = tuple(d for d in (read_dependency(t, "dependency") for t in r.tables("dependencies")) if d)
    dependents = tuple(d for d in (read_dependency(t, "dependent") for t in r.tables("dependents")) if d)
    readiness = read_readiness(r.table("readiness"))
    health = read_health(r.table("health"))
    restart = read_restart(r.table("restart"), _NO_RESTART) or _NO_RESTART
    log = read_log(r.table("log"), _NO_LOG) or _NO_LOG
    auth = read_authorizations(r.table("authorizations"))
    props = read_properties(r.table("properties")) or _EMPTY
    resources = read_resources(r.table("resources")) or NO_RESOURCES
    template: dict[str, str] = {}
    t = r.table("template")
    if t is not None:
        for k in ("common_name", "description", "documentation"):
            v = t.str(k)
            if v is not None:
                template[k] = v
        t.done()
    stability = r.str("stability", "")
    instances: Mapping[str, InstanceOverride] = _DEFAULT_INSTANCES
    it = r.table("instances")
    if it is not None:
        instances = declared = {}
        for iname in list(it.data):
            sub = it.table(iname)
            if not fmri_mod.valid_instance_name(iname):
                it.error(iname, "is not a valid instance name")
                continue
            if sub is None:
                continue
            o = _instance(sub, iname, base_dir, restart, log)
            if o is not None:
                declared[iname] = o
        if not it.data:
            it.error("", "declares no instance")
    extensions: dict[str, Any] = {}
    for key in list(r.data):
        if key in r.seen:
            continue
        fn = _extension(key)
        if fn is not None:
            r.get(key)
            try:
                extensions[key] = fn(r.data[key], source, key)
            except ManifestErrors as e:
                errors.extend(e.errors)
            except ManifestError as e:
                errors.append(e)
    r.done()

    if stype == "milestone":
        if duration is None:
            duration = "transient"
        if "start" not in methods:
            methods["start"] = Method(Exec("true"), DEFAULT_TIMEOUT)
    elif "start" not in methods and r.ok:
        has_inst_start = instances and all("start" in o.methods for o in instances.values())
        if not has_inst_start:
            errors.append(ManifestError(source, "methods.start",
                                        "is required (or set type = \"milestone\")"))
    seen_names: set[str] = set()
    for i, d in enumerate(deps):
        if d.name in seen_names:
            errors.append(ManifestError(source, f"dependencies[{i}].name", f"{d.name!r} is used twice"))
        if d.name in props:  # as in SMF, a dependency is a property group of its name
            errors.append(ManifestError(source, f"dependencies[{i}].name",
                                        f"{d.name!r} is also a property group ([properties.{d.name}])"))
        seen_names.add(d.name)
        if svc is not None and any(f.startswith(str(svc)) and
                                   (f == str(svc) or f[len(str(svc))] == ":") for f in d.fmris):
            errors.append(ManifestError(source, f"dependencies[{i}].fmris",
                                        f"the service {svc} depends on itself"))
    if errors:
        raise ManifestErrors(errors)
    assert svc is not None
    spec = ServiceSpec(
        fmri=svc, description=description, type=stype, duration=duration or "contract",
        enabled=enabled, context=ctx, methods=methods, dependencies=deps, dependents=dependents,
        readiness=readiness, health=health, restart=restart, log=log, authorizations=auth,
        properties=props, resources=resources, instances=instances, template=template or _EMPTY,
        stability=stability, extensions=extensions or _EMPTY, source=source,
        raw=_normal_form(data if fresh else copy.deepcopy(data), base_dir),
    )
    warnings = _check_contexts(spec, errors)
    if errors:
        raise ManifestErrors(errors)
    return replace(spec, warnings=tuple(warnings)) if warnings else spec


def _sets_security(spec: ServiceSpec) -> bool:
    """Whether a context of the spec (the service's, an instance's, a method's) sets a security field; if
    none does, every method's merged context has the empty security, which ``check_security`` passes."""
    contexts = [spec.context, *(m.context for m in spec.methods.values())]
    for o in spec.instances.values():
        if o.context is not None:
            contexts.append(o.context)
        contexts.extend(m.context for m in o.methods.values())
    return any(c.security != NO_SECURITY for c in contexts)


def _check_contexts(spec: ServiceSpec, errors: list[ManifestError]) -> list[str]:
    """Each method's merged context, checked as it will run (privileges within limit_privileges)."""
    warnings: list[str] = []
    if not _sets_security(spec):
        return warnings
    for name in spec.instances:
        cfg = resolve_instance(spec, name)
        for mname in sorted(cfg.methods):
            errs, warns = check_security(cfg.method_context(mname).security)
            where = f"{cfg.fmri} {mname} method"
            errors.extend(ManifestError(spec.source, field, f"{where}: {msg}") for field, msg in errs)
            for w in warns:
                text = f"{spec.source}: {spec.fmri}: {mname} method: {w}"
                if text not in warnings:
                    warnings.append(text)
    return warnings


def _normal_form(out: dict[str, Any], base_dir: str | None) -> dict[str, Any]:
    """The manifest as stored, made from ``out`` (a copy of it): relative working directories made absolute."""

    def fix(table: Any) -> None:
        if isinstance(table, dict):
            wd = table.get("working_directory")
            if isinstance(wd, str) and wd != ":default" and not os.path.isabs(wd) and base_dir:
                table["working_directory"] = os.path.normpath(os.path.join(base_dir, wd))

    fix(out)
    for m in (out.get("methods") or {}).values():
        fix(m)
    for inst in (out.get("instances") or {}).values():
        fix(inst)
        if isinstance(inst, dict):
            for m in (inst.get("methods") or {}).values():
                fix(m)
    return out
