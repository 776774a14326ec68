"""The SERD and threshold engine of each (rule, resource) pair, as many as a bound allows, kept across a restart.

An engine is made when its pair's first ereport comes (``get``); past ``limit`` the
least recently used one that has not fired is evicted (the owner is told, to drop
the open case it fed). Engines that changed are written to the daemon's database
(``save``, table ``fault_serd``) and read back after a restart (``load``), their
times moved from the wall clock to the caller's monotonic one and back.
"""

from __future__ import annotations

import collections
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

from fault.rules import Rule, RuleSet
from fault.serd import SerdEngine, ThresholdEngine
from svcmgr.db import transaction

__all__ = ["Engine", "Engines", "Key"]

SCHEMA = "CREATE TABLE IF NOT EXISTS fault_serd (name TEXT PRIMARY KEY, data TEXT NOT NULL);"

Engine = SerdEngine | ThresholdEngine
#: (rule name, resource)
Key = tuple[str, str]


def make(rule: Rule, resource: str) -> Engine:
    """A new engine for ``rule`` on ``resource``."""
    if rule.kind == "serd":
        assert rule.n is not None and rule.t is not None
        return SerdEngine(f"{rule.name}|{resource}", rule.n, rule.t)
    assert rule.bound is not None
    return ThresholdEngine(f"{rule.name}|{resource}", rule.bound)


class Engines:
    """The engines, least recently used first."""

    def __init__(self, conn: sqlite3.Connection | None, *, limit: int, on_evict: Callable[[Key], None],
                 wall: Callable[[], float] = time.time) -> None:
        self.conn = conn
        self.limit = limit
        self.on_evict = on_evict
        self.wall = wall
        self._engines: collections.OrderedDict[Key, Engine] = collections.OrderedDict()
        self._dirty: set[Key] = set()
        if conn is not None:
            conn.executescript(SCHEMA)

    def __len__(self) -> int:
        return len(self._engines)

    def __iter__(self) -> Iterator[Key]:
        return iter(self._engines)

    def __contains__(self, key: object) -> bool:
        return key in self._engines

    def items(self) -> list[tuple[Key, Engine]]:
        return list(self._engines.items())

    def peek(self, key: Key) -> Engine | None:
        return self._engines.get(key)

    @property
    def unsaved(self) -> int:
        return len(self._dirty)

    def get(self, rule: Rule, key: Key) -> Engine:
        """The pair's engine, made if it has none; it is counted as changed (to be saved) unless it has fired: a
        fired engine takes no event (``record`` leaves it as it is) until it is reset and dropped, and was
        counted as changed by the event that made it fire."""
        eng = self._engines.get(key)
        if eng is None:
            eng = self._engines[key] = make(rule, key[1])
            if len(self._engines) > self.limit:
                self._evict()
        else:
            self._engines.move_to_end(key)
            if eng.fired:
                return eng
        self._dirty.add(key)
        return eng

    def _evict(self) -> None:
        for key, eng in self._engines.items():
            if not eng.fired:
                self.drop(key)
                self.on_evict(key)
                return

    def drop(self, key: Key) -> None:
        """Forget the pair's engine (saved as gone)."""
        if self._engines.pop(key, None) is not None:
            self._dirty.add(key)

    def keep_rules(self, old: RuleSet, new: RuleSet) -> None:
        """New rules: engines of rules that are gone or changed are dropped."""
        for key in list(self._engines):
            rule = new.by_name.get(key[0])
            if rule is None or old.by_name.get(key[0]) != rule:
                del self._engines[key]

    def gc(self, now: float) -> list[Key]:
        """Age the engines that have not fired; those left empty are dropped. The pairs dropped."""
        gone = []
        for key, eng in list(self._engines.items()):
            if eng.fired:
                continue
            eng.gc(now)
            if eng.empty:
                self.drop(key)
                gone.append(key)
        return gone

    def load(self, rules: RuleSet, now: float) -> int:
        """Engines saved by ``save`` (before a restart), on the clock of ``now``; how many."""
        if self.conn is None:
            return 0
        wall_to_mono = now - self.wall()
        n = 0
        for name, blob in self.conn.execute("SELECT name, data FROM fault_serd"):
            rule_name, _, resource = name.partition("|")
            rule = rules.by_name.get(rule_name)
            if rule is None or rule.kind not in ("serd", "threshold"):
                continue
            try:
                state = json.loads(blob)
            except ValueError:
                continue
            eng = make(rule, resource)
            eng.load_state(state, wall_to_mono)
            self._engines[(rule_name, resource)] = eng
            n += 1
        return n

    def save(self, now: float) -> None:
        """Write the engines that changed (an empty or dropped one is deleted)."""
        if self.conn is None or not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        mono_to_wall = self.wall() - now
        put, drop = [], []
        for key in dirty:
            eng = self._engines.get(key)
            name = f"{key[0]}|{key[1]}"
            if eng is None or eng.empty:
                drop.append((name,))
            else:
                put.append((name, json.dumps(eng.to_state(mono_to_wall))))
        try:
            with transaction(self.conn) as db:
                db.executemany("DELETE FROM fault_serd WHERE name=?", drop)
                db.executemany("INSERT INTO fault_serd(name, data) VALUES(?, ?) "
                               "ON CONFLICT(name) DO UPDATE SET data=excluded.data", put)
        except sqlite3.Error:
            self._dirty |= dirty  # not written (a full disk): the next save tries again
            raise

    def view(self, key: Key, eng: Engine, now: float) -> dict[str, Any]:
        """One engine as ``fmstat`` shows it."""
        item: dict[str, Any] = {"rule": key[0], "resource": key[1], "count": eng.count, "fired": eng.fired,
                                "recorded": eng.recorded}
        if isinstance(eng, SerdEngine):
            times = eng.times()
            item.update({"n": eng.n, "t": eng.t, "oldest": (now - times[0]) if times else None})
        else:
            item.update({"bound": eng.bound.describe(), "last": eng.last})
        return item
