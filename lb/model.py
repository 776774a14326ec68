"""The load-balancing declaration: frontends and the svcmgr instances behind them, validated so that
nothing can reach HAProxy's configuration unchecked.

A manifest (``[lb.frontends.NAME]``) and the node's configuration (the same table under
``[lb]``) declare frontends with the same keys::

    bind = "192.0.2.10:80"            # address:port ("[2001:db8::1]:80"); the virtual IP, or 0.0.0.0
    mode = "http"                     # http | tcp
    balance = "roundrobin"            # roundrobin | static-rr | leastconn | first | source | random
    idempotent = false                # true (http only): a request a dying backend dropped is retried
    backends = ["svc:/site/app:a",    # svcmgr instances; default: the declaring manifest's instances
                { fmri = "svc:/site/app:b", weight = 50 }]      # weight 0..256 (default 100)
    address = "lb/address"            # the property (group/name) of each backend holding its host:port
    drain_timeout = "30s"             # a planned stop waits at most this long for connections to end
    slowstart = "0s"                  # weight ramp once a backend is ready again
    check = "tcp"                     # HAProxy's own health checks, a backstop: none | tcp | http
    check_path = "/"                  # with check = "http"
    check_interval = "2s"             # and rise / fall: checks in a row to go up / down
    rise = 2
    fall = 2
    timeout_connect = "5s"
    timeout_client = "30s"
    timeout_server = "30s"

HAProxy's parser is line and token based (``#`` comments, quotes, backslashes,
``$VAR`` in quoted words, white space splits), so every value is checked by type,
range or strict pattern and kept in normal form: addresses through ``ipaddress``,
FMRIs through ``svcmgr.fmri``, names from a short alphabet. A backend's address
comes from its instance's property and is read with ``parse_address`` (an IP literal
or a DNS name, and a port). Importing this module registers the manifest section ``lb``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from svcmgr import fmri as fmri_mod
from svcmgr import hostport
from svcmgr.declared import Declaration, Syntax, Tables, weighted_fmris
from svcmgr.schema import FieldError, Reader, typename

__all__ = [
    "DEFAULTS", "TABLES", "Backend", "Declaration", "Frontend", "Server", "complete", "fields", "parse_address",
    "parse_declaration", "server_name",
]

#: Frontend names: a letter, then letters, digits, ``_``, ``.``, ``-``; at most 32 characters.
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}\Z")
#: ``group/name`` of a property.
PROP_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_-]{0,63})/([A-Za-z][A-Za-z0-9_-]{0,63})\Z")
#: A DNS name (RFC 1123 labels); HAProxy resolves it when it loads the configuration.
HOST_RE = re.compile(r"^(?=.{1,253}\Z)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                     r"(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z")
#: An HTTP check path: no white space, quotes, ``#``, ``$`` or backslash.
PATH_RE = re.compile(r"^/[A-Za-z0-9._~/%+,;=:@!*()-]{0,255}\Z")
MODES = ("http", "tcp")
BALANCES = ("roundrobin", "static-rr", "leastconn", "first", "source", "random")
CHECKS = ("none", "tcp", "http")
MAX_BACKENDS = 64
MAX_WEIGHT = 256
MAX_TIMEOUT = 86400.0  # HAProxy's own limit is about 24.8 days; a day is plenty

KEYS = ("bind", "mode", "balance", "idempotent", "backends", "address", "drain_timeout", "slowstart", "check",
        "check_path", "check_interval", "rise", "fall", "timeout_connect", "timeout_client", "timeout_server")
DEFAULTS: Mapping[str, Any] = {
    "mode": "http", "balance": "roundrobin", "idempotent": False, "address": ("lb", "address"),
    "drain_timeout": 30.0, "slowstart": 0.0, "check": "tcp", "check_path": "/", "check_interval": 2.0,
    "rise": 2, "fall": 2, "timeout_connect": 5.0, "timeout_client": 30.0, "timeout_server": 30.0,
}
#: Durations: (key, least, most) in seconds.
DURATIONS = (("drain_timeout", 0.0, 3600.0), ("slowstart", 0.0, 3600.0), ("check_interval", 0.1, 3600.0),
             ("timeout_connect", 0.001, MAX_TIMEOUT), ("timeout_client", 0.001, MAX_TIMEOUT),
             ("timeout_server", 0.001, MAX_TIMEOUT))

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Backend:
    """A backend as declared: the instance and its weight."""

    fmri: str
    weight: int = 100


@dataclass(frozen=True)
class Server:
    """A backend as HAProxy sees it: its server name and the address read from the instance's property."""

    name: str
    fmri: str
    host: str  # an IP address in normal form, or a DNS name
    port: int
    weight: int = 100

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Frontend:
    """One complete, validated frontend, every value in normal form."""

    name: str
    bind: Address
    port: int
    backends: tuple[Backend, ...]
    mode: str = "http"
    balance: str = "roundrobin"
    idempotent: bool = False
    address: tuple[str, str] = ("lb", "address")
    drain_timeout: float = 30.0
    slowstart: float = 0.0
    check: str = "tcp"
    check_path: str = "/"
    check_interval: float = 2.0
    rise: int = 2
    fall: int = 2
    timeout_connect: float = 5.0
    timeout_client: float = 30.0
    timeout_server: float = 30.0
    origin: tuple[str, ...] = ()
    servers: tuple[Server, ...] = ()  # filled in by lb.config.merge from the instances' properties

    @property
    def listen(self) -> str:
        return f"[{self.bind}]:{self.port}" if self.bind.version == 6 else f"{self.bind}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "bind": self.listen, "mode": self.mode, "balance": self.balance,
            "idempotent": self.idempotent, "address": "/".join(self.address),
            "backends": [{"fmri": b.fmri, "weight": b.weight} for b in self.backends],
            "drain_timeout": self.drain_timeout, "slowstart": self.slowstart, "check": self.check,
            "check_path": self.check_path, "check_interval": self.check_interval, "rise": self.rise,
            "fall": self.fall, "timeout_connect": self.timeout_connect, "timeout_client": self.timeout_client,
            "timeout_server": self.timeout_server, "origin": list(self.origin),
            "servers": [{"name": s.name, "fmri": s.fmri, "address": s.address, "weight": s.weight}
                        for s in self.servers],
        }


