"""The VRRP declaration: what a virtual IP is, validated so that nothing can reach keepalived unchecked.

A manifest (``[vrrp.instances.NAME]``) and the node's configuration (the same
table under ``[vrrp]``) declare VRRP instances with the same keys::

    interface = "eth0"                  # strict name pattern
    router_id = 51                      # 1-255
    addresses = ["192.0.2.10/24"]       # with prefix; one family per instance
    version = 3                         # 2 or 3 (default 3; IPv6 needs 3)
    advert_interval = "1s"              # v2: whole seconds 1-255; v3: 10ms steps up to 40.95s
    priority = 100                      # 1-254
    preempt = true                      # false: nopreempt
    preempt_delay = "0s"                # 0-1000s, only with preempt
    unicast_src = "10.0.0.1"            # with unicast_peers; absent: multicast
    unicast_peers = ["10.0.0.2"]
    follows = ["svc:/site/web:default", # weight 0: the instance goes to FAULT when it leaves online
               { fmri = "svc:/site/db:default", weight = -50 }]   # -254..0: priority lowered

Every value is checked by type, range or pattern, and converted to a normal
form (addresses through ``ipaddress``, FMRIs through ``svcmgr.fmri``). Names are
refused outright when they hold a character keepalived's parser gives a meaning
to (newline, braces, quotes, ``#``, ``!``, ``$``, ``@``, white space, ``\\``): a
manifest cannot inject a directive. ``fields()`` validates a table field by field
(a node may set only ``priority``); ``complete()`` checks one merged instance as a
whole. Importing this module registers the manifest section ``vrrp``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from svcmgr import fmri as fmri_mod
from svcmgr.declared import Declaration, Syntax, Tables, weighted_fmris
from svcmgr.schema import FieldError, Reader, typename
from svcmgr.units import format_duration, parse_duration

__all__ = [
    "DEFAULTS", "TABLES", "Declaration", "Follow", "VrrpInstance", "complete", "fields", "parse_declaration",
    "refuse_specials", "track_name",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

#: Instance names: a letter, then letters, digits, ``_``, ``.``, ``-``; at most 32 characters.
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}\Z")
#: Linux interface names: at most 15 characters (IFNAMSIZ - 1), no ``/`` or ``:``.
IFACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}\Z")
#: Characters keepalived's parser reads as syntax; named in the error when a name holds one.
SPECIALS = {"\n": "a newline", "\r": "a carriage return", "{": "'{'", "}": "'}'", '"': "a double quote",
            "'": "a quote", "#": "'#'", "!": "'!'", "$": "'$'", "@": "'@'", "\\": "a backslash",
            " ": "a space", "\t": "a tab", "\x00": "a NUL"}

KEYS = ("interface", "router_id", "addresses", "version", "advert_interval", "priority", "preempt",
        "preempt_delay", "unicast_src", "unicast_peers", "follows")
DEFAULTS: Mapping[str, Any] = {"version": 3, "advert_interval": 1.0, "priority": 100, "preempt": True,
                               "preempt_delay": 0.0, "unicast_src": None, "unicast_peers": ()}
MAX_ADDRESSES = 20
MAX_PEERS = 32
MAX_FOLLOWS = 32
V3_MAX_INTERVAL = 40.95  # 12 bits of centiseconds
V2_MAX_INTERVAL = 255


@dataclass(frozen=True)
class Follow:
    """A service whose health the address follows: its FMRI and the weight it carries."""

    fmri: str
    weight: int = 0  # 0: FAULT while unhealthy; negative: priority lowered by -weight


@dataclass(frozen=True)
class VrrpInstance:
    """One complete, validated VRRP instance, every value in normal form."""

    name: str
    interface: str
    router_id: int
    addresses: tuple[Interface, ...]
    version: int = 3
    advert_interval: float = 1.0
    priority: int = 100
    preempt: bool = True
    preempt_delay: float = 0.0
    unicast_src: Address | None = None
    unicast_peers: tuple[Address, ...] = ()
    follows: tuple[Follow, ...] = ()
    origin: tuple[str, ...] = ()  # where the values came from (manifest, node configuration)

    @property
    def family(self) -> str:
        return "inet6" if self.addresses[0].version == 6 else "inet"

    @property
    def mode(self) -> str:
        return "unicast" if self.unicast_peers else "multicast"

    def down_interval(self) -> float:
        """The master down interval of a backup with this priority: 3 adverts plus the skew time."""
        return 3 * self.advert_interval + (256 - self.priority) / 256 * self.advert_interval

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "interface": self.interface, "router_id": self.router_id,
            "addresses": [str(a) for a in self.addresses], "family": self.family, "version": self.version,
            "advert_interval": self.advert_interval, "priority": self.priority, "preempt": self.preempt,
            "preempt_delay": self.preempt_delay, "mode": self.mode,
            "unicast_src": str(self.unicast_src) if self.unicast_src else None,
            "unicast_peers": [str(p) for p in self.unicast_peers],
            "follows": [{"fmri": f.fmri, "weight": f.weight} for f in self.follows],
            "origin": list(self.origin),
        }


def track_name(fmri: str) -> str:
    """The keepalived ``track_file`` name of a followed service: readable, and unique by a short hash."""
    p = fmri_mod.parse(fmri)
    base = re.sub(r"[^A-Za-z0-9]+", "_", f"{p.service}_{p.instance}").strip("_")[:40]
    return f"svc_{base}_{hashlib.sha1(fmri.encode()).hexdigest()[:6]}"


# --------------------------------------------------------------------------- field checks


#: What keepalived's parser reads as syntax.
SYNTAX = Syntax("keepalived", SPECIALS)
refuse_specials = SYNTAX.refused


def _ip(text: Any, *, prefix: bool) -> Interface | Address:
    """An address (or an address with prefix) in normal form; ValueError with a clear message."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string, got {typename(text)}")
    bad = refuse_specials(text)
    if bad is not None:
        raise ValueError(bad)
    if "%" in text:
        raise ValueError(f"{text!r}: scoped addresses (%zone) are not accepted")
    if prefix:
        if "/" not in text:
            raise ValueError(f"{text!r} needs a prefix length, e.g. 192.0.2.10/24")
        try:
            iface = ipaddress.ip_interface(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address with a prefix length") from None
        a = iface.ip
    else:
        if "/" in text:
            raise ValueError(f"{text!r}: give an address without a prefix length")
        try:
            a = ipaddress.ip_address(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address") from None
        iface = a
    if a.is_unspecified or a.is_multicast or a.is_loopback:
        kind = "unspecified" if a.is_unspecified else "multicast" if a.is_multicast else "loopback"
        raise ValueError(f"{text!r} is a {kind} address")
    return iface


def _ips(r: Reader, key: str, *, prefix: bool, most: int, what: str) -> list[Any] | None:
    """A list of distinct addresses (with ``prefix``: addresses with prefix, and a single string is a list
    of one), at most ``most`` (``what`` names the bound); None with the error on ``r``."""
    v = r.get(key)
    if v is None:
        return None
    if prefix and isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or (prefix and not v):
        r.error(key, f"expected a {'non-empty ' if prefix else ''}list of addresses{' with prefix' if prefix else ''}, "
                     f"got {typename(v)}")
        return None
    if len(v) > most:
        r.error(key, f"at most {most} {what}")
        return None
    out: list[Any] = []
    for i, x in enumerate(v):
        try:
            a = _ip(x, prefix=prefix)
        except ValueError as e:
            r.error(f"{key}[{i}]", str(e))
            return None
        if a in out:
            r.error(f"{key}[{i}]", f"{a} is listed twice")
            return None
        out.append(a)
    return out


def _addresses(r: Reader) -> tuple[Interface, ...] | None:
    out = _ips(r, "addresses", prefix=True, most=MAX_ADDRESSES, what="addresses per instance")
    if out is None:
        return None
    if len({a.version for a in out}) > 1:
        r.error("addresses", "mixes IPv4 and IPv6 (keepalived needs one family per instance; "
                             "declare two instances)")
        return None
    return tuple(out)


def _peers(r: Reader) -> tuple[Address, ...] | None:
    out = _ips(r, "unicast_peers", prefix=False, most=MAX_PEERS, what="peers")
    return None if out is None else tuple(out)


def _follows(r: Reader) -> tuple[Follow, ...] | None:
    got = weighted_fmris(r, "follows", what="followed services", most=MAX_FOLLOWS, weight=(0, -254, 0),
                         refuse=refuse_specials, empty=True)
    return None if got is None else tuple(Follow(f, w) for f, w in got)


def _advert(r: Reader) -> float | None:
    v = r.get("advert_interval")
    if v is None:
        return None
    try:
        d = parse_duration(v)
    except ValueError as e:
        r.error("advert_interval", str(e))
        return None
    assert d is not None
    if d <= 0:
        r.error("advert_interval", "must be greater than zero")
        return None
    return d


def fields(r: Reader) -> dict[str, Any]:
    """The fields a table sets, each validated on its own and in normal form. Unknown keys are errors."""
    out: dict[str, Any] = {}
    if r.has("interface"):
        out["interface"] = SYNTAX.field(r, "interface", IFACE_RE, "interface name (letters, digits, '_', '.', '-'; "
                                                         "at most 15 characters)")
    if r.has("router_id"):
        out["router_id"] = r.int("router_id", lo=1, hi=255)
    if r.has("addresses"):
        out["addresses"] = _addresses(r)
    if r.has("version"):
        v = r.get("version")
        if v not in (2, 3) or isinstance(v, bool):
            r.error("version", f"must be 2 or 3, not {v!r}")
        else:
            out["version"] = v
    if r.has("advert_interval"):
        out["advert_interval"] = _advert(r)
    if r.has("priority"):
        out["priority"] = r.int("priority", lo=1, hi=254)
    if r.has("preempt"):
        out["preempt"] = r.bool("preempt")
    if r.has("preempt_delay"):
        d = r.duration("preempt_delay")
        if d is not None and d > 1000:
            r.error("preempt_delay", f"{d:g}s is out of range 0..1000s")
        else:
            out["preempt_delay"] = d
    if r.has("unicast_src"):
        try:
            out["unicast_src"] = _ip(r.get("unicast_src"), prefix=False)
        except ValueError as e:
            r.error("unicast_src", str(e))
            out["unicast_src"] = None
    if r.has("unicast_peers"):
        out["unicast_peers"] = _peers(r)
    if r.has("follows"):
        out["follows"] = _follows(r)
    r.done()
    return {k: v for k, v in out.items() if v is not None}


def complete(name: str, values: Mapping[str, Any], errors: list[FieldError], source: str, path: str, *,
             required: tuple[str, ...] = ("interface", "router_id", "addresses"),
             origin: tuple[str, ...] = (), final: bool = True) -> VrrpInstance | None:
    """Check one instance as a whole (required keys, and the rules between keys); None on error.

    Not ``final`` (a manifest's or the node's own table, before the merge), a rule between
    keys applies only when the table sets them; the merged instance is checked in full."""
    n0 = len(errors)

    def err(key: str, message: str) -> None:
        errors.append(FieldError(source, f"{path}.{key}" if key else path, message))

    for k in required:
        if k not in values:
            err(k, "is required" + (" (set it in the manifest or in the node's configuration)"
                                    if k == "interface" else ""))
    v = {**DEFAULTS, **values}
    version = v["version"]
    addresses = v.get("addresses") or ()
    if addresses and addresses[0].version == 6 and version == 2:
        err("version", "VRRP version 2 carries IPv4 only; IPv6 addresses need version 3")
    adv = v["advert_interval"]
    if version == 2:
        if adv != int(adv) or not 1 <= adv <= V2_MAX_INTERVAL:
            err("advert_interval", f"{format_duration(adv)}: VRRP version 2 takes whole seconds "
                                   f"from 1s to {V2_MAX_INTERVAL}s")
    else:
        cs = adv * 100
        if not math.isclose(cs, round(cs), abs_tol=1e-6) or not 0.01 <= adv <= V3_MAX_INTERVAL + 1e-9:
            err("advert_interval", f"{format_duration(adv)}: VRRP version 3 takes steps of 10ms "
                                   f"from 10ms to {V3_MAX_INTERVAL}s")
    if not v["preempt"] and v["preempt_delay"] and (final or {"preempt", "preempt_delay"} <= values.keys()):
        err("preempt_delay", "has no meaning with preempt = false")
    src, peers = v["unicast_src"], tuple(v["unicast_peers"])
    fam = addresses[0].version if addresses else None
    for key, addrs in (("unicast_src", [src] if src is not None else []), ("unicast_peers", list(peers))):
        if fam is not None and any(a.version != fam for a in addrs):
            err(key, f"must be IPv{fam} like the instance's addresses")
    if src is not None:
        # A peer list shared by every node (in a manifest) names this node too: leave it out here.
        others = tuple(p for p in peers if p != src)
        if not peers:
            if final:
                err("unicast_src", "needs unicast_peers (without peers the instance uses multicast)")
        elif not others:
            err("unicast_peers", f"names no peer other than this node's own unicast_src {src}")
        peers = others
    if len(errors) > n0 or any(k not in v for k in ("interface", "router_id", "addresses")):
        return None  # (a partial table, as a node may give, is checked as far as it goes)
    return VrrpInstance(
        name=name, interface=v["interface"], router_id=v["router_id"], addresses=tuple(addresses),
        version=version, advert_interval=float(adv), priority=v["priority"], preempt=v["preempt"],
        preempt_delay=float(v["preempt_delay"]), unicast_src=src, unicast_peers=tuple(peers),
        follows=tuple(v.get("follows", ())), origin=origin)


# --------------------------------------------------------------------------- the manifest section


def _instance_name(r: Reader, name: str) -> str | None:
    return SYNTAX.checked(r, name, name, NAME_RE, "instance name (a letter, then letters, digits, '_', '.', '-'; "
                                              "at most 32 characters)")


#: ``[vrrp.instances.NAME]``, in a manifest and in the node's configuration.
TABLES = Tables("vrrp", "instances", "instance", _instance_name, fields, complete, required=("router_id", "addresses"))
parse_declaration = TABLES.parse_declaration

TABLES.register()
