"""The MQTT outbox: a bounded, ordered queue of outgoing messages in the daemon's SQLite repository.

Every message the bridge sends passes through here, so that nothing is lost
while the broker is away or the daemon restarts: a row is queued until the
broker has acknowledged it (``ack``). Past ``limit`` queued rows the oldest are
dropped and counted (``dropped``). The last ``REPLAY`` acknowledged events (rows
not retained) stay in the table, behind the mark ``acked`` (rows up to it are
acknowledged), and are queued again at each new connection (``replay``: the mark
goes back): a broker killed after its acknowledgement but before it passed a
message on (or saved it) has lost it, and no acknowledgement says so; subscribers
keep the first copy of each event's ``seq``, as QoS 1 already asks of them.
Retained rows leave once acknowledged, they are not replayed (an old state must
not stand in for a new one, even for a moment). The newest rows not yet acknowledged
are also kept in memory (up to ``MEMORY`` bytes of payload), so that the sender reads
what was just queued without a query. The retained picture (each instance's state,
each open case) is kept beside it, one row per topic, to be sent again after a
reconnect, since a broker may have lost its retained messages.

Tables: ``mqtt_outbox`` (seq, topic, payload, qos, retain), ``mqtt_retained``
(topic, payload), ``mqtt_counters`` (name, value: ``next_seq``, ``acked``,
``dropped``, ``sent`` and the bridge's own). ``statistics`` reads them without a
bridge, for ``/metrics``. (``mqtt_sent`` held the kept rows apart before the
mark: what an older daemon left there is moved back at start.)
"""

from __future__ import annotations

import collections
import itertools
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from svcmgr.db import transaction

