"""The ``[metrics]`` section of the node's configuration: where ``/metrics`` listens.

Apart from ``svcmgr.metrics`` so that reading the configuration at start loads no
prometheus-client: the metrics component is built once the first services are started.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from svcmgr import hostport
from svcmgr.schema import Reader

if TYPE_CHECKING:
    from svcmgr.config import DaemonConfig

__all__ = ["DEFAULT_LISTEN", "MetricsConfig", "read_config", "section"]

DEFAULT_LISTEN = "127.0.0.1:9464"


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: where ``/metrics`` listens; ``listen`` empty: off."""

    listen: str = DEFAULT_LISTEN
    host: str = "127.0.0.1"
    port: int = 9464


def read_config(r: Reader) -> MetricsConfig:
    """Read ``[metrics]``: listen (port 0: any free port; the daemon logs the one bound)."""
    listen = r.str("listen", DEFAULT_LISTEN, maxlen=300)
    if listen == "":
        return MetricsConfig("", "", 0)
    try:
        host, port = hostport.split(listen, any_port=True)
    except ValueError as e:
        r.error("listen", str(e))
        return MetricsConfig("", "", 0)
    return MetricsConfig(listen, host, port)


def section(config: DaemonConfig) -> MetricsConfig:
    cfg = config.section("metrics")
    return cfg if isinstance(cfg, MetricsConfig) else MetricsConfig()