def server_name(fmri: str) -> str:
    """HAProxy's name for a backend instance: ``svc:/site/app:a`` -> ``site.app:a`` (a readable token;
    a long one is cut and made unique by a short hash)."""
    p = fmri_mod.parse(fmri)
    name = re.sub(r"[^A-Za-z0-9_.:-]", "_", f"{p.service.replace('/', '.')}:{p.instance}")
    if len(name) > 48:
        name = f"{name[:40]}~{hashlib.sha1(fmri.encode()).hexdigest()[:6]}".replace("~", "_")
    return name


# --------------------------------------------------------------------------- field checks


#: What HAProxy's parser reads as syntax (white space among it).
SYNTAX = Syntax("HAProxy", {"#": "'#'", '"': "a double quote", "'": "a quote", "\\": "a backslash", "$": "'$'"},
                space=True)


def _host_port(text: Any) -> tuple[str, int]:
    """A plain ``host:port`` text split; ValueError with a clear message."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string host:port, got {typename(text)}")
    if len(text) > 300:
        raise ValueError("is longer than 300 characters")
    bad = SYNTAX.refusal(text)
    if bad is not None:
        raise ValueError(bad)
    return hostport.split(text)


def parse_bind(text: Any) -> tuple[Address, int]:
    """A frontend's listen address: an IP literal (0.0.0.0 or :: for every address) and a port."""
    host, port = _host_port(text)
    try:
        a = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address (a frontend listens on an address, "
                         "not a name)") from None
    if a.is_multicast or (a.version == 6 and a.scope_id):  # type: ignore[union-attr]
        raise ValueError(f"{text!r}: a multicast or scoped address cannot be listened on")
    return a, port


def parse_address(text: Any) -> tuple[str, int]:
    """A backend's address as its instance's property gives it: (IP in normal form or DNS name, port)."""
    host, port = _host_port(text)
    try:
        a = ipaddress.ip_address(host)
    except ValueError:
        if not HOST_RE.match(host) or host.replace(".", "").isdigit():
            raise ValueError(f"{text!r}: {host!r} is neither an IP address nor a DNS name") from None
        return host.lower(), port
    if a.is_unspecified or a.is_multicast:
        raise ValueError(f"{text!r}: a backend cannot be the {'unspecified' if a.is_unspecified else 'multicast'} "
                         "address")
    if "%" in host:
        raise ValueError(f"{text!r}: scoped addresses (%zone) are not accepted")
    return str(a), port


