"""The readers of a manifest's tables, one each: a method and its context, a dependency, readiness and
health checks, the restart and log policies, authorizations and the manifest's own properties.

Each takes a ``schema.Reader`` on its table, records every problem on it with the
field's dotted path, and returns the typed value (``svcmgr.spec``) or None when
the table is absent or wrong. ``svcmgr.manifest`` assembles them into a service.
"""

from __future__ import annotations

import os
import re
from typing import Any

from svcmgr import fmri as fmri_mod
from svcmgr.events import ereport_owner
from svcmgr.schema import MISSING as _Sentinel
from svcmgr.schema import Reader as _Reader
from svcmgr.schema import typename as _typename
from svcmgr.security import KEYS as SECURITY_KEYS
from svcmgr.security import read_security
from svcmgr.spec import (
    DEFAULT_TIMEOUT,
    GROUPINGS,
    HEALTH_KINDS,
    METHODS,
    NO_AUTHORIZATIONS,
    NO_CONTEXT,
    PROP_TYPES,
    READINESS_KINDS,
    RESTART_ON,
    Authorizations,
    Context,
    Dependency,
    Grant,
    Health,
    LogPattern,
    LogPolicy,
    Method,
    Property,
    Readiness,
    RestartPolicy,
    check_property_value,
    parse_exec,
    property_type,
)

__all__ = ["CONTEXT_KEYS", "USER_RE", "read_authorizations", "read_context", "read_dependency", "read_health",
           "read_log", "read_methods", "read_properties", "read_readiness", "read_restart"]

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*\Z")
_PG_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.,+-]*\Z")
USER_RE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_.-]*\$?|\d+)\Z")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_HOSTPORT_RE = re.compile(r"^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})\Z")
_TOKEN_RE = re.compile(r"%(\{[A-Za-z0-9_.,+-]+/[A-Za-z0-9_.,+-]+\}|[rmsif%])")
#: The fields of a context table (a method's, an instance's, the service's own).
CONTEXT_KEYS = frozenset(("user", "group", "working_directory", "environment", *SECURITY_KEYS))



def _method(r: _Reader, base_dir: str | None) -> Method | None:
    raw = r.get("exec", _Sentinel)
    if raw is _Sentinel:
        r.error("exec", "is required")
        return None
    try:
        ex = parse_exec(raw)
    except ValueError as e:
        r.error("exec", str(e))
        ex = None
    timeout = r.duration("timeout", DEFAULT_TIMEOUT, allow_none=True)
    ctx = read_context(r, base_dir)
    r.done()
    if ex is None:
        return None
    return Method(ex, timeout, ctx)


def read_context(r: _Reader, base_dir: str | None) -> Context:
    if CONTEXT_KEYS.isdisjoint(r.data):
        return NO_CONTEXT  # what the fields below give when none of them is set (one, shared)
    user = r.str("user", pattern=USER_RE)
    group = r.str("group", pattern=USER_RE)
    wd = r.str("working_directory")
    if wd is not None and wd != ":default" and not os.path.isabs(wd):
        if base_dir is None:
            r.error("working_directory", f"{wd!r} must be an absolute path")
            wd = None
        else:
            wd = os.path.normpath(os.path.join(base_dir, wd))
    env: dict[str, str] = {}
    e = r.get("environment", _Sentinel)
    if e is not _Sentinel:
        if not isinstance(e, dict):
            r.error("environment", f"expected a table of strings, got {_typename(e)}")
        else:
            for k, v in e.items():
                if not _ENV_RE.match(k):
                    r.error(f"environment.{k}", "is not a valid environment variable name")
                elif not isinstance(v, str | int | float) or isinstance(v, bool):
                    r.error(f"environment.{k}", f"expected a string, got {_typename(v)}")
                elif "\x00" in str(v):
                    r.error(f"environment.{k}", "contains a NUL character")
                else:
                    env[k] = str(v)
    return Context(user, group, wd, env, read_security(r))


