"""Service manifests: validation of the TOML vocabulary into typed, immutable specs.

A manifest describes one service and its instances with keys that mirror SMF's
XML vocabulary (docs/manifests.md). Every field is checked; an error names the file,
the field and what is wrong, and all errors of a file are reported together.
The same validator serves TOML files, SMF XML (translated to the same shape)
and specs stored in the repository (``ServiceSpec.to_dict`` round-trips).
"""

from __future__ import annotations

import os
import re
import signal
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from svcmgr import fmri as fmri_mod
from svcmgr.events import ereport_owner
from svcmgr.schema import MISSING as _Sentinel
from svcmgr.schema import FieldError, FieldErrors
from svcmgr.schema import Reader as _Reader
from svcmgr.schema import typename as _typename
from svcmgr.security import KEYS as SECURITY_KEYS
from svcmgr.security import NO_RESOURCES, NO_SECURITY, Resources, Security, merge, read_resources, read_security
from svcmgr.security import check as check_security

__all__ = [
    "DURATIONS", "GROUPINGS", "RESTART_ON", "Dependency", "Exec", "Health", "InstanceConfig",
    "ManifestError", "ManifestErrors", "Method", "Readiness", "ServiceSpec", "load_file",
    "parse_exec", "parse_service", "resolve_instance",
]

GROUPINGS = ("require_all", "require_any", "optional_all", "exclude_all")
RESTART_ON = ("none", "error", "restart", "refresh")
DURATIONS = ("contract", "transient", "child")
METHODS = ("start", "stop", "refresh")
READINESS_KINDS = ("exit", "spawn", "tcp", "http", "command", "notify")
HEALTH_KINDS = ("tcp", "http", "command")
PROP_TYPES = ("astring", "ustring", "integer", "count", "boolean", "float", "time", "fmri",
              "host", "hostname", "net_address", "net_address_v4", "net_address_v6", "uri", "opaque")

DEFAULT_TIMEOUT = 30.0
DEFAULT_RESTART_LIMIT = 5
#: illumos keeps the last 5 start times and calls it "restarting too quickly" when
#: their average gap is under 600 s: five failures within 4 x 600 s.
DEFAULT_RESTART_PERIOD = 2400.0
DEFAULT_LOG_SIZE = 10 * 1024 * 1024
DEFAULT_LOG_KEEP = 3

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*\Z")
_PG_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.,+-]*\Z")
_USER_RE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_.-]*\$?|\d+)\Z")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_HOSTPORT_RE = re.compile(r"^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})\Z")
_TOKEN_RE = re.compile(r"%(\{[A-Za-z0-9_.,+-]+/[A-Za-z0-9_.,+-]+\}|[rmsif%])")


ManifestError = FieldError
ManifestErrors = FieldErrors


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Exec:
    """A method's command: an argv list, a shell string, ``:true`` or ``:kill [-SIG]``."""

    kind: str  # "argv" | "shell" | "true" | "kill"
    argv: tuple[str, ...] = ()
    shell: str = ""
    signal: int = signal.SIGTERM

    def declared(self) -> str | list[str]:
        if self.kind == "argv":
            return list(self.argv)
        if self.kind == "shell":
            return self.shell
        if self.kind == "true":
            return ":true"
        return ":kill" if self.signal == signal.SIGTERM else f":kill -{signal.Signals(self.signal).name}"

    def display(self) -> str:
        if self.kind == "argv":
            import shlex

            return shlex.join(self.argv)
        d = self.declared()
        return d if isinstance(d, str) else " ".join(d)


@dataclass(frozen=True)
class Method:
    exec: Exec
    timeout: float | None = DEFAULT_TIMEOUT  # None: no timeout
    user: str | None = None
    group: str | None = None
    working_directory: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    security: Security = NO_SECURITY


@dataclass(frozen=True)
class Dependency:
    name: str
    grouping: str = "require_all"
    restart_on: str = "none"
    fmris: tuple[str, ...] = ()
    type: str = "service"  # service | path


