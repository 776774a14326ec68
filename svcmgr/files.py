"""Files components hand to other daemons (keepalived, HAProxy): replaced atomically, read back, pid files,
and the binary a component runs, found on PATH and in the sbin folders."""

from __future__ import annotations

import contextlib
import os
import shutil

__all__ = ["find_binary", "read_pid", "read_text", "write_atomic"]

_SEARCH = "/usr/sbin:/sbin:/usr/local/sbin"


def find_binary(default: str, configured: str | None = None) -> str | None:
    """The configured binary (an absolute path, or a name looked up), else ``default`` looked up on PATH
    and the sbin folders; None if absent."""
    if configured and os.path.isabs(configured):
        return configured if os.path.isfile(configured) and os.access(configured, os.X_OK) else None
    return shutil.which(configured or default, path=os.environ.get("PATH", "") + os.pathsep + _SEARCH)


def write_atomic(path: str, text: str, mode: int = 0o644, *, durable: bool = True) -> None:
    """Replace ``path`` with ``text`` in one rename (readers see the old or the new file, never half).

    ``durable=False`` skips the fsync, for files that matter only while the machine runs
    (track files, on the failover path)."""
    d = os.path.dirname(path) or "."
    # a new file of an unguessable name (O_EXCL): a name known in advance could be made first by whoever can
    # write to the folder (a file of theirs, or a hard link to one, that the rename would then put in place)
    tmp = os.path.join(d, f".{os.path.basename(path)}.{os.urandom(8).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid > 1 else None
