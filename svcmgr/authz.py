"""Who may do what to a service: SMF's authorization model (``smf_security(7)``), decided here only.

The control socket (``svcmgr.control``) and the fault manager (``fault.daemon``) ask
``require`` before they act and ``allowed`` before they show a protected value;
neither decides by itself. The caller is whoever the kernel says (SO_PEERCRED), never
what a request claims. Root, and the user the daemon runs as, hold every right.

=========  ======================================================  =================================
right      what it allows                                          who else holds it
=========  ======================================================  =================================
read       protected values: every method environment, and the     ``[authorizations.read]``
           property groups that carry a ``read_authorization``
log        the tail of the service's log (``svcs -xv``, ``log``)   ``.read``, ``.action``, ``.value``
action     restart, refresh, clear, mark, temporary enable and     ``[authorizations.action]``,
           disable, a verdict on the service's fault case          ``.value``
value      persistent enable and disable; new values for the       ``[authorizations.value]``
           existing properties of *application* property groups
operator   everything else: method groups (exec, user, group,      nobody: root only
           privileges, working directory, environment, timeouts),
           dependency and framework groups, adding, retyping or
           deleting properties, import, delete, the milestone,
           injecting ereports
=========  ======================================================  =================================

A property group's type is what an SMF XML manifest declared (``<property_group
type=...>``), else what svcmgr gives it meaning as: a method's name (``start``, ``stop``,
``refresh``) is a method group, a dependency's name a dependency group, the daemon's own
groups (``general``, ``restarter``, ``startd``, ``restart``, ``readiness``, ``health``,
``log``, ``tm_*``) framework groups; any other group a manifest declares is application
data. Only application data may be delegated: a value that a delegated user sets can
reach a method only as data (``svcmgr.restarter`` passes it as arguments, never as code).
"""

from __future__ import annotations

import grp
import pwd
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from svcmgr.api import ApiError, Caller
from svcmgr.spec import METHODS, Grant, ServiceSpec

__all__ = ["Right", "allowed", "declared_types", "group_type", "holds", "partition", "protected_groups", "refusal",
           "require", "require_operator"]


class Right(StrEnum):
    READ = "read"
    LOG = "log"
    ACTION = "action"
    VALUE = "value"
    OPERATOR = "operator"


#: Which of a manifest's ``[authorizations.*]`` grants carry each right (root holds them all).
GRANTS: Mapping[Right, tuple[str, ...]] = {
    Right.READ: ("read",),
    Right.LOG: ("read", "action", "value"),
    Right.ACTION: ("action", "value"),
    Right.VALUE: ("value",),
    Right.OPERATOR: (),
}

#: Property groups that belong to the daemon itself.
FRAMEWORK_GROUPS = frozenset({"general", "restarter", "restarter_actions", "startd", "restart", "readiness",
                              "health", "log", "method_context", "resources", "smf"})


def holds(caller: Caller, grant: Grant) -> bool:
    """Whether the caller is one of a grant's users, or in one of its groups (by uid and gids)."""
    for u in grant.users:
        if u.isdigit():
            if int(u) == caller.uid:
                return True
            continue
        try:
            if pwd.getpwnam(u).pw_uid == caller.uid:
                return True
        except KeyError:
            continue
    for g in grant.groups:
        try:
            gid = int(g) if g.isdigit() else grp.getgrnam(g).gr_gid
        except KeyError:
            continue
        if gid in caller.groups:
            return True
    return False


def allowed(caller: Caller, spec: ServiceSpec | None, right: Right) -> bool:
    """Whether the caller holds ``right`` on the service (``spec`` None: no such service, root only)."""
    if caller.privileged:
        return True
    if spec is None:
        return False
    auth = spec.authorizations
    return any(holds(caller, getattr(auth, name)) for name in GRANTS[right])


def _who(right: Right) -> str:
    names = GRANTS[right]
    if not names:
        return "root"
    return "root or a grant in the service's " + " or ".join(f"[authorizations.{n}]" for n in names)


def refusal(caller: Caller, fmri: str, spec: ServiceSpec | None, right: Right, what: str, why: str = "") -> str:
    """Why the caller may not ``what`` this target: ``permission denied: uid N (name) may not VERB FMRI: ``
    then ``why`` (if any) and who may (the grants that carry ``right``, or only root)."""
    who = "only root may" if spec is None else f"needs {_who(right)}"
    because = f"{why}; " if why else ""
    return f"permission denied: {caller.describe()} may not {what} {fmri}: {because}{who}"