@dataclass(frozen=True)
class Readiness:
    kind: str = "exit"
    target: str | tuple[str, ...] | None = None
    timeout: float | None = None  # None: the start method's timeout


@dataclass(frozen=True)
class Health:
    kind: str
    target: str | tuple[str, ...]
    interval: float = 10.0
    timeout: float = 5.0
    failures: int = 3
    action: str = "restart"  # restart | degrade


@dataclass(frozen=True)
class RestartPolicy:
    limit: int = DEFAULT_RESTART_LIMIT
    period: float = DEFAULT_RESTART_PERIOD
    ignore_error: tuple[str, ...] = ()
    timeout_retry: bool = True


@dataclass(frozen=True)
class LogPattern:
    regex: str
    cls: str


@dataclass(frozen=True)
class LogPolicy:
    max_size: int = DEFAULT_LOG_SIZE
    keep: int = DEFAULT_LOG_KEEP
    patterns: tuple[LogPattern, ...] = ()


@dataclass(frozen=True)
class Grant:
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    names: tuple[str, ...] = ()  # SMF authorization names, kept for display

    def __bool__(self) -> bool:
        return bool(self.users or self.groups)


@dataclass(frozen=True)
class Authorizations:
    """Who besides root may act on a service (see ``svcmgr.authz``, which decides)."""

    action: Grant = Grant()
    value: Grant = Grant()
    read: Grant = Grant()  # protected values: method environments, groups with a read_authorization


@dataclass(frozen=True)
class Property:
    type: str
    values: tuple[Any, ...]


Properties = Mapping[str, Mapping[str, Property]]


@dataclass(frozen=True)
class Context:
    user: str | None = None
    group: str | None = None
    working_directory: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    security: Security = NO_SECURITY


@dataclass(frozen=True)
class InstanceOverride:
    """What an ``[instances.NAME]`` table sets; None means "as the service says"."""

    name: str
    enabled: bool | None = None
    description: str | None = None
    duration: str | None = None
    context: Context | None = None
    methods: Mapping[str, Method] = field(default_factory=dict)
    dependencies: tuple[Dependency, ...] = ()
    readiness: Readiness | None = None
    health: Health | None = None
    restart: RestartPolicy | None = None
    log: LogPolicy | None = None
    properties: Properties = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)
    resources: Resources | None = None


@dataclass(frozen=True)
class ServiceSpec:
    """A validated service: everything the manifest declared, in normal form."""

    fmri: fmri_mod.FMRI
    description: str = ""
    type: str = "service"  # service | milestone | restarter (SMF's; run like a service)
    duration: str = "contract"
    enabled: bool = True
    context: Context = Context()
    methods: Mapping[str, Method] = field(default_factory=dict)
    dependencies: tuple[Dependency, ...] = ()
    dependents: tuple[Dependency, ...] = ()
    readiness: Readiness | None = None
    health: Health | None = None
    restart: RestartPolicy = RestartPolicy()
    log: LogPolicy = LogPolicy()
    authorizations: Authorizations = Authorizations()
    properties: Properties = field(default_factory=dict)
    resources: Resources = NO_RESOURCES
    instances: Mapping[str, InstanceOverride] = field(default_factory=dict)
    template: Mapping[str, str] = field(default_factory=dict)
    stability: str = ""
    extensions: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)
    #: What a loader kept but does not act on (e.g. SMF privileges); reported once at import.
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The manifest in normal form; ``parse_service`` of it gives this spec back."""
        return dict(self.raw)

    def instance_fmris(self) -> list[fmri_mod.FMRI]:
        return [self.fmri.with_instance(n) for n in self.instances]


@dataclass(frozen=True)
class InstanceConfig:
    """The effective configuration of one instance: service values with the instance's on top."""

    fmri: fmri_mod.FMRI
    spec: ServiceSpec
    enabled: bool
    description: str
    type: str
    duration: str
    context: Context
    methods: Mapping[str, Method]
    dependencies: tuple[Dependency, ...]
    readiness: Readiness
    health: Health | None
    restart: RestartPolicy
    log: LogPolicy
    authorizations: Authorizations
    properties: Properties
    resources: Resources = NO_RESOURCES

    def method(self, name: str) -> Method | None:
        return self.methods.get(name)

    def method_context(self, name: str) -> Context:
        """Context of a method: the method's own values over the instance's."""
        m = self.methods.get(name)
        c = self.context
        if m is None:
            return c
        env = dict(c.environment)
        env.update(m.environment)
        return Context(
            user=m.user or c.user,
            group=m.group or c.group,
            working_directory=m.working_directory or c.working_directory,
            environment=env,
            security=merge(m.security, c.security),
        )