def read_methods(r: _Reader | None, base_dir: str | None) -> dict[str, Method]:
    out: dict[str, Method] = {}
    if r is None:
        return out
    for name in list(r.data):
        if name not in METHODS:
            r.get(name)
            r.error(name, f"unknown method (known: {', '.join(METHODS)})")
            continue
        sub = r.table(name)
        if sub is None:
            continue
        m = _method(sub, base_dir)
        if m is not None:
            out[name] = m
    return out


def read_dependency(r: _Reader, kind: str) -> Dependency | None:
    name = r.str("name", required=True, pattern=_NAME_RE)
    grouping = r.str("grouping", "require_all", choices=GROUPINGS)
    restart_on = r.str("restart_on", "none", choices=RESTART_ON)
    fmris = r.strlist("fmris", nonempty=True)
    dtype = r.str("type", None, choices=("service", "path"))
    norm: list[str] = []
    types: set[str] = set()
    for i, f in enumerate(fmris or ()):
        try:
            p = fmri_mod.parse_any(f)
        except fmri_mod.FmriError as e:
            r.error(f"fmris[{i}]", str(e))
            continue
        if kind == "dependent" and not isinstance(p, fmri_mod.FMRI):
            r.error(f"fmris[{i}]", "a dependent must be a service, not a path")
            continue
        types.add("path" if isinstance(p, fmri_mod.PathFMRI) else "service")
        norm.append(str(p))
    if len(types) > 1:
        r.error("fmris", "mixes services and paths; declare them as separate dependencies")
    inferred = types.pop() if len(types) == 1 else "service"
    if dtype is not None and dtype != inferred and fmris:
        r.error("type", f"is {dtype!r} but the fmris name a {inferred}")
    r.done()
    if not r.ok:
        return None
    return Dependency(name, grouping, restart_on, tuple(norm), dtype or inferred)


def _target_of(r: _Reader, kinds: tuple[str, ...], section: str) -> tuple[str | None, Any]:
    found = [k for k in kinds if r.has(k)]
    if len(found) > 1:
        for k in found:
            r.get(k)
        r.error("", f"names several checks ({', '.join(found)}); a {section} check has exactly one")
        return None, None
    if not found:
        return None, None
    k = found[0]
    v = r.get(k)
    if k in ("exit", "spawn", "notify"):
        if v is not True:
            r.error(k, "must be true (remove the key for the default)")
            return None, None
        return k, None
    if k == "tcp":
        if not isinstance(v, str) or not _HOSTPORT_RE.match(v) or not 0 < int(v.rsplit(":", 1)[1]) < 65536:
            r.error(k, f"expected \"host:port\" with a port 1-65535, got {v!r}")
            return None, None
        return k, v
    if k == "http":
        if not isinstance(v, str) or not re.match(r"^https?://[^\s/]+(/\S*)?\Z", v):
            r.error(k, f"expected an http:// or https:// URL, got {v!r}")
            return None, None
        return k, v
    if k == "command":
        try:
            ex = parse_exec(v)
        except ValueError as e:
            r.error(k, str(e))
            return None, None
        if ex.kind not in ("argv", "shell"):
            r.error(k, "must be a command, not a method token")
            return None, None
        return k, ex.argv if ex.kind == "argv" else ex.shell
    return None, None


def read_readiness(r: _Reader | None) -> Readiness | None:
    if r is None:
        return None
    kind, target = _target_of(r, READINESS_KINDS, "readiness")
    timeout = r.duration("timeout", None, allow_none=True)
    r.done()
    if not r.ok:
        return None
    if kind is None:
        r.error("", f"names no check (one of {', '.join(READINESS_KINDS)})")
        return None
    return Readiness(kind, target, timeout)


def read_health(r: _Reader | None) -> Health | None:
    if r is None:
        return None
    kind, target = _target_of(r, HEALTH_KINDS, "health")
    interval = r.duration("interval", 10.0, positive=True)
    timeout = r.duration("timeout", 5.0, positive=True)
    failures = r.int("failures", 3, lo=1, hi=1000)
    action = r.str("action", "restart", choices=("restart", "degrade"))
    r.done()
    if not r.ok:
        return None
    if kind is None:
        r.error("", f"names no probe (one of {', '.join(HEALTH_KINDS)})")
        return None
    return Health(kind, target, interval, timeout, failures, action)


