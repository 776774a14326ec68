"""Who a dashboard request is: the anonymous reader, or a logged-in local user, with that user's rights.

A user logs in with the secret the credentials file gives (compared in constant time,
an unknown name costing the same comparison). The login makes a session: a random id
in an ``HttpOnly; SameSite=Strict`` cookie, a per-session CSRF token that every action
form carries, an idle and an absolute lifetime. Sessions live in memory (a daemon
restart logs everyone out) and are bounded in number: the oldest goes first.

The ``Caller`` of a session is built from the local account (uid, gid, supplementary
groups), exactly as SO_PEERCRED and ``/proc`` build it for the control socket, so
``svcmgr.authz`` gives a web user that account's rights, no more. The anonymous reader
is a caller no grant can name (uid -1, no groups).
"""

from __future__ import annotations

import collections
import grp
import hmac
import os
import pwd
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from svcmgr.api import Caller

__all__ = ["ANONYMOUS", "MAX_SESSIONS", "Session", "Sessions", "authenticate", "caller_for"]

#: Whoever reads the dashboard without logging in: no uid, no group, no grant can name it.
ANONYMOUS = Caller(pid=0, uid=-1, gid=-1, groups=frozenset(), privileged=False)
MAX_SESSIONS = 256
_DUMMY = secrets.token_bytes(32)


def caller_for(user: str) -> Caller | None:
    """The caller a local account is, as the control socket would see it; None when it is gone."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return None
    groups = {pw.pw_gid}
    try:
        groups.update(os.getgrouplist(user, pw.pw_gid))
    except OSError:
        groups.update(g.gr_gid for g in grp.getgrall() if user in g.gr_mem)
    privileged = pw.pw_uid == 0 or pw.pw_uid == os.geteuid()
    return Caller(0, pw.pw_uid, pw.pw_gid, frozenset(groups), privileged)


def authenticate(users: dict[str, bytes], user: str, secret: str) -> Caller | None:
    """The caller for a user name and secret, or None; the comparison takes the same time for a name
    that is not in the file."""
    given = secret.encode("utf-8", "replace")
    want = users.get(user)
    ok = hmac.compare_digest(given, want if want is not None else _DUMMY)
    if not ok or want is None:
        return None
    return caller_for(user)


@dataclass
class Session:
    id: str
    user: str
    caller: Caller
    csrf: str
    created: float
    seen: float
    flash: list[tuple[str, str]] = field(default_factory=list)


class Sessions:
    """Logged-in users, by the random id their cookie carries."""

    def __init__(self, idle: float, longest: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle = idle
        self.longest = longest
        self.clock = clock
        self._by_id: collections.OrderedDict[str, Session] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._by_id)

    def create(self, user: str, caller: Caller) -> Session:
        now = self.clock()
        while len(self._by_id) >= MAX_SESSIONS:
            self._by_id.popitem(last=False)
        s = Session(secrets.token_urlsafe(32), user, caller, secrets.token_urlsafe(32), now, now)
        self._by_id[s.id] = s
        return s

    def get(self, sid: str | None) -> Session | None:
        """The live session of a cookie value, or None (unknown, idle too long, or too old)."""
        if not sid or len(sid) > 100:
            return None
        s = self._by_id.get(sid)
        if s is None:
            return None
        now = self.clock()
        if now - s.seen > self.idle or now - s.created > self.longest:
            del self._by_id[sid]
            return None
        s.seen = now
        self._by_id.move_to_end(sid)
        return s

    def drop(self, sid: str) -> None:
        self._by_id.pop(sid, None)

    def forget_users(self, keep: set[str]) -> None:
        """End the sessions of users no longer in the credentials file (after SIGHUP)."""
        for sid in [sid for sid, s in self._by_id.items() if s.user not in keep]:
            del self._by_id[sid]


def csrf_ok(session: Session | None, token: str) -> bool:
    return session is not None and hmac.compare_digest(session.csrf.encode(), token.encode("utf-8", "replace"))
