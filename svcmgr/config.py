"""The node's configuration file (``--config``): TOML, one section per component, flags win.

``[node]`` belongs to the daemon. The other sections (``[mqtt]``, ``[metrics]``,
``[vrrp]``, ``[fault]``, ``[lb]``, ``[web]``) are read by the component that owns them, through the
reader function named in ``SECTIONS``; a section whose component this build
lacks is an error, as is any unknown key.
"""

from __future__ import annotations

import importlib
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from svcmgr.schema import FieldError, FieldErrors, Reader, read_toml

__all__ = ["SECTIONS", "DaemonConfig", "load_config"]

#: section -> "module:function" taking a Reader and returning the section's value.
SECTIONS: dict[str, str] = {
    "mqtt": "svcmgr.mqtt_config:read_config",
    "metrics": "svcmgr.metrics_config:read_config",
    "vrrp": "vrrp.config:read_config",
    "fault": "fault.config:read_config",
    "lb": "lb.config:read_config",
    "web": "svcmgr.web.config:read_config",
}

_NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")


@dataclass
class DaemonConfig:
    node: str
    sections: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> Any:
        return self.sections.get(name)


def default_node() -> str:
    name = socket.gethostname().split(".")[0] or "localhost"
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:63]


def _reader_for(section: str) -> Callable[[Reader], Any] | None:
    target = SECTIONS.get(section)
    if target is None:
        return None
    mod, _, fn = target.partition(":")
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError):
        return None


def load_config(path: str | None, *, overrides: dict[str, dict[str, Any]] | None = None) -> DaemonConfig:
    """Read and validate the configuration; flags in ``overrides`` (section -> key -> value) win.

    Raises FieldErrors naming the file, the field and the problem."""
    data: dict[str, Any] = {}
    source = path or "(flags)"
    if path is not None:
        try:
            data = read_toml(path)
        except FieldError as e:
            raise FieldErrors([e]) from None
    for sec, values in (overrides or {}).items():
        for k, v in values.items():
            if v is not None:
                if not isinstance(data.get(sec), dict):
                    data[sec] = {}
                data[sec][k] = v
    errors: list[FieldError] = []
    top = Reader(source, errors, data, "")
    node = default_node()
    nr = top.table("node")
    if nr is not None:
        node = nr.str("name", node, pattern=_NODE_RE)
        nr.done()
    sections: dict[str, Any] = {}
    for name in list(data):
        if name == "node":
            continue
        top.get(name)
        fn = _reader_for(name)
        if fn is None:
            known = ", ".join(["node", *SECTIONS])
            top.error(name, f"unknown section (known: {known})" if name not in SECTIONS
                      else "this build has no component for this section")
            continue
        r = Reader(source, errors, data[name], name)
        value = fn(r)
        r.done()
        sections[name] = value
    top.done()
    if errors:
        raise FieldErrors(errors)
    return DaemonConfig(node, sections, source, data)
