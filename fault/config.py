"""The ``[fault]`` section of the node's configuration.

```toml
[fault]
builtin_rules = true                 # the rules shipped in manifests/fault
rules = ["/etc/svcmgr/fault"]        # more rule files or folders
knowledge = []                       # more knowledge-base files or folders
webhook = "127.0.0.1:9466"           # Alertmanager webhook receiver; "" (default) turns it off
webhook_credential = "/etc/svcmgr/webhook.secret"   # required with webhook: a file of mode 0600 holding
                                     # the secret Alertmanager sends (Bearer, or Basic's password)
kmsg = "auto"                        # auto: /dev/kmsg where readable, for the system daemon only (not
                                     # with --root); "/dev/kmsg"; "" off; or a file to follow
errlog_max = 100000                  # ereports kept in the error log; the oldest are dropped
errlog_retention = "30d"             # ... and none older than this
cases_keep = 1000                    # closed (resolved) cases kept for fmdump
correlation_skew = "1s"              # how late a dependency's ereport may arrive and still count as first
```
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from svcmgr import hostport
from svcmgr.safefs import UnsafePath, read_secret
from svcmgr.schema import Reader

__all__ = ["FaultConfig", "read_config"]


@dataclass(frozen=True)
class FaultConfig:
    builtin_rules: bool = True
    rules: tuple[str, ...] = ()
    knowledge: tuple[str, ...] = ()
    webhook: str = ""
    webhook_credential: str = ""
    #: the secret read from ``webhook_credential`` when the configuration was read
    webhook_secret: bytes = field(default=b"", repr=False, compare=False)
    kmsg: str = "auto"
    errlog_max: int = 100_000
    errlog_retention: float = 30 * 86400.0
    cases_keep: int = 1000
    correlation_skew: float = 1.0

    @property
    def webhook_address(self) -> tuple[str, int] | None:
        if not self.webhook:
            return None
        return hostport.split(self.webhook)


def check_listen(value: str) -> str | None:
    """None when ``value`` is a loopback ``host:port``, else what is wrong."""
    try:
        host, _ = hostport.split(value)
    except ValueError as e:
        return f"{e} (a loopback address and port, such as 127.0.0.1:9466)"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"{value!r}: {host!r} is not an IP address (use 127.0.0.1 or [::1])"
    if not ip.is_loopback:
        return f"{value!r}: the receiver listens on loopback addresses only (put a TLS proxy in front of it)"
    return None


def read_config(r: Reader) -> FaultConfig:
    d = FaultConfig()
    builtin = r.bool("builtin_rules", d.builtin_rules)
    rules = r.strlist("rules", d.rules)
    knowledge = r.strlist("knowledge", d.knowledge)
    webhook = r.str("webhook", d.webhook)
    credential = r.str("webhook_credential", "") or ""
    secret = b""
    if webhook:
        problem = check_listen(webhook)
        if problem:
            r.error("webhook", problem)
            webhook = ""
        elif not credential:
            r.error("webhook", "needs webhook_credential: a file of mode 0600 holding the secret that Alertmanager "
                    "sends (its http_config.authorization.credentials_file); without one anyone could post alerts")
            webhook = ""
    if webhook and credential:
        try:
            secret = read_secret(credential)
        except UnsafePath as e:
            r.error("webhook_credential", str(e))
            webhook = ""
    kmsg = r.str("kmsg", d.kmsg)
    errlog_max = r.int("errlog_max", d.errlog_max, lo=100, hi=100_000_000)
    retention = r.duration("errlog_retention", d.errlog_retention, positive=True)
    keep = r.int("cases_keep", d.cases_keep, lo=0, hi=10_000_000)
    skew = r.duration("correlation_skew", d.correlation_skew)
    if skew is not None and skew > 60:
        r.error("correlation_skew", "must be at most 60s")
        skew = d.correlation_skew
    return FaultConfig(builtin, tuple(rules), tuple(knowledge), webhook or "", credential, secret,
                       kmsg if kmsg is not None else "auto", errlog_max, retention, keep,
                       skew if skew is not None else d.correlation_skew)
