"""The manifest vocabulary: typed, immutable specs of services and instances, and an instance's effective
configuration (``resolve_instance``).

``svcmgr.manifest`` reads a TOML manifest into these, ``svcmgr.loader`` a file of
either format; the engine, the restarter and the components read them. A leaf
beside ``svcmgr.security`` (a method's privileges and limits) and ``svcmgr.fmri``.
"""

from __future__ import annotations

import shlex
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from svcmgr import fmri as fmri_mod
from svcmgr.proptypes import PROP_TYPES, decimal_text, encoding_error
from svcmgr.schema import typename
from svcmgr.security import NO_RESOURCES, NO_SECURITY, Resources, Security, merge

__all__ = [
    "DURATIONS", "GROUPINGS", "METHODS", "NO_AUTHORIZATIONS", "NO_CONTEXT", "PROP_TYPES", "RESTART_ON",
    "Authorizations", "Context", "Dependency", "Exec", "Grant", "Health", "InstanceConfig", "InstanceOverride",
    "LogPattern", "LogPolicy", "Method", "Properties", "Property", "Readiness", "RestartPolicy", "ServiceSpec",
    "check_property_value", "parse_exec", "parse_signal", "property_type", "resolve_instance", "with_source",
]

GROUPINGS = ("require_all", "require_any", "optional_all", "exclude_all")
RESTART_ON = ("none", "error", "restart", "refresh")
DURATIONS = ("contract", "transient", "child")
METHODS = ("start", "stop", "refresh")
READINESS_KINDS = ("exit", "spawn", "tcp", "http", "command", "notify")
HEALTH_KINDS = ("tcp", "http", "command")

DEFAULT_TIMEOUT = 30.0
DEFAULT_RESTART_LIMIT = 5
#: illumos keeps the last 5 start times and calls it "restarting too quickly" when
#: their average gap is under 600 s: five failures within 4 x 600 s.
DEFAULT_RESTART_PERIOD = 2400.0
DEFAULT_LOG_SIZE = 10 * 1024 * 1024
DEFAULT_LOG_KEEP = 3


@dataclass(frozen=True, slots=True)
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
            return shlex.join(self.argv)
        d = self.declared()
        return d if isinstance(d, str) else " ".join(d)


@dataclass(frozen=True, slots=True)
class Context:
    """Who a method runs as, where, with what environment, privileges and limits."""

    user: str | None = None
    group: str | None = None
    working_directory: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    security: Security = NO_SECURITY

    def over(self, under: Context) -> Context:
        """This context's values where set, else ``under``'s; environments and security merged."""
        security = under.security if self.security is NO_SECURITY else merge(self.security, under.security)
        return Context(self.user or under.user, self.group or under.group,
                       self.working_directory or under.working_directory,
                       {**under.environment, **self.environment}, security)


@dataclass(frozen=True, slots=True)
class Method:
    exec: Exec
    timeout: float | None = DEFAULT_TIMEOUT  # None: no timeout
    context: Context = Context()  # the method's own, over the instance's


@dataclass(frozen=True, slots=True)
class Dependency:
    name: str
    grouping: str = "require_all"
    restart_on: str = "none"
    fmris: tuple[str, ...] = ()
    type: str = "service"  # service | path


@dataclass(frozen=True, slots=True)
class Readiness:
    kind: str = "exit"
    target: str | tuple[str, ...] | None = None
    timeout: float | None = None  # None: the start method's timeout


@dataclass(frozen=True, slots=True)
class Health:
    kind: str
    target: str | tuple[str, ...]
    interval: float = 10.0
    timeout: float = 5.0
    failures: int = 3
    action: str = "restart"  # restart | degrade


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    limit: int = DEFAULT_RESTART_LIMIT
    period: float = DEFAULT_RESTART_PERIOD
    ignore_error: tuple[str, ...] = ()
    timeout_retry: bool = True


@dataclass(frozen=True, slots=True)
class LogPattern:
    regex: str
    cls: str


@dataclass(frozen=True, slots=True)
class LogPolicy:
    max_size: int = DEFAULT_LOG_SIZE
    keep: int = DEFAULT_LOG_KEEP
    patterns: tuple[LogPattern, ...] = ()