def _backends(r: Reader) -> tuple[Backend, ...] | None:
    got = weighted_fmris(r, "backends", what="backends per frontend", most=MAX_BACKENDS, weight=(100, 0, MAX_WEIGHT),
                         refuse=SYNTAX.refused)
    return None if got is None else tuple(Backend(f, w) for f, w in got)


def fields(r: Reader) -> dict[str, Any]:
    """The fields a table sets, each validated on its own and in normal form. Unknown keys are errors."""
    out: dict[str, Any] = {}
    if r.has("bind"):
        try:
            out["bind"] = parse_bind(r.get("bind"))
        except ValueError as e:
            r.error("bind", str(e))
    if r.has("mode"):
        out["mode"] = r.str("mode", choices=MODES)
    if r.has("balance"):
        out["balance"] = r.str("balance", choices=BALANCES)
    if r.has("idempotent"):
        out["idempotent"] = r.bool("idempotent")
    if r.has("backends"):
        out["backends"] = _backends(r)
    if r.has("address"):
        text = SYNTAX.field(r, "address", PROP_RE, "property (group/name, e.g. lb/address)")
        if text:
            g, _, n = text.partition("/")
            out["address"] = (g, n)
    for key, lo, hi in DURATIONS:
        if r.has(key):
            d = r.duration(key)
            if d is not None and not lo <= d <= hi:
                r.error(key, f"{d:g}s is out of range {lo:g}s..{hi:g}s")
            elif d is not None:
                out[key] = float(d)
    if r.has("check"):
        out["check"] = r.str("check", choices=CHECKS)
    if r.has("check_path"):
        out["check_path"] = SYNTAX.field(r, "check_path", PATH_RE, "HTTP path (/..., no white space, quotes, "
                                                                   "'#', '$' or backslash)")
    for key in ("rise", "fall"):
        if r.has(key):
            out[key] = r.int(key, lo=1, hi=100)
    r.done()
    return {k: v for k, v in out.items() if v is not None}


def complete(name: str, values: Mapping[str, Any], errors: list[FieldError], source: str, path: str, *,
             required: tuple[str, ...] = ("bind", "backends"), origin: tuple[str, ...] = (),
             final: bool = True) -> Frontend | None:
    """Check one frontend as a whole (required keys, rules between keys); None on error.

    Not ``final`` (a manifest's or the node's own table, before the merge), a rule between
    keys applies only when the table sets both."""
    n0 = len(errors)

    def err(key: str, message: str) -> None:
        errors.append(FieldError(source, f"{path}.{key}" if key else path, message))

    for k in required:
        if k not in values:
            err(k, "is required")
    v = {**DEFAULTS, **values}
    both = final or {"mode", "idempotent"} <= values.keys()
    if v["idempotent"] and v["mode"] != "http" and both:
        err("idempotent", "retrying a request needs mode = \"http\" (HAProxy replays HTTP requests only)")
    if v["check"] == "http" and v["mode"] != "http" and (final or {"mode", "check"} <= values.keys()):
        err("check", "an HTTP check needs mode = \"http\"")
    if len(errors) > n0 or any(k not in v for k in ("bind", "backends")):
        return None
    bind, port = v["bind"]
    return Frontend(
        name=name, bind=bind, port=port, backends=tuple(v["backends"]), mode=v["mode"], balance=v["balance"],
        idempotent=v["idempotent"], address=tuple(v["address"]), drain_timeout=v["drain_timeout"],
        slowstart=v["slowstart"], check=v["check"], check_path=v["check_path"], check_interval=v["check_interval"],
        rise=v["rise"], fall=v["fall"], timeout_connect=v["timeout_connect"], timeout_client=v["timeout_client"],
        timeout_server=v["timeout_server"], origin=origin)


# --------------------------------------------------------------------------- the manifest section


def _frontend_name(r: Reader, name: str) -> str | None:
    return SYNTAX.checked(r, name, name, NAME_RE, "frontend name (a letter, then letters, digits, '_', '.', '-'; "
                                         "at most 32 characters)")


#: ``[lb.frontends.NAME]``, in a manifest and in the node's configuration.
TABLES = Tables("lb", "frontends", "frontend", _frontend_name, fields, complete, required=("bind",))
parse_declaration = TABLES.parse_declaration

TABLES.register()