def require(caller: Caller, targets: Iterable[tuple[str, ServiceSpec | None]], right: Right, what: str,
            why: str = "") -> None:
    """Raise ApiError (code 1) unless the caller holds ``right`` on every (FMRI, spec) target.

    ``what`` is the verb (``restart``, ``repair``, ``change start/exec of``); ``why`` an optional
    explanation put before who may."""
    if caller.privileged:
        return
    for fmri, spec in targets:
        if not allowed(caller, spec, right):
            raise ApiError(refusal(caller, fmri, spec, right, what, why), 1)


def partition(caller: Caller, targets: Iterable[tuple[str, ServiceSpec | None]], right: Right,
              what: str) -> tuple[list[str], dict[str, str]]:
    """The (FMRI, spec) targets the caller holds ``right`` on, in order, and for each other one why not
    (``refusal``): svcadm acts on each instance it may and reports each one it may not (svcadm.c)."""
    permitted: list[str] = []
    refused: dict[str, str] = {}
    for fmri, spec in targets:
        if allowed(caller, spec, right):
            permitted.append(fmri)
        else:
            refused[fmri] = refusal(caller, fmri, spec, right, what)
    return permitted, refused


def require_operator(caller: Caller, what: str) -> None:
    """Raise ApiError unless the caller is root (or the daemon's own user)."""
    if not caller.privileged:
        raise ApiError(f"permission denied: {caller.describe()} may not {what}: only root "
                       "(or the daemon's own user) may", 1)


# ---------------------------------------------------------------------------- property groups


def declared_types(spec: ServiceSpec, instance: str | None) -> dict[str, str]:
    """The property group types a manifest declared (an SMF manifest's, or ``svccfg addpg``'s)."""
    smf = spec.extensions.get("smf") or {}
    types = dict(smf.get("pg_types") or {}) if isinstance(smf, Mapping) else {}
    if instance is not None and isinstance(smf, Mapping):
        inst = (smf.get("instances") or {}).get(instance) or {}
        types.update(inst.get("pg_types") or {})
    return types


def group_type(spec: ServiceSpec, pg: str, instance: str | None = None) -> str:
    """``application``, ``method``, ``dependency``, ``framework`` (or another type an SMF manifest
    declared) for one property group of a service or one of its instances."""
    declared = declared_types(spec, instance).get(pg)
    if declared:
        return declared
    methods = set(METHODS) | set(spec.methods)
    deps = {d.name for d in (*spec.dependencies, *spec.dependents)}
    overrides = spec.instances.get(instance) if instance is not None else None
    for o in [overrides] if overrides is not None else spec.instances.values():
        methods |= set(o.methods)
        deps |= {d.name for d in o.dependencies}
    if pg in methods:
        return "method"
    if pg in deps:
        return "dependency"
    if pg in FRAMEWORK_GROUPS or pg.startswith("tm_"):
        return "framework"
    return "application"


def protected_groups(properties: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The property groups whose values only readers may see: those with a ``read_authorization``."""
    return {pg for pg, props in properties.items() if "read_authorization" in props}


# ---------------------------------------------------------------------------- protected values

#: What a hidden value is replaced with in a listing, so that a reader sees it exists.
HIDDEN = "(protected)"


def redact_view(pgs: dict[str, dict[str, dict[str, Any]]], spec: ServiceSpec,
                instance: str | None = None) -> list[str]:
    """Hide, in place, the protected values of a ``svcprop``-style view; the names hidden."""
    hidden = []
    secret = protected_groups(pgs)
    for pg, props in pgs.items():
        method = group_type(spec, pg, instance) == "method"
        for name, p in props.items():
            protected = (pg in secret and name != "read_authorization") or (method and name == "environment")
            if protected and p.get("values"):
                p["values"] = [HIDDEN]
                hidden.append(f"{pg}/{name}")
    return hidden


def redact_manifest(data: dict[str, Any]) -> list[str]:
    """Hide, in place, the protected values of a manifest in normal form (``svccfg export``);
    the dotted paths hidden. Method environments and protected property groups keep their keys."""
    hidden: list[str] = []

    def env(table: Any, path: str) -> None:
        if isinstance(table, dict) and isinstance(table.get("environment"), dict):
            for k in table["environment"]:
                table["environment"][k] = HIDDEN
                hidden.append(f"{path}environment.{k}")

    def entity(table: Any, path: str) -> None:
        if not isinstance(table, dict):
            return
        env(table, path)
        for name, m in (table.get("methods") or {}).items():
            env(m, f"{path}methods.{name}.")
        props = table.get("properties")
        if isinstance(props, dict):
            for pg, values in props.items():
                if isinstance(values, dict) and "read_authorization" in values:
                    for k in values:
                        if k != "read_authorization":
                            values[k] = HIDDEN
                            hidden.append(f"{path}properties.{pg}.{k}")

    entity(data, "")
    for name, inst in (data.get("instances") or {}).items():
        entity(inst, f"instances.{name}.")
    return hidden