# ----------------------------------------------------------------------- sections


def parse_exec(value: Any) -> Exec:
    """An ``exec`` value: argv list, shell string, ``:true`` or ``:kill [-SIG]``. Raises ValueError."""
    if isinstance(value, list):
        if not value or not all(isinstance(x, str) for x in value):
            raise ValueError("an argv list must be a non-empty list of strings")
        if any("\x00" in x for x in value):
            raise ValueError("contains a NUL character")
        return Exec("argv", argv=tuple(value))
    if not isinstance(value, str):
        raise ValueError(f"expected an argv list or a command string, got {_typename(value)}")
    text = value.strip()
    if not text:
        raise ValueError("is empty")
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    if text.startswith(":"):
        word, _, rest = text.partition(" ")
        rest = rest.strip()
        if word == ":true" and not rest:
            return Exec("true")
        if word == ":kill":
            if not rest:
                return Exec("kill", signal=signal.SIGTERM)
            if not rest.startswith("-"):
                raise ValueError(f"{text!r}: expected ':kill' or ':kill -SIGNAL'")
            return Exec("kill", signal=parse_signal(rest[1:]))
        raise ValueError(f"unknown method token {word!r} (known: :true, :kill)")
    return Exec("shell", shell=text)


def parse_signal(name: str) -> int:
    n = name.strip().upper()
    if n.isdigit():
        num = int(n)
        try:
            signal.Signals(num)
        except ValueError:
            raise ValueError(f"unknown signal {name!r}") from None
        return num
    if not n.startswith("SIG"):
        n = "SIG" + n
    try:
        return int(signal.Signals[n])
    except KeyError:
        raise ValueError(f"unknown signal {name!r}") from None


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
    ctx = _context(r, base_dir)
    r.done()
    if ex is None:
        return None
    return Method(ex, timeout, ctx.user, ctx.group, ctx.working_directory, ctx.environment, ctx.security)


def _context(r: _Reader, base_dir: str | None) -> Context:
    user = r.str("user", pattern=_USER_RE)
    group = r.str("group", pattern=_USER_RE)
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


def _methods(r: _Reader | None, base_dir: str | None) -> dict[str, Method]:
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


def _dependency(r: _Reader, kind: str) -> Dependency | None:
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


def _readiness(r: _Reader | None) -> Readiness | None:
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


def _health(r: _Reader | None) -> Health | None:
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


def _restart(r: _Reader | None, base: RestartPolicy) -> RestartPolicy | None:
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


def _log(r: _Reader | None, base: LogPolicy) -> LogPolicy | None:
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
    users = r.strlist("users", pattern=_USER_RE)
    groups = r.strlist("groups", pattern=_USER_RE)
    names = r.strlist("names")
    r.done()
    return Grant(tuple(users), tuple(groups), tuple(names))


def _authorizations(r: _Reader | None) -> Authorizations:
    if r is None:
        return Authorizations()
    a = _grant(r.table("action"))
    v = _grant(r.table("value"))
    rd = _grant(r.table("read"))
    r.done()
    return Authorizations(a, v, rd)


def property_type(v: Any) -> str | None:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "astring"
    return None


