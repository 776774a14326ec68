"""The node's ``[vrrp]`` section, and the merge of manifests' declarations with it (the node wins).

::

    [vrrp]
    keepalived = "/usr/sbin/keepalived"   # optional; default: found on PATH, /usr/sbin, /sbin
    manifest = "/path/to/vrrp.toml"       # optional; the keepalived service manifest to import
    crash_hold = "5s"                     # optional; after keepalived stops and restarts (a crash,
                                          # svcadm restart), this node's instances stay in FAULT this
                                          # long before they contend again (default: 5 adverts of the
                                          # slowest instance; "0s": no hold)

    [vrrp.instances.web]                  # the same keys as a manifest's [vrrp.instances.web];
    interface = "eth0"                    # set here, a key overrides the manifest's value
    priority = 150

An instance the node declares alone must be complete; one it shares with a
manifest needs only the keys it changes. ``merge`` gives the instances this node
runs, or the errors that keep the new set from being applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svcmgr.declared import Source, read_daemon
from svcmgr.schema import FieldError, Reader
from vrrp import model

__all__ = ["Source", "VrrpConfig", "merge", "read_config"]



@dataclass(frozen=True)
class VrrpConfig:
    keepalived: str | None = None
    manifest: str | None = None
    crash_hold: float | None = None
    instances: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = ""


def read_config(r: Reader) -> VrrpConfig:
    """The ``[vrrp]`` section of the daemon's configuration (``svcmgr.config.SECTIONS``)."""
    keepalived, manifest = read_daemon(r, "keepalived")
    hold = r.duration("crash_hold", None)
    if hold is not None and hold > 600:
        r.error("crash_hold", f"{hold:g}s is out of range 0..600s")
        hold = None
    instances = model.TABLES.read(r, required=())
    return VrrpConfig(keepalived, manifest, hold, instances, r.source)


def merge(config: VrrpConfig | None, sources: Iterable[Source]) -> tuple[list[model.VrrpInstance], list[FieldError]]:
    """The instances this node runs: each manifest's values with the node's on top, checked whole
    (an instance a manifest declares follows that manifest's instances unless it names its own)."""
    layers, errors = model.TABLES.overlay(config.instances if config else {}, config.source if config else "",
                                          sources, lambda s: {"follows": tuple(model.Follow(f) for f in s.instances)})
    out: list[model.VrrpInstance] = [inst for _, inst in model.TABLES.completed(layers, errors)]
    _check_set(out, errors)
    return out, errors


def _check_set(instances: list[model.VrrpInstance], errors: list[FieldError]) -> None:
    """Rules between instances: one virtual router id per interface and family, one owner per address."""
    routers: dict[tuple[str, str, int], str] = {}
    owners: dict[str, str] = {}
    for i in instances:
        key = (i.interface, i.family, i.router_id)
        if key in routers:
            errors.append(FieldError("", f"vrrp.instances.{i.name}.router_id",
                                     f"{i.router_id} on {i.interface} ({i.family}) is also used by "
                                     f"instance {routers[key]}"))
        routers.setdefault(key, i.name)
        for a in i.addresses:
            if str(a.ip) in owners:
                errors.append(FieldError("", f"vrrp.instances.{i.name}.addresses",
                                         f"{a.ip} is also an address of instance {owners[str(a.ip)]}"))
            owners.setdefault(str(a.ip), i.name)
