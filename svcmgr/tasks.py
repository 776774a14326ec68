"""A nursery for the many short tasks of a long-lived component.

Every task has an owner that cancels and awaits it on shutdown; an exception in
one task is logged and never takes the daemon down with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["Nursery"]

log = logging.getLogger("svcmgr.tasks")


class Nursery:
    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failures = 0
        self.closed = False

    def start(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        if self.closed:
            coro.close()
            raise RuntimeError(f"nursery {self.name} is closed")
        t = asyncio.create_task(self._guard(coro), name=name)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    async def _guard(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            self.failures += 1
            log.exception("task in %s failed", self.name)
            return None

    def __len__(self) -> int:
        return len(self._tasks)

    async def aclose(self) -> None:
        self.closed = True
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
