"""A nursery for the many short tasks of a long-lived component, and blocking work off the loop.

Every task has an owner that cancels and awaits it on shutdown; an exception in
one task is logged and never takes the daemon down with it. ``in_thread`` runs a
blocking function (parsing a large manifest) in a thread of its own that ends with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["Nursery", "in_thread"]

T = TypeVar("T")

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


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a thread of its own, so the event loop goes on meanwhile.

    No pool is kept: the thread ends with the call, and the daemon is single-threaded again
    between such calls (``svcmgr.spawn`` clones children only then). A cancelled caller stops
    waiting; the thread finishes its call and its result is dropped."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not fut.done():
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def work() -> None:
        try:
            outcome = (True, fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            outcome = (False, e)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=work, name="svcmgr-work", daemon=True).start()
    return await fut
