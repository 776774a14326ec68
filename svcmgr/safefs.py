"""Files the daemon opens where someone else might have put something first. A leaf module.

Every file under the daemon's state folders is opened without following a symbolic link
(``O_NOFOLLOW``), and created exclusively (``O_EXCL``) where the daemon makes it; a
folder it relies on must be a real folder of its own user, not writable by others
(checked with ``lstat``, so a link planted in its place is refused); a secret (a
credential file) must be a regular file of its user, of mode 0600 or tighter. Each
refusal says which path and why, for the operator to fix.
"""

from __future__ import annotations

import os
import stat

__all__ = ["MAX_SECRET", "MIN_SECRET", "UnsafePath", "check_dir", "check_parents", "make_dir", "open_own",
           "read_private", "read_secret"]

MIN_SECRET = 16
MAX_SECRET = 4096


class UnsafePath(OSError):
    """A path the daemon will not use, and why."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


def _owner_ok(st: os.stat_result) -> bool:
    return st.st_uid in (os.geteuid(), 0)


def read_private(path: str, limit: int) -> bytes:
    """The content of a private file (at most ``limit`` bytes); raises UnsafePath when the file is a
    link, not a regular file, not owned by this user (or root), readable or writable by group or
    others, or larger than ``limit``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UnsafePath(path, "no such file") from None
    except OSError as e:
        if os.path.islink(path):
            raise UnsafePath(path, "is a symbolic link; name the file itself") from None
        raise UnsafePath(path, e.strerror or str(e)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(path, "is not a regular file")
        if not _owner_ok(st):
            raise UnsafePath(path, f"belongs to uid {st.st_uid}, not to uid {os.geteuid()} (or root)")
        if st.st_mode & 0o077:
            raise UnsafePath(path, f"has mode {stat.S_IMODE(st.st_mode):04o}; a secret must be 0600 "
                                   f"(chmod 600 {path})")
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UnsafePath(path, f"holds more than {limit} bytes")
    return data


def read_secret(path: str) -> bytes:
    """The secret held in ``path`` (surrounding white space dropped); raises UnsafePath when the file
    is not private (``read_private``), empty, shorter than MIN_SECRET or longer than MAX_SECRET bytes."""
    data = read_private(path, MAX_SECRET)
    secret = data.strip()
    if len(secret) < MIN_SECRET:
        raise UnsafePath(path, f"holds {len(secret)} bytes; a secret needs at least {MIN_SECRET} "
                               "(for example: openssl rand -hex 32)")
    if any(c < 0x21 or c > 0x7e for c in secret):
        raise UnsafePath(path, "holds white space or unprintable bytes inside the secret")
    return secret


def _describe(st: os.stat_result) -> str:
    return f"owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}"


def check_dir(path: str, *, private: bool = False, uid: int | None = None) -> None:
    """Raise UnsafePath unless ``path`` is a real folder (not a link) of ``uid`` (default: the effective
    user) that no one else may write to (``private``: nor read or enter)."""
    uid = os.geteuid() if uid is None else uid
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise UnsafePath(path, "no such folder") from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(path, "is a symbolic link; the daemon keeps its state only in a folder of its own")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(path, "is not a folder")
    if st.st_uid != uid:
        raise UnsafePath(path, f"belongs to uid {st.st_uid}, not to uid {uid} (the user svcmgrd runs as): "
                               "another user could change what the daemon reads and writes there")
    if st.st_mode & (0o077 if private else 0o022):
        raise UnsafePath(path, f"is {'open to' if private else 'writable by'} group or others "
                               f"({_describe(st)}); fix it with chmod {'700' if private else 'go-w'} {path}")


def check_parents(path: str) -> None:
    """Raise UnsafePath unless every folder above ``path`` belongs to root or to this user and no one
    else may rename what it holds (not writable by others, or sticky as /tmp is)."""
    parent = os.path.dirname(os.path.abspath(path))
    while True:
        try:
            st = os.stat(parent)
        except OSError as e:
            raise UnsafePath(parent, e.strerror or str(e)) from None
        if st.st_uid not in (0, os.geteuid()):
            raise UnsafePath(parent, f"belongs to uid {st.st_uid}: another user could swap what is in it")
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise UnsafePath(parent, f"is writable by others without the sticky bit ({_describe(st)})")
        if parent == "/":
            return
        parent = os.path.dirname(parent)


def make_dir(path: str, mode: int, *, private: bool = False) -> bool:
    """Create folder ``path`` with ``mode``, or check that the existing one is safe (``check_dir``; its
    mode is never changed). True when it was created."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        check_dir(path, private=private)
        return False
    os.chmod(path, mode)  # ours, just made: whatever the umask said
    return True


def open_own(path: str, flags: int, mode: int) -> int:
    """Open (or create) a file of the daemon without following a link, with permissions no looser
    than ``mode`` (an older, looser file is tightened); the descriptor."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISFIFO(st.st_mode):
            raise UnsafePath(path, "is not a regular file")
        if st.st_uid != os.geteuid():
            raise UnsafePath(path, f"belongs to uid {st.st_uid}, not to uid {os.geteuid()}")
        if stat.S_IMODE(st.st_mode) & ~mode:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & mode)
    except BaseException:
        os.close(fd)
        raise
    return fd
