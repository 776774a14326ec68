"""What every SQLite store of the daemon shares: one write transaction on a connection. A leaf.

The repository, the fault manager's case and error logs, the timing store and the
MQTT outbox each keep their tables in the daemon's one database, on a connection in
autocommit mode; a block that must be all or nothing runs in ``transaction``.

Durability (docs/durability.md): the connection runs with ``synchronous=NORMAL`` (WAL), so
a commit survives a crash of the daemon but the last ones may be lost with the power. A
commit that an operator is told about (``durable=True``) is written with ``synchronous=FULL``:
the WAL is on disk (fdatasync) before the block returns, and with it every commit before it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

__all__ = ["SYNCHRONOUS", "transaction"]

#: The connection's own setting: commits survive a crash of the process, not always a power loss.
SYNCHRONOUS = "NORMAL"


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
    """One write transaction on a connection in autocommit mode: all of the block, or nothing.

    ``durable``: on disk before this returns (``synchronous=FULL`` for this commit), for what
    an operator is told is done."""
    if durable:
        conn.execute("PRAGMA synchronous=FULL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (a full disk, an I/O error): the original error counts.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
    finally:
        if durable:
            conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
