"""The repository's file: made whole or not at all, checked at every start, and a copy of the last good one.

A daemon must never start afresh on a damaged repository: that would forget every
service and every setting without a word. ``connect`` refuses a file that is empty, is
not SQLite, or fails SQLite's ``quick_check``, and leaves it as it is (``Damaged``: the
file, what is wrong, and the ways out). A new repository is made under a temporary name
and renamed into place once it holds its schema, so an empty file is always damage.
After each good check the daemon keeps a copy beside it (``repository.db.good``, taken
with SQLite's backup API, so consistent); ``svcmgrd --restore-repository`` puts that copy
back, keeping the damaged files under another name.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time

from svcmgr.db import SYNCHRONOUS
from svcmgr.safefs import open_own

__all__ = ["Damaged", "connect", "good_copy", "keep_copy", "restore"]

#: The files SQLite keeps beside a database in WAL mode.
_SIDES = ("-wal", "-shm")


class Damaged(Exception):
    """The repository cannot be used as it is; the message says which file, why, and the ways out."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(self.explain())

    def explain(self, restore_command: str = "svcmgrd --restore-repository (with the same --root)") -> str:
        """What is wrong and the ways out, naming ``restore_command`` as the way back to the good copy."""
        copy = good_copy(self.path)
        ways = []
        if os.path.exists(copy):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.stat(copy).st_mtime))
            ways.append(f"  go back to the copy kept when svcmgrd last started or stopped well ({when}; what was "
                        f"set since is lost):\n    {restore_command}")
        ways.append(f"  or start with an empty repository (every service must be imported again, every "
                    f"setting is lost):\n    mv {self.path} {self.path}.damaged   (and its "
                    f"{' and '.join(_SIDES)} files, if any)")
        return (f"the repository {self.path} cannot be used: {self.why}.\n"
                "It is left as it is: svcmgrd does not start on it, nor afresh, which would forget every "
                "service and setting. Ways out:\n" + "\n".join(ways))


def good_copy(path: str) -> str:
    """Where the copy of the last good repository is kept."""
    return f"{path}.good"


def connect(path: str, schema: str) -> sqlite3.Connection:
    """The repository at ``path``, made with ``schema`` if absent; raises Damaged when it cannot be used.
    ``:memory:`` is SQLite's name for a database in memory (tests): no file is made or checked."""
    if path == ":memory:":
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.executescript(schema)
        return conn
    if not os.path.lexists(path):
        left = [path + s for s in _SIDES if os.path.lexists(path + s)]
        if left:  # SQLite would replay an old log into the new file
            raise Damaged(path, f"it is missing, but {' and '.join(left)} of an earlier one "
                                f"{'is' if len(left) == 1 else 'are'} there")
        _create(path, schema)
    for p in (path, *(path + s for s in _SIDES)):  # the daemon's alone: they hold method environments
        if p == path or os.path.lexists(p):
            os.close(open_own(p, os.O_RDWR, 0o600))
    if os.stat(path).st_size == 0:
        raise Damaged(path, "it is empty (0 bytes), and a repository svcmgrd made never is")
    _check(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
        conn.executescript(schema)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise Damaged(path, str(e)) from None
    except BaseException:
        conn.close()
        raise
    return conn


def _check(path: str) -> None:
    """SQLite's check of the file (with its write-ahead log), through a read-only connection: closing a
    writable one would checkpoint the log into a damaged file, which must be left as it is."""
    ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        problems = [r[0] for r in ro.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as e:
        raise Damaged(path, str(e)) from None
    finally:
        ro.close()
    if problems != ["ok"]:
        raise Damaged(path, "SQLite's check finds " + "; ".join(problems))


def _create(path: str, schema: str) -> None:
    tmp = f"{path}.new"
    for p in (tmp, f"{tmp}-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
    os.close(open_own(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        # one transaction (one commit's writes and syncs, not one per table): rollback journal,
        # synchronous=FULL, so on disk when this returns
        conn.executescript(f"BEGIN;\n{schema}\nCOMMIT;")
    finally:
        conn.close()
    os.rename(tmp, path)
    _sync_dir(path)


def _sync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def keep_copy(conn: sqlite3.Connection, path: str, *, check: bool = True) -> None:
    """Keep a consistent copy of the repository for ``restore``, if it passes SQLite's check (``check``
    False: it was just checked). Raises sqlite3.Error or OSError."""
    if check:
        problems = [r[0] for r in conn.execute("PRAGMA quick_check(1)")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError(f"not copied, SQLite's check finds {problems[0]}")
    dest = good_copy(path)
    tmp = f"{dest}.new"
    _copy(conn, tmp)
    os.rename(tmp, dest)
    _sync_dir(dest)


def _copy(conn: sqlite3.Connection, dest: str) -> None:
    """A copy of ``conn``'s database at ``dest`` (made afresh, 0600, a plain rollback-journal file), on disk."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(dest)
    os.close(open_own(dest, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    out = sqlite3.connect(dest, isolation_level=None)
    try:
        # A new file under a name of its own, synced below before it is renamed into place: SQLite need not
        # journal or sync the pages it copies (a rollback journal made and removed, and its syncs, each some
        # milliseconds when the disk is busy). A copy cut short is never renamed into place.
        out.execute("PRAGMA journal_mode=OFF")
        out.execute("PRAGMA synchronous=OFF")
        conn.backup(out)
        out.execute("PRAGMA journal_mode=DELETE")  # no -wal or -shm beside the copy
    finally:
        out.close()
    fd = os.open(dest, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def restore(path: str) -> str:
    """Put the last good copy back in place of a damaged repository; what was done, for the operator.
    The damaged files are kept with the suffix ``.damaged-<time>``. Raises Damaged when there is no
    good copy, or it is damaged too."""
    copy = good_copy(path)
    if not os.path.exists(copy):
        raise Damaged(path, f"there is no copy of a good repository to go back to ({copy} does not exist)")
    src = sqlite3.connect(f"file:{copy}?mode=ro", uri=True, isolation_level=None)
    try:
        try:
            ok = [r[0] for r in src.execute("PRAGMA quick_check(1)")] == ["ok"]
        except sqlite3.DatabaseError:
            ok = False
        if not ok:
            raise Damaged(path, f"the copy {copy} fails SQLite's check too")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kept = []
        for p in (path, *(path + s for s in _SIDES)):
            if os.path.lexists(p):
                os.rename(p, f"{p}.damaged-{stamp}")
                kept.append(f"{p}.damaged-{stamp}")
        _copy(src, f"{path}.new")
    finally:
        src.close()
    os.rename(f"{path}.new", path)
    _sync_dir(path)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.stat(copy).st_mtime))
    return f"restored {path} from the copy of {when}; the damaged files are kept as {', '.join(kept) or 'nothing'}"
