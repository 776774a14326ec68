"""The node's ``[lb]`` section, and the merge of manifests' frontends with it (the node wins).

::

    [lb]
    haproxy = "/usr/sbin/haproxy"     # optional; default: found on PATH, /usr/sbin, /sbin
    manifest = "/path/to/haproxy.toml"  # optional; the HAProxy service manifest to import

    [lb.frontends.web]                # the same keys as a manifest's [lb.frontends.web];
    bind = "192.0.2.10:80"            # set here, a key overrides the manifest's value

A frontend the node declares alone must be complete; one it shares with a manifest
needs only the keys it changes. ``merge`` gives the frontends this node runs, each with
its servers (the address read from each backend instance's property), or the errors
that keep the new set from being applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from lb import model
from svcmgr.declared import Source, read_daemon
from svcmgr.schema import FieldError, Reader

__all__ = ["LbConfig", "Source", "merge", "read_config"]


#: (instance FMRI, (group, name)) -> the property's first value; None when the instance or the property is absent.
PropertyReader = Callable[[str, tuple[str, str]], Any]


@dataclass(frozen=True)
class LbConfig:
    haproxy: str | None = None
    manifest: str | None = None
    frontends: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = ""


def read_config(r: Reader) -> LbConfig:
    """The ``[lb]`` section of the daemon's configuration (``svcmgr.config.SECTIONS``)."""
    haproxy, manifest = read_daemon(r, "haproxy")
    frontends = model.TABLES.read(r, required=())
    return LbConfig(haproxy, manifest, frontends, r.source)


def merge(config: LbConfig | None, sources: Iterable[Source],
          prop: PropertyReader) -> tuple[list[model.Frontend], list[FieldError]]:
    """The frontends this node runs: each manifest's values with the node's on top, checked whole (a
    frontend a manifest declares balances that manifest's instances unless it names its backends), and
    each backend's address read from its instance's property."""
    layers, errors = model.TABLES.overlay(config.frontends if config else {}, config.source if config else "",
                                          sources, lambda s: {"backends": tuple(model.Backend(f) for f in s.instances)})
    out: list[model.Frontend] = []
    for layer, fe in model.TABLES.completed(layers, errors):
        with_servers = _with_servers(fe, prop, errors, layer.source)
        if with_servers is not None:
            out.append(with_servers)
    _check_set(out, errors)
    return out, errors


def _with_servers(fe: model.Frontend, prop: PropertyReader, errors: list[FieldError],
                  source: str) -> model.Frontend | None:
    servers: list[model.Server] = []
    names: dict[str, str] = {}
    ok = True
    pg, pname = fe.address
    for b in fe.backends:
        where = f"{b.fmri} property {pg}/{pname}"
        raw = prop(b.fmri, fe.address)
        if raw is None:
            errors.append(FieldError(where, "", f"is not set: backend of frontend {fe.name} needs its address "
                                                f"(host:port) there, or the instance is not imported"))
            ok = False
            continue
        try:
            host, port = model.parse_address(raw)
        except ValueError as e:
            errors.append(FieldError(where, "", f"backend of frontend {fe.name}: {e}"))
            ok = False
            continue
        name = model.server_name(b.fmri)
        if name in names:
            errors.append(FieldError(source, f"lb.frontends.{fe.name}.backends",
                                     f"{b.fmri} and {names[name]} get the same server name {name!r}"))
            ok = False
            continue
        names[name] = b.fmri
        servers.append(model.Server(name, b.fmri, host, port, b.weight))
    return replace(fe, servers=tuple(servers)) if ok else None


def _check_set(frontends: list[model.Frontend], errors: list[FieldError]) -> None:
    """Rules between frontends: one frontend per listen address and port."""
    seen: dict[tuple[str, int], str] = {}
    for fe in frontends:
        key = (str(fe.bind), fe.port)
        if key in seen:
            errors.append(FieldError("", f"lb.frontends.{fe.name}.bind",
                                     f"{fe.listen} is also the address of frontend {seen[key]}"))
        seen.setdefault(key, fe.name)
