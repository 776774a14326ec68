"""What every SQLite store of the daemon shares: one write transaction on a connection. A leaf.

The repository, the fault manager's case and error logs, the timing store and the
MQTT outbox each keep their tables in the daemon's one database, on a connection in
autocommit mode; a block that must be all or nothing runs in ``transaction``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

__all__ = ["transaction"]


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction on a connection in autocommit mode: all of the block, or nothing."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")