def check_property_value(ptype: str, v: Any) -> Any:
    """A property value coerced to its type. Raises ValueError."""
    if ptype == "boolean":
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"
        raise ValueError(f"expected a boolean, got {v!r}")
    if ptype in ("integer", "count"):
        if isinstance(v, bool):
            raise ValueError(f"expected an integer, got {v!r}")
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise ValueError(f"expected an integer, got {v!r}") from None
        if ptype == "count" and n < 0:
            raise ValueError(f"a count cannot be negative: {v!r}")
        return n
    if ptype == "float":
        if isinstance(v, bool):
            raise ValueError(f"expected a number, got {v!r}")
        try:
            return float(v)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {v!r}") from None
    if not isinstance(v, str | int | float) or isinstance(v, bool):
        raise ValueError(f"expected a string, got {_typename(v)}")
    s = str(v)
    if "\x00" in s or len(s) > 65536:
        raise ValueError("string is too long or holds a NUL")
    return s


def _properties(r: _Reader | None) -> dict[str, dict[str, Property]]:
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


def _instance(r: _Reader, name: str, base_dir: str | None, spec_restart: RestartPolicy,
              spec_log: LogPolicy) -> InstanceOverride | None:
    enabled = r.bool("enabled")
    description = r.str("description")
    duration = r.str("duration", None, choices=DURATIONS)
    ctx = None
    if any(r.has(k) for k in ("user", "group", "working_directory", "environment", *SECURITY_KEYS)):
        ctx = _context(r, base_dir)
    methods = _methods(r.table("methods"), base_dir)
    deps = tuple(d for d in (_dependency(t, "dependency") for t in r.tables("dependencies")) if d)
    readiness = _readiness(r.table("readiness"))
    health = _health(r.table("health"))
    restart = _restart(r.table("restart"), spec_restart)
    log = _log(r.table("log"), spec_log)
    props = _properties(r.table("properties"))
    resources = read_resources(r.table("resources"))
    r.done()
    if not r.ok:
        return None
    return InstanceOverride(name, enabled, description, duration, ctx, methods, deps, readiness,
                            health, restart, log, props, dict(r.data), resources)


#: Sections a manifest may carry for other packages: name -> validator(reader) -> value.
EXTENSIONS: dict[str, Callable[[Any, str, str], Any]] = {}
_EXTENSION_MODULES = {"vrrp": "vrrp.model", "lb": "lb.model", "smf": "svcmgr.smfxml"}


def _extension(name: str) -> Callable[[Any, str, str], Any] | None:
    if name not in EXTENSIONS and name in _EXTENSION_MODULES:
        import importlib

        try:
            importlib.import_module(_EXTENSION_MODULES[name])
        except ImportError:
            return None
    return EXTENSIONS.get(name)


def parse_service(data: Any, source: str = "", *, base_dir: str | None = None) -> ServiceSpec:
    """Validate one manifest (a TOML-shaped mapping). Raises ManifestErrors listing every problem."""
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
    ctx = _context(r, base_dir)
    methods = _methods(r.table("methods"), base_dir)
    deps = tuple(d for d in (_dependency(t, "dependency") for t in r.tables("dependencies")) if d)
    dependents = tuple(d for d in (_dependency(t, "dependent") for t in r.tables("dependents")) if d)
    readiness = _readiness(r.table("readiness"))
    health = _health(r.table("health"))
    restart = _restart(r.table("restart"), RestartPolicy()) or RestartPolicy()
    log = _log(r.table("log"), LogPolicy()) or LogPolicy()
    auth = _authorizations(r.table("authorizations"))
    props = _properties(r.table("properties"))
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
    instances: dict[str, InstanceOverride] = {}
    it = r.table("instances")
    if it is not None:
        for iname in list(it.data):
            sub = it.table(iname)
            if not fmri_mod._INSTANCE_RE.match(iname):
                it.error(iname, "is not a valid instance name")
                continue
            if sub is None:
                continue
            o = _instance(sub, iname, base_dir, restart, log)
            if o is not None:
                instances[iname] = o
        if not it.data:
            it.error("", "declares no instance")
    else:
        instances["default"] = InstanceOverride("default")
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
        properties=props, resources=resources, instances=instances, template=template, stability=stability,
        extensions=extensions, source=source, raw=_normal_form(data, base_dir),
    )
    warnings = _check_contexts(spec, errors)
    if errors:
        raise ManifestErrors(errors)
    return replace(spec, warnings=tuple(warnings)) if warnings else spec


