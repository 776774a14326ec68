"""The ``[mqtt]`` section of the node's configuration, validated field by field (no network, no aiomqtt).

Shared by the bridge (``svcmgr.mqtt``), metrics and ``svcs --fleet``
(``svcmgr.cli.fleet``), so that reading the configuration loads no MQTT client.
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from svcmgr import mqtt_topics as wire
from svcmgr.schema import Reader

if TYPE_CHECKING:
    from svcmgr.config import DaemonConfig

__all__ = ["MqttConfig", "parse_url", "read_config", "section", "tls_context"]

_CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}\Z")


@dataclass(frozen=True)
class MqttConfig:
    """The ``[mqtt]`` section, validated. ``url`` empty: no broker."""

    url: str = ""
    host: str = ""
    port: int = 1883
    tls: bool = False
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    telemetry: tuple[str, ...] = ()
    telemetry_max_bytes: int = 65536
    outbox_limit: int = 100_000
    keepalive: int = 30
    qos: int = 1
    window: int = 100
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    drain_timeout: float = 3.0

    @property
    def broker(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_url(url: str) -> tuple[bool, str, int]:
    """``mqtt://host[:port]`` or ``mqtts://host[:port]`` -> (tls, host, port); ValueError says what is wrong."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError as e:
        raise ValueError(f"{url!r} is not a valid URL: {e}") from None
    if u.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"{url!r}: the scheme must be mqtt:// or mqtts://")
    if u.username is not None or u.password is not None:
        raise ValueError(f"{url!r}: put credentials in username and password, not in the URL")
    if not u.hostname:
        raise ValueError(f"{url!r}: no host")
    if u.path not in ("", "/") or u.query or u.fragment:
        raise ValueError(f"{url!r}: a broker URL has no path, query or fragment")
    tls = u.scheme == "mqtts"
    if port == 0:
        raise ValueError(f"{url!r}: port 0 is not a broker port")
    return tls, u.hostname, port or (8883 if tls else 1883)


def _readable(r: Reader, key: str) -> str | None:
    path = r.str(key, None)
    if path is None:
        return None
    if not os.path.isfile(path):
        r.error(key, f"{path}: no such file")
        return None
    if not os.access(path, os.R_OK):
        r.error(key, f"{path}: not readable")
        return None
    return path


def read_config(r: Reader) -> MqttConfig:
    """Read ``[mqtt]``: url, client_id, username, password, ca_file, cert_file, key_file, tls_insecure,
    telemetry, telemetry_max_bytes, outbox_limit, keepalive, qos, window, reconnect_min, reconnect_max,
    drain_timeout."""
    url = r.str("url", "")
    tls, host, port = False, "", 1883
    if url:
        try:
            tls, host, port = parse_url(url)
        except ValueError as e:
            r.error("url", str(e))
            url = ""
    client_id = r.str("client_id", None, pattern=_CLIENT_ID_RE)
    username = r.str("username", None, maxlen=256)
    password = r.str("password", None, maxlen=1024)
    if password is not None and username is None:
        r.error("password", "needs a username")
    ca_file = _readable(r, "ca_file")
    cert_file = _readable(r, "cert_file")
    key_file = _readable(r, "key_file")
    tls_insecure = r.bool("tls_insecure", False)
    if key_file and not cert_file:
        r.error("key_file", "needs cert_file")
    if url and not tls:
        for k, v in (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file)):
            if v:
                r.error(k, "TLS files need an mqtts:// url")
    if tls and (ca_file or cert_file):
        try:
            tls_context(ca_file, cert_file, key_file, tls_insecure)
        except (ssl.SSLError, OSError) as e:
            r.error("cert_file" if cert_file else "ca_file", f"TLS files refused: {e}")
    telemetry = r.strlist("telemetry", ())
    for f in telemetry:
        why = wire.check_filter(f)
        if why:
            r.error("telemetry", why)
        elif wire.filter_overlaps_prefix(f):
            r.error("telemetry", f"{f!r} names the bridge's own topics ({wire.PREFIX}/...): "
                    "events would come back as ereports in a loop")
    return MqttConfig(
        url=url, host=host, port=port, tls=tls, client_id=client_id, username=username, password=password,
        ca_file=ca_file, cert_file=cert_file, key_file=key_file, tls_insecure=tls_insecure,
        telemetry=tuple(dict.fromkeys(telemetry)),
        telemetry_max_bytes=r.int("telemetry_max_bytes", 65536, lo=64, hi=16 * 1024 * 1024),
        outbox_limit=r.int("outbox_limit", 100_000, lo=10, hi=100_000_000),
        keepalive=int(r.duration("keepalive", 30, positive=True) or 30),
        qos=r.int("qos", 1, lo=0, hi=1),
        window=r.int("window", 100, lo=1, hi=1000),
        reconnect_min=r.duration("reconnect_min", 0.5, positive=True),
        reconnect_max=r.duration("reconnect_max", 30.0, positive=True),
        drain_timeout=r.duration("drain_timeout", 3.0),
    )


def tls_context(ca_file: str | None, cert_file: str | None, key_file: str | None,
                 insecure: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file)
    if insecure:
        ctx.check_hostname = False
    return ctx


def section(config: DaemonConfig) -> MqttConfig | None:
    """The node's broker configuration, or None when it names no broker."""
    cfg = config.section("mqtt")
    return cfg if isinstance(cfg, MqttConfig) and cfg.url else None
