"""The engine's decisions on fake processes (``fakes.FakeProcesses``): restart_on, clear, mark, waiters and
the restart rate limit, each in milliseconds, with one fake clock and no process started."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from svcmgr.policy import START_RETRIES, Outcome

from fakes import manifests, settle

A, B = "svc:/t/a:default", "svc:/t/b:default"


def svc(name: str, *, deps: str = "", restart: str = "", extra: str = "") -> str:
    return f'name = "{name}"\n{extra}\n[methods.start]\nexec = ["daemon"]\n{deps}\n{restart}\n'


def dep(target: str, restart_on: str, grouping: str = "require_all") -> str:
    return (f'[[dependencies]]\nname = "d"\ngrouping = "{grouping}"\nrestart_on = "{restart_on}"\n'
            f'fmris = ["{target}"]\n')


@pytest.fixture
def rig(fake_engine):
    return fake_engine


def state(engine, fmri: str) -> str:
    return engine.instances[fmri].state.value


async def up(engine, procs, *texts: str) -> None:
    manifests(engine, *texts)
    engine.boot()
    await settle(engine, procs)


@pytest.mark.parametrize(("restart_on", "how", "restarted"), [
    ("error", "kill", True), ("error", "exit", False), ("restart", "exit", True),
    ("none", "kill", False), ("refresh", "kill", True),
])
async def test_restart_on_decides_whether_a_dependents_stops_with_its_dependency(rig, restart_on, how, restarted):
    engine, procs, _ = rig
    await up(engine, procs, svc("t/b"), svc("t/a", deps=dep(B, restart_on)))
    assert state(engine, A) == state(engine, B) == "online"
    before = procs.calls.count(("start", A))
    procs.kill(B, signal.SIGKILL) if how == "kill" else procs.exit(B, 0)
    await settle(engine, procs)
    assert state(engine, B) == "online" and state(engine, A) == "online"
    assert (("stop", A) in procs.calls) is restarted
    assert procs.calls.count(("start", A)) == before + (1 if restarted else 0)


async def test_a_fatal_start_is_maintenance_and_clear_brings_it_back(rig):
    engine, procs, _ = rig
    sub = engine.bus.subscribe("svc.cleared")
    procs.fail_next(B, Outcome.FATAL, "exited with status 95 (SMF_EXIT_ERR_FATAL)", 95)
    await up(engine, procs, svc("t/b"), svc("t/a", deps=dep(B, "none")))
    assert state(engine, B) == "maintenance" and "SMF_EXIT_ERR_FATAL" in engine.instances[B].reason
    assert state(engine, A) == "offline", "a require_all dependent waits"
    assert engine.clear([B]) == [B]
    await settle(engine, procs)
    assert state(engine, B) == state(engine, A) == "online"
    ev = sub.get_nowait()
    assert ev is not None and ev.resource == B and ev.data["state"] == "maintenance"
    assert engine.clear([B]) == [], "nothing to clear on an online instance"


async def test_start_failures_retry_then_go_to_maintenance(rig):
    engine, procs, _ = rig
    for _ in range(START_RETRIES):
        procs.fail_next(B)
    await up(engine, procs, svc("t/b"))
    assert procs.calls.count(("start", B)) == START_RETRIES
    assert state(engine, B) == "maintenance" and "failed repeatedly" in engine.instances[B].reason


async def test_mark_maintenance_stops_and_keeps_the_reason_and_degraded_clears(rig):
    engine, procs, _ = rig
    await up(engine, procs, svc("t/b"), svc("t/a", deps=dep(B, "none")))
    assert engine.mark([A], "degraded", temporary=False, immediate=False) == [A]
    assert state(engine, A) == "degraded" and engine.instances[A].marks["degraded"]["by"] == "operator"
    assert engine.clear([A]) == [A] and state(engine, A) == "online"
    assert engine.mark([B], "maintenance", temporary=False, immediate=False, reason="disk", by="fault",
                       case="c-1") == [B]
    await settle(engine, procs)
    assert state(engine, B) == "maintenance" and B not in procs.running
    assert engine.instances[B].marks["maintenance"] == {**engine.instances[B].marks["maintenance"],
                                                        "reason": "disk", "by": "fault", "case": "c-1"}
    assert engine.mark([B], "degraded", temporary=False, immediate=False) == [], "only an online one degrades"


async def test_waiters_answer_0_when_reached_3_when_not_and_4_when_dependencies_cannot(rig):
    engine, procs, _ = rig
    procs.hold(B)
    manifests(engine, svc("t/b"), svc("t/a", deps=dep(B, "restart")))
    engine.boot()
    await settle(engine, procs)
    online = engine.wait_for(B, "online")
    assert not online.done()
    procs.ready(B)
    await settle(engine, procs)
    assert online.result() == 0 and engine.wait_for(A, "online").result() == 0
    engine.mark([B], "maintenance", temporary=False, immediate=True)
    await settle(engine, procs)
    assert engine.wait_for(B, "online").result() == 3
    assert engine.wait_for(A, "online").result() == 4, "its require_all dependency is in maintenance"
    disabled = engine.wait_for(A, "disabled")
    engine.disable([A], temporary=True)
    await settle(engine, procs)
    assert disabled.result() == 0


async def test_the_rate_limit_counts_failures_within_the_period_on_the_engines_clock(rig):
    engine, procs, clock = rig
    await up(engine, procs, svc("t/b", restart='[restart]\nlimit = 3\nperiod = "60s"'))
    for _ in range(2):
        procs.kill(B, signal.SIGSEGV)
        await settle(engine, procs)
        clock.advance(61)  # each failure alone in its period
    assert state(engine, B) == "online"
    t0 = time.monotonic()
    for _ in range(3):
        procs.kill(B, signal.SIGSEGV)
        await settle(engine, procs)
    assert state(engine, B) == "maintenance" and "Restarting too quickly" in engine.instances[B].reason
    assert time.monotonic() - t0 < 1.0, "no sleeping: the clock is the engine's"


async def test_a_limit_of_one_failure_is_said_in_the_singular(rig):
    engine, procs, _ = rig
    await up(engine, procs, svc("t/b", restart='[restart]\nlimit = 1\nperiod = "60s"'))
    procs.kill(B, signal.SIGSEGV)
    await settle(engine, procs)
    assert state(engine, B) == "maintenance"
    assert engine.instances[B].reason.startswith("Restarting too quickly (1 failure within 60s), last ")


async def test_a_health_probe_that_degrades_and_recovers(rig):
    engine, procs, _ = rig
    health = '[health]\ntcp = "127.0.0.1:1"\naction = "degrade"\n'
    await up(engine, procs, svc("t/b", extra="", restart=health))
    procs.health(B, False, "refused")
    assert state(engine, B) == "degraded" and engine.instances[B].marks["degraded"]["by"] == "probe"
    procs.health(B, True)
    assert state(engine, B) == "online"


async def test_a_milestone_lifted_while_an_instance_stops_for_it_brings_the_instance_back(rig):
    """Found by SVCMGR_CAMPAIGN_SEED=330055311 (pgid, round 168): ``svcadm milestone`` to one that holds keepalived
    back, then ``milestone all`` while keepalived's stop still ran: it ended disabled, "held back", for good."""
    engine, procs, _ = rig
    m = "svc:/t/m:default"
    await up(engine, procs, svc("t/a"), 'name = "t/m"\ntype = "milestone"\n')
    procs.held_stops[A] = asyncio.Event()
    engine.set_milestone(m)
    for _ in range(20):
        await asyncio.sleep(0)
    assert engine.instances[A].phase.value == "stopping_disable"
    engine.set_milestone("all")
    procs.held_stops.pop(A).set()
    await settle(engine, procs)
    assert state(engine, A) == "online"
    assert procs.calls.count(("start", A)) == 2
