"""A subscription with a lag: its waiting consumer is woken that long after the first event, never sooner, and
still gets every event, in order, within its bound; a close or a cancelled wait leaves no wake behind."""

from __future__ import annotations

import asyncio
import time

from svcmgr.bus import Bus

LAG = 0.05


async def test_a_waiting_consumer_is_woken_after_the_lag_and_gets_everything_in_order():
    bus = Bus("n")
    sub = bus.subscribe("ereport", lag=LAG, maxlen=3)
    got: list[tuple[str, float]] = []

    async def consume() -> None:
        async for ev in sub:
            got.append((ev.resource, time.monotonic()))

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)  # the consumer waits
    t0 = time.monotonic()
    for r in ("a", "b", "c", "d"):
        bus.emit("ereport.svc.exit.signal", r)
        bus.emit("svc.state.online", r)  # not asked for
    for _ in range(5):
        await asyncio.sleep(0)
    assert got == []  # not at the next turns of the loop
    await asyncio.sleep(LAG * 2)
    assert [r for r, _ in got] == ["b", "c", "d"]  # the oldest past the bound dropped, and counted
    assert got[0][1] - t0 >= LAG * 0.9
    assert sub.statistics().dropped == 1
    # a consumer that is not waiting takes what has come at once
    bus.emit("ereport.svc.exit.signal", "e")
    assert sub.get_nowait() is not None
    sub.close()
    await asyncio.wait_for(task, 1.0)


async def test_a_close_or_a_cancelled_wait_leaves_no_wake_behind():
    bus = Bus("n")
    sub = bus.subscribe("ereport", lag=LAG)
    waiting = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    bus.emit("ereport.svc.exit.signal", "a")
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert (await asyncio.wait_for(sub.get(), 1.0)).resource == "a"  # still there, taken at once
    waiting = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    bus.emit("ereport.svc.exit.signal", "b")
    sub.close()
    assert (await asyncio.wait_for(waiting, 1.0)).resource == "b"