def read_restart(r: _Reader | None, base: RestartPolicy) -> RestartPolicy | None:
    if r is None:
        return None
    limit = r.int("limit", base.limit, lo=1, hi=1_000_000)
    period = r.duration("period", base.period, positive=True)
    ignore = r.strlist("ignore_error", base.ignore_error)
    for x in ignore:
        if x not in ("core", "signal"):
            r.error("ignore_error", f"{x!r}: expected 'core' or 'signal'")
    retry = r.bool("timeout_retry", base.timeout_retry)
    r.done()
    return RestartPolicy(limit, period, tuple(ignore), retry)


def read_log(r: _Reader | None, base: LogPolicy) -> LogPolicy | None:
    if r is None:
        return None
    size = r.size("max_size", base.max_size)
    if size is not None and size < 1024:
        r.error("max_size", "must be at least 1024 bytes")
    keep = r.int("keep", base.keep, lo=0, hi=100)
    patterns = []
    for p in r.tables("patterns"):
        regex = p.str("match", required=True)
        cls = p.str("class", required=True)
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as e:
                p.error("match", f"bad regular expression: {e}")
        if cls is not None and not re.match(r"^ereport(\.[A-Za-z0-9_-]+)+\Z", cls):
            p.error("class", f"{cls!r}: expected an ereport class such as ereport.app.error")
        elif cls is not None and ereport_owner(cls) is not None:
            p.error("class", f"{cls!r} belongs to the {ereport_owner(cls)} source: a service's log may not speak "
                    "for it (use a class of your own, such as ereport.app.error)")
        p.done()
        if p.ok:
            patterns.append(LogPattern(regex, cls))
    r.done()
    return LogPolicy(size, keep, tuple(patterns))


def _grant(r: _Reader | None) -> Grant:
    if r is None:
        return Grant()
    users = r.strlist("users", pattern=USER_RE)
    groups = r.strlist("groups", pattern=USER_RE)
    names = r.strlist("names")
    r.done()
    return Grant(tuple(users), tuple(groups), tuple(names))


def read_authorizations(r: _Reader | None) -> Authorizations:
    if r is None:
        return NO_AUTHORIZATIONS
    a = _grant(r.table("action"))
    v = _grant(r.table("value"))
    rd = _grant(r.table("read"))
    r.done()
    return Authorizations(a, v, rd)


def read_properties(r: _Reader | None) -> dict[str, dict[str, Property]]:
    out: dict[str, dict[str, Property]] = {}
    if r is None:
        return out
    for pg in list(r.data):
        sub = r.table(pg)
        if not _PG_RE.match(pg):
            r.error(pg, "is not a valid property group name")
            continue
        if sub is None:
            continue
        props: dict[str, Property] = {}
        for name in list(sub.data):
            v = sub.get(name)
            if not _PG_RE.match(name):
                sub.error(name, "is not a valid property name")
                continue
            p = _property(sub, name, v)
            if p is not None:
                props[name] = p
        out[pg] = props
    return out


def _property(r: _Reader, name: str, v: Any) -> Property | None:
    if isinstance(v, dict):
        sub = _Reader(r.source, r.errors, v, r.f(name))
        ptype = sub.str("type", None, choices=PROP_TYPES)
        values = sub.get("values", _Sentinel)
        sub.done()
        if not sub.ok:
            return None
        if values is _Sentinel:
            sub.error("values", "is required")
            return None
        if not isinstance(values, list):
            values = [values]
        if ptype is None:
            ptype = property_type(values[0]) if values else "astring"
        try:
            return Property(ptype, tuple(check_property_value(ptype, x) for x in values))
        except ValueError as e:
            sub.error("values", str(e))
            return None
    values = v if isinstance(v, list) else [v]
    types = {property_type(x) for x in values}
    if None in types:
        r.error(name, f"expected a string, number, boolean or a list of them, got {_typename(v)}")
        return None
    if len(types) > 1:
        r.error(name, "mixes value types; use { type = ..., values = [...] }")
        return None
    return Property(types.pop() if types else "astring", tuple(values))


