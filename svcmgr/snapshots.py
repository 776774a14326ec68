"""Named snapshots of each service's configuration, as SMF keeps them (``svcprop -s``, ``svccfg listsnap``,
``svccfg revert``).

* ``initial``: the configuration of the service's first import;
* ``last-import``: that of its latest import;
* ``previous``: the editing configuration that ``svccfg revert`` replaced;
* ``running`` is the repository's running copy itself (``svcmgr.repository``), not stored again.

SMF's ``start`` snapshot (the configuration at the last successful start) is not kept:
svcmgr starts what ``running`` says. A snapshot is a manifest in normal form, the
service and all its instances. Its own table in the repository's database.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from svcmgr.db import transaction

__all__ = ["NAMES", "Snapshots"]

#: Every snapshot name, in the order ``svccfg listsnap`` shows them.
NAMES = ("initial", "last-import", "previous", "running")

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    taken REAL NOT NULL,
    PRIMARY KEY (service, name)
);
"""


class Snapshots:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        connection.executescript(SCHEMA)

    def imported(self, items: Iterable[tuple[str, str]]) -> None:
        """An import stored these (service, its manifest's normal text: ``repository.normal_text``, the text
        ``take`` stores): their snapshots in one transaction (a boot imports hundreds of services at once,
        and a transaction is a write of the log each)."""
        now = time.time()
        rows = [(service, text, now) for service, text in items]
        if not rows:
            return
        with transaction(self.connection) as c:
            c.executemany("INSERT OR IGNORE INTO snapshots VALUES (?, 'initial', ?, ?)", rows)
            c.executemany("INSERT OR REPLACE INTO snapshots VALUES (?, 'last-import', ?, ?)", rows)

    def take(self, service: str, name: str, data: dict[str, Any]) -> None:
        self.connection.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?)",
                                (service, name, json.dumps(data, sort_keys=True), time.time()))

    def get(self, service: str, name: str) -> dict[str, Any] | None:
        row = self.connection.execute("SELECT data FROM snapshots WHERE service=? AND name=?",
                                      (service, name)).fetchone()
        return json.loads(row[0]) if row else None

    def taken(self, service: str) -> dict[str, float]:
        """Each stored snapshot of the service and when it was taken."""
        return dict(self.connection.execute("SELECT name, taken FROM snapshots WHERE service=?", (service,)))

    def forget(self, service: str) -> None:
        self.connection.execute("DELETE FROM snapshots WHERE service=?", (service,))