def _check_contexts(spec: ServiceSpec, errors: list[ManifestError]) -> list[str]:
    """Each method's merged context, checked as it will run (privileges within limit_privileges)."""
    warnings: list[str] = []
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


def _normal_form(data: dict[str, Any], base_dir: str | None) -> dict[str, Any]:
    """The manifest as stored: relative working directories made absolute."""
    import copy

    out = copy.deepcopy(data)

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


def load_file(path: str) -> list[ServiceSpec]:
    """Read and validate a manifest file (TOML, or SMF XML by content). Raises ManifestErrors."""
    path = os.path.abspath(path)
    try:
        with open(path, "rb") as f:
            blob = f.read(4 * 1024 * 1024 + 1)
    except OSError as e:
        raise ManifestErrors([ManifestError(path, "", f"cannot read: {e.strerror}")]) from None
    return load_bytes(blob, path)


def load_bytes(blob: bytes, source: str) -> list[ServiceSpec]:
    if len(blob) > 4 * 1024 * 1024:
        raise ManifestErrors([ManifestError(source, "", "file is larger than 4 MiB")])
    base_dir = os.path.dirname(os.path.abspath(source)) if source else None
    head = blob.removeprefix(b"\xef\xbb\xbf").lstrip()[:64]
    if head.startswith(b"<"):  # TOML cannot start with "<": XML, even when a comment comes first
        try:
            from svcmgr import smfxml
        except ImportError:
            raise ManifestErrors([ManifestError(source, "", "SMF XML manifests are not supported "
                                                "by this build")]) from None
        return smfxml.load_bytes(blob, source)
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ManifestErrors([ManifestError(source, "", f"not UTF-8 text: {e}")]) from None
    try:
        data = tomllib.loads(text)
        return [parse_service(data, source, base_dir=base_dir)]
    except tomllib.TOMLDecodeError as e:
        raise ManifestErrors([ManifestError(source, "", f"TOML syntax error: {e}")]) from None
    except RecursionError:
        raise ManifestErrors([ManifestError(source, "", "arrays or tables nest too deeply")]) from None


# ---------------------------------------------------------------------- resolving


def resolve_instance(spec: ServiceSpec, name: str) -> InstanceConfig:
    """The effective configuration of ``spec``'s instance ``name``."""
    o = spec.instances.get(name) or InstanceOverride(name)
    ctx = spec.context
    if o.context is not None:
        env = dict(ctx.environment)
        env.update(o.context.environment)
        ctx = Context(o.context.user or ctx.user, o.context.group or ctx.group,
                      o.context.working_directory or ctx.working_directory, env,
                      merge(o.context.security, ctx.security))
    methods = dict(spec.methods)
    methods.update(o.methods)
    duration = o.duration or spec.duration
    readiness = o.readiness or spec.readiness
    if readiness is None:
        readiness = Readiness("spawn" if duration == "child" else "exit")
    props: dict[str, dict[str, Property]] = {pg: dict(p) for pg, p in spec.properties.items()}
    for pg, p in o.properties.items():
        props.setdefault(pg, {}).update(p)
    return InstanceConfig(
        fmri=spec.fmri.with_instance(name),
        spec=spec,
        enabled=o.enabled if o.enabled is not None else spec.enabled,
        description=o.description or spec.description,
        type=spec.type,
        duration=duration,
        context=ctx,
        methods=methods,
        dependencies=spec.dependencies + o.dependencies,
        readiness=readiness,
        health=o.health or spec.health,
        restart=o.restart or spec.restart,
        log=o.log or spec.log,
        authorizations=spec.authorizations,
        properties=props,
        resources=_resources(o.resources, spec.resources),
    )


def _resources(over: Resources | None, under: Resources) -> Resources:
    if over is None:
        return under
    return Resources(*(a if a is not None else b for a, b in ((over.memory, under.memory), (over.cpu, under.cpu),
                                                            (over.tasks, under.tasks))))


def with_source(spec: ServiceSpec, source: str) -> ServiceSpec:
    return replace(spec, source=source)