@dataclass(frozen=True, slots=True)
class Grant:
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    names: tuple[str, ...] = ()  # SMF authorization names, kept for display

    def __bool__(self) -> bool:
        return bool(self.users or self.groups)


@dataclass(frozen=True, slots=True)
class Authorizations:
    """Who besides root may act on a service (see ``svcmgr.authz``, which decides)."""

    action: Grant = Grant()
    value: Grant = Grant()
    read: Grant = Grant()  # protected values: method environments, groups with a read_authorization


@dataclass(frozen=True, slots=True)
class Property:
    type: str
    values: tuple[Any, ...]


Properties = Mapping[str, Mapping[str, Property]]

# What most manifests leave unset, made once and shared by every spec that does (specs are immutable, and so
# are the mappings they hold: nothing changes one in place). A boot keeps a spec per service, and these were
# a few hundred bytes of each.
#: A context that sets nothing (``Context()``).
NO_CONTEXT = Context()
#: No one but root (``Authorizations()``).
NO_AUTHORIZATIONS = Authorizations()
_READY_AT_SPAWN = Readiness("spawn")
_READY_AT_EXIT = Readiness("exit")


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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
        return self.context if m is None else m.context.over(self.context)


# ------------------------------------------------------------------ values


def parse_exec(value: Any) -> Exec:
    """An ``exec`` value: argv list, shell string, ``:true`` or ``:kill [-SIG]``. Raises ValueError."""
    if isinstance(value, list):
        if not value or not all(isinstance(x, str) for x in value):
            raise ValueError("an argv list must be a non-empty list of strings")
        if any("\x00" in x for x in value):
            raise ValueError("contains a NUL character")
        return Exec("argv", argv=tuple(value))
    if not isinstance(value, str):
        raise ValueError(f"expected an argv list or a command string, got {typename(value)}")
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
    """A property value coerced to its type, within SMF's encoding of the type (``proptypes.encoding_error``:
    what ``svccfg setprop`` and a manifest's import both refuse). Raises ValueError."""
    typed = _coerce(ptype, v)
    why = encoding_error(ptype, typed)
    if why is not None:
        raise ValueError(why)
    return typed


def _coerce(ptype: str, v: Any) -> Any:
    """A property value as its type's Python kind. Raises ValueError."""
    if ptype == "boolean":
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"
        raise ValueError(f"expected a boolean, got {v!r}")
    if ptype in ("integer", "count"):
        # as strtoll reads: digits only (no 1_000); a float (even 2.0) or a bool (an int in Python) is no integer
        if not isinstance(v, int | str) or isinstance(v, bool) or (isinstance(v, str) and not decimal_text(v)):
            raise ValueError(f"expected an integer, got {v!r}")
        n = int(v)
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
        except OverflowError:  # an integer (TOML's, JSON's) of more than 308 digits
            raise ValueError(f"expected a number, got an integer beyond a float ({len(str(v))} digits)") from None
    if not isinstance(v, str | int | float) or isinstance(v, bool):
        raise ValueError(f"expected a string, got {typename(v)}")
    s = str(v)
    if "\x00" in s or len(s) > 65536:
        raise ValueError("string is too long or holds a NUL")
    return s



# ---------------------------------------------------------------------- resolving


def resolve_instance(spec: ServiceSpec, name: str) -> InstanceConfig:
    """The effective configuration of ``spec``'s instance ``name``."""
    o = spec.instances.get(name) or InstanceOverride(name)
    ctx = spec.context
    if o.context is not None:
        ctx = o.context.over(ctx)
    methods: Mapping[str, Method] = spec.methods  # the service's own when the instance adds none (shared)
    if o.methods:
        methods = {**spec.methods, **o.methods}
    duration = o.duration or spec.duration
    readiness = o.readiness or spec.readiness
    if readiness is None:
        readiness = _READY_AT_SPAWN if duration == "child" else _READY_AT_EXIT
    props: Properties = spec.properties  # likewise
    if o.properties:
        merged: dict[str, dict[str, Property]] = {pg: dict(p) for pg, p in spec.properties.items()}
        for pg, p in o.properties.items():
            merged.setdefault(pg, {}).update(p)
        props = merged
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
