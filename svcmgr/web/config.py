"""The ``[web]`` section of the node's configuration: where the dashboard listens, and who may do what.

```toml
[web]
listen = "127.0.0.1:9465"       # absent or "": no dashboard
credentials = "/etc/svcmgr/web.users"   # 0600 file, one "user:secret" a line (user: a local account)
actions = false                 # true: logged-in users may act (with their own rights); needs credentials
anonymous = true                # read without logging in (default: true on loopback, refused elsewhere)
hosts = ["svc.example.net"]     # Host names a browser may use besides the listen address and localhost
cert_file = "/etc/svcmgr/web.crt"   # HTTPS; required off loopback
key_file = "/etc/svcmgr/web.key"
max_connections = 64
max_streams = 32                # live event streams (one per open tab)
session_idle = "30min"          # a login lasts this long unused ...
session_max = "12h"             # ... and this long at most
```

Off loopback the dashboard needs credentials and TLS, and has no anonymous readers.
"""

from __future__ import annotations

import ipaddress
import pwd
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from svcmgr import hostport
from svcmgr.safefs import MIN_SECRET, UnsafePath, read_private
from svcmgr.schema import Reader

if TYPE_CHECKING:
    from svcmgr.config import DaemonConfig

__all__ = ["WebConfig", "is_loopback", "parse_credentials", "read_config", "section"]

MAX_USERS = 1000
MAX_CREDENTIALS = 256 * 1024
_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\Z")
_HOST_RE = re.compile(r"^(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*"
                      r"(:[0-9]{1,5})?\Z")


@dataclass(frozen=True)
class WebConfig:
    listen: str = ""
    host: str = ""
    port: int = 0
    credentials: str = ""
    actions: bool = False
    anonymous: bool = True
    hosts: tuple[str, ...] = ()
    cert_file: str = ""
    key_file: str = ""
    max_connections: int = 64
    max_streams: int = 32
    session_idle: float = 1800.0
    session_max: float = 43200.0
    #: user name -> secret, read from ``credentials`` when the configuration was read
    users: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def tls(self) -> bool:
        return bool(self.cert_file)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_credentials(path: str, data: bytes) -> dict[str, bytes]:
    """``user:secret`` lines (``#`` comments, blank lines) -> {user: secret}; ValueError says which line
    is wrong. Each user must be a local account; each secret printable, at least MIN_SECRET bytes."""
    users: dict[str, bytes] = {}
    for n, raw in enumerate(data.split(b"\n"), 1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        name_b, sep, secret = line.partition(b":")
        try:
            name = name_b.decode("ascii")
        except UnicodeDecodeError:
            name = ""
        if not sep or not _USER_RE.fullmatch(name):
            raise ValueError(f"{path}:{n}: expected user:secret")
        if name in users:
            raise ValueError(f"{path}:{n}: user {name} is given twice")
        try:
            pwd.getpwnam(name)
        except KeyError:
            raise ValueError(f"{path}:{n}: {name} is not a local account (the dashboard gives a user the "
                             "rights that account has on the control socket)") from None
        if len(secret) < MIN_SECRET or any(c < 0x21 or c > 0x7e for c in secret):
            raise ValueError(f"{path}:{n}: the secret of {name} must be at least {MIN_SECRET} printable "
                             "characters without spaces (for example: openssl rand -hex 24)")
        users[name] = secret
        if len(users) > MAX_USERS:
            raise ValueError(f"{path}: more than {MAX_USERS} users")
    if not users:
        raise ValueError(f"{path}: no user:secret line")
    return users


def read_config(r: Reader) -> WebConfig:
    """Read ``[web]``; every rule of the module docstring is checked here, with the field it is about."""
    d = WebConfig()
    listen = r.str("listen", "", maxlen=300)
    credentials = r.str("credentials", "", maxlen=4096)
    actions = r.bool("actions", False)
    anonymous = r.get("anonymous", None)
    hosts = r.strlist("hosts", (), pattern=_HOST_RE)
    cert = r.str("cert_file", "", maxlen=4096)
    key = r.str("key_file", "", maxlen=4096)
    max_conn = r.int("max_connections", d.max_connections, lo=4, hi=10_000)
    max_streams = r.int("max_streams", d.max_streams, lo=1, hi=1000)
    idle = r.duration("session_idle", d.session_idle, positive=True)
    longest = r.duration("session_max", d.session_max, positive=True)
    if not listen:
        return WebConfig()
    try:
        host, port = hostport.split(listen)
    except ValueError as e:
        r.error("listen", str(e))
        return WebConfig()
    loopback = is_loopback(host)
    users: dict[str, bytes] = {}
    if credentials:
        try:
            users = parse_credentials(credentials, read_private(credentials, MAX_CREDENTIALS))
        except (UnsafePath, ValueError) as e:
            r.error("credentials", str(e))
    if anonymous is None:
        anonymous = loopback
    elif not isinstance(anonymous, bool):
        r.error("anonymous", "expected true or false")
        anonymous = False
    if not loopback:
        if not credentials:
            r.error("listen", f"{listen!r} is not a loopback address: the dashboard needs credentials there "
                    "(a 0600 file of user:secret lines)")
        if not cert or not key:
            r.error("listen", f"{listen!r} is not a loopback address: the dashboard needs cert_file and "
                    "key_file there (HTTPS), or a TLS proxy in front of a loopback listen address")
        if anonymous:
            r.error("anonymous", "anonymous reading is for loopback addresses only")
    if actions and not credentials:
        r.error("actions", "actions need credentials: a 0600 file of user:secret lines (each user acts with "
                "the rights of that local account)")
    if not anonymous and not credentials:
        r.error("anonymous", "without anonymous reading the dashboard needs credentials")
    if bool(cert) != bool(key):
        r.error("cert_file" if not cert else "key_file", "cert_file and key_file go together")
    if idle > longest:
        r.error("session_idle", "is longer than session_max")
    return WebConfig(listen, host, port, credentials, actions, anonymous, tuple(hosts), cert, key,
                     max_conn, max_streams, idle, longest, users)


def section(config: DaemonConfig) -> WebConfig:
    cfg = config.section("web")
    return cfg if isinstance(cfg, WebConfig) else WebConfig()