__all__ = ["Outbox", "OutboxStats", "statistics"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS mqtt_outbox (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS mqtt_sent (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS mqtt_retained (topic TEXT PRIMARY KEY, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS mqtt_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

#: A queued row: (seq, topic, payload, qos, retain 0 or 1), as the table holds it.
Row = tuple[int, str, bytes, int, int]

#: Acknowledged events kept to be sent again after a reconnection (what a broker killed after its
#: acknowledgements may have lost: those of its last moments, up to its last save; the bridge's window is 100).
REPLAY = 512
#: Payload bytes of the newest unacknowledged rows also kept in memory (``Outbox.peek`` reads them there).
MEMORY = 8 << 20


@dataclass
class OutboxStats:
    depth: int = 0
    dropped: int = 0
    sent: int = 0


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='mqtt_outbox'").fetchone() \
        is not None


def statistics(conn: sqlite3.Connection) -> OutboxStats:
    """Depth and counters of the outbox in this repository (zeros if the bridge never ran)."""
    if not _has_tables(conn):
        return OutboxStats()
    counters = dict(conn.execute("SELECT name, value FROM mqtt_counters").fetchall())
    depth = conn.execute("SELECT count(*) FROM mqtt_outbox WHERE seq > ?", (counters.get("acked", 0),)).fetchone()[0]
    return OutboxStats(depth, counters.get("dropped", 0), counters.get("sent", 0))


class Outbox:
    def __init__(self, conn: sqlite3.Connection, limit: int) -> None:
        self.conn = conn
        self.limit = limit
        conn.executescript(SCHEMA)
        kept = conn.execute("SELECT max(seq) FROM mqtt_sent").fetchone()[0]
        if kept is not None:  # an older daemon's kept rows: back in the queue, behind the mark
            with transaction(conn):
                conn.execute("INSERT OR IGNORE INTO mqtt_outbox SELECT * FROM mqtt_sent")
                conn.execute("DELETE FROM mqtt_sent")
                self._set("acked", kept)
        counters = dict(conn.execute("SELECT name, value FROM mqtt_counters").fetchall())
        top = conn.execute("SELECT max(seq) FROM mqtt_outbox").fetchone()[0] or 0
        self.next_seq = max(counters.get("next_seq", 1), top + 1)
        self.acked = counters.get("acked", 0)
        self.dropped = counters.get("dropped", 0)
        self.sent = counters.get("sent", 0)
        self.depth = conn.execute("SELECT count(*) FROM mqtt_outbox WHERE seq > ?", (self.acked,)).fetchone()[0]
        # Every row of the table above ``_mem_after`` is in ``_mem`` (in order, consecutive numbers, none
        # acknowledged), and nothing else is: the newest rows, up to ``MEMORY`` bytes of payload.
        self._mem: collections.deque[Row] = collections.deque()
        self._mem_after = self.next_seq - 1
        self._mem_bytes = 0

    def _set(self, name: str, value: int) -> None:
        self.conn.execute("INSERT INTO mqtt_counters(name, value) VALUES(?, ?) "
                          "ON CONFLICT(name) DO UPDATE SET value=excluded.value", (name, value))

    def counter(self, name: str, default: int = 0) -> int:
        row = self.conn.execute("SELECT value FROM mqtt_counters WHERE name=?", (name,)).fetchone()
        return row[0] if row else default

    def append(self, messages: Iterable[tuple[str, bytes, int, bool]],
               retained: Iterable[tuple[str, bytes]] = (), *, counters: dict[str, int] | None = None) -> int:
        """Queue messages (topic, payload, qos, retain) in order, update the retained picture
        (topic, payload; an empty payload removes the topic) and set the caller's ``counters``, all
        in one transaction. Returns the number of rows dropped to stay within the limit."""
        first = self.next_seq
        try:
            with transaction(self.conn):
                rows = [(seq, topic, payload, qos, 1 if retain else 0)
                        for seq, (topic, payload, qos, retain) in zip(itertools.count(first), messages)]
                self.next_seq = first + len(rows)
                self.conn.executemany("INSERT INTO mqtt_outbox(seq, topic, payload, qos, retain) "
                                      "VALUES(?, ?, ?, ?, ?)", rows)
                for topic, payload in retained:
                    if payload:
                        self.conn.execute("INSERT INTO mqtt_retained(topic, payload) VALUES(?, ?) "
                                          "ON CONFLICT(topic) DO UPDATE SET payload=excluded.payload", (topic, payload))
                    else:
                        self.conn.execute("DELETE FROM mqtt_retained WHERE topic=?", (topic,))
                depth = self.depth + len(rows)
                drop = max(0, depth - self.limit)
                if drop:
                    cut = self.conn.execute("SELECT seq FROM mqtt_outbox WHERE seq > ? ORDER BY seq LIMIT 1 OFFSET ?",
                                            (self.acked, drop - 1)).fetchone()[0]
                    self.conn.execute("DELETE FROM mqtt_outbox WHERE seq > ? AND seq <= ?", (self.acked, cut))
                    self._set("dropped", self.dropped + drop)
                self.conn.executemany("INSERT INTO mqtt_counters(name, value) VALUES(?, ?) "
                                      "ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                                      [("next_seq", self.next_seq), *(counters or {}).items()])
        except BaseException:
            self.next_seq = first  # nothing was queued
            raise
        self.depth = depth - drop
        self.dropped += drop
        self._remember(rows, cut if drop else 0)
        return drop

    def _remember(self, rows: list[Row], dropped_upto: int) -> None:
        """Keep the rows just queued in memory too; forget those dropped (up to ``dropped_upto``, which
        may be some of these) and, past ``MEMORY`` bytes of payload, the oldest."""
        mem = self._mem
        mem.extend(rows)
        self._mem_bytes += sum(len(r[2]) for r in rows)
        self._forget(dropped_upto)
        while self._mem_bytes > MEMORY:
            row = mem.popleft()
            self._mem_bytes -= len(row[2])
            self._mem_after = row[0]

    def _forget(self, upto: int) -> None:
        """The rows up to ``upto`` leave memory (acknowledged or dropped)."""
        mem = self._mem
        while mem and mem[0][0] <= upto:
            self._mem_bytes -= len(mem.popleft()[2])
        self._mem_after = max(self._mem_after, upto)

    def peek(self, after: int, limit: int) -> list[Row]:
        """Up to ``limit`` queued rows with a sequence number above ``after``, oldest first."""
        after = max(after, self.acked)
        if after >= self._mem_after:  # every row above ``after`` is in memory (numbered one by one)
            mem = self._mem
            skip = after + 1 - mem[0][0] if mem else 0
            if skip <= 0:
                return list(itertools.islice(mem, limit))
            if skip >= len(mem):
                return []
            if mem[skip][0] == after + 1:
                return list(itertools.islice(mem, skip, skip + limit))
        return self.conn.execute("SELECT seq, topic, payload, qos, retain FROM mqtt_outbox WHERE seq > ? "
                                 "ORDER BY seq LIMIT ?", (after, limit)).fetchall()

    def ack(self, upto: int) -> int:
        """Every row up to and including ``upto`` is acknowledged: the mark moves past them, retained
        rows leave, the last ``REPLAY`` events stay for ``replay``. Returns how many were acknowledged."""
        if upto <= self.acked:
            return 0
        with transaction(self.conn):
            n = self.conn.execute("SELECT count(*) FROM mqtt_outbox WHERE seq > ? AND seq <= ?",
                                  (self.acked, upto)).fetchone()[0]
            self.conn.execute("DELETE FROM mqtt_outbox WHERE seq > ? AND seq <= ? AND retain != 0", (self.acked, upto))
            self.conn.execute("DELETE FROM mqtt_outbox WHERE seq <= (SELECT seq FROM mqtt_outbox WHERE seq <= ? "
                              "ORDER BY seq DESC LIMIT 1 OFFSET ?)", (upto, REPLAY))
            self._set("acked", upto)
            if n:
                self._set("sent", self.sent + n)
        self.acked = upto
        self.sent += n
        self.depth -= n
        self._forget(upto)
        return n

    def replay(self) -> int:
        """Queue the kept acknowledged rows again, in their places (a new connection: the broker may have
        lost them): the mark goes back before them. Returns how many."""
        if not self.acked:
            return 0
        with transaction(self.conn):
            n = self.conn.execute("SELECT count(*) FROM mqtt_outbox WHERE seq <= ?", (self.acked,)).fetchone()[0]
            self._set("acked", 0)
        self.acked = 0
        self.depth += n
        return n

    def retained(self) -> list[tuple[str, bytes]]:
        """The current retained picture: (topic, payload) for every instance and open case."""
        return [(r[0], bytes(r[1])) for r in self.conn.execute("SELECT topic, payload FROM mqtt_retained "
                                                                 "ORDER BY topic")]

    def statistics(self) -> OutboxStats:
        return OutboxStats(self.depth, self.dropped, self.sent)
