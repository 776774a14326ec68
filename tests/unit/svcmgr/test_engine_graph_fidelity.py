"""Regression tests for the divergences the model of graph.c found in the engine (tests/model), each named
after what it protects, on fake processes: what SMF's graph engine does under failure, in milliseconds."""

from __future__ import annotations

import signal

import pytest

from fakes import manifests, settle

A, B, C, D = (f"svc:/t/{n}:default" for n in "abcd")


def svc(name: str, *deps: str, extra: str = "") -> str:
    return f'name = "t/{name}"\n{extra}\n[methods.start]\nexec = ["daemon"]\n' + "".join(deps)


def dep(grouping: str, restart_on: str, *targets: str, name: str = "d") -> str:
    fmris = ", ".join(f'"{t}"' for t in targets)
    return (f'[[dependencies]]\nname = "{name}"\ngrouping = "{grouping}"\nrestart_on = "{restart_on}"\n'
            f"fmris = [{fmris}]\n")


@pytest.fixture
def rig(fake_engine):
    return fake_engine


async def up(engine, procs, *texts: str) -> None:
    manifests(engine, *texts)
    engine.boot()
    await settle(engine, procs)


def states(engine) -> dict[str, str]:
    return {f.split("/")[-1].split(":")[0]: i.state.value for f, i in sorted(engine.instances.items())}


async def test_require_any_dependent_restarts_when_a_member_stops_even_while_another_runs(rig):
    """propagate_stop(): every grouping but exclude_all stops its dependent when the cause is within
    restart_on, whatever the other members do; the dependent starts again at once, its group still met."""
    engine, procs, _ = rig
    stopping = engine.bus.subscribe("svc.stopping")
    await up(engine, procs, svc("a"), svc("b"), svc("c", dep("require_any", "error", A, B)))
    procs.kill(A, signal.SIGKILL)
    await settle(engine, procs)
    stopped = set()
    while (ev := stopping.get_nowait()) is not None:
        stopped.add(ev.resource)
    assert stopped == {A, C}
    assert states(engine) == {"a": "online", "b": "online", "c": "online"}
    assert procs.calls.count(("start", C)) == 2


async def test_optional_all_dependent_starts_when_its_offline_member_can_never_start(rig):
    """An offline optional_all member that can never start counts as met (optional_all_satisfied()); it
    becomes so without changing state when what it excludes comes online, and its dependent must start."""
    engine, procs, _ = rig
    procs.hold(A)
    await up(engine, procs, svc("a"), svc("b", dep("require_all", "none", A), dep("exclude_all", "none", A, name="x")),
             svc("c", dep("optional_all", "none", B)))
    assert states(engine) == {"a": "offline", "b": "offline", "c": "offline"}
    procs.ready(A)
    await settle(engine, procs)
    assert states(engine) == {"a": "online", "b": "offline", "c": "online"}


async def test_restarting_too_quickly_after_exits_does_not_restart_error_dependents(rig):
    """A death that is not an error (every process exited) propagates as such even when it is one too many:
    restart_on=error dependents stay up, restart_on=restart ones restart."""
    engine, procs, _ = rig
    await up(engine, procs, svc("a", extra="[restart]\nlimit = 2"), svc("b", dep("require_all", "error", A)),
             svc("c", dep("require_all", "restart", A)))
    for _ in range(2):
        procs.exit(A)
        await settle(engine, procs)
    assert states(engine) == {"a": "maintenance", "b": "online", "c": "offline"}
    assert procs.calls.count(("start", B)) == 1


async def test_an_operators_enable_wins_over_the_milestone(rig):
    """A milestone disables what it does not need through the temporary override (dgraph_set_milestone());
    an operator's enable, persistent or -t, replaces that override and the instance runs."""
    engine, procs, _ = rig
    await up(engine, procs, svc("a"), svc("b"))
    engine.set_milestone("none")
    await settle(engine, procs)
    assert states(engine) == {"a": "disabled", "b": "disabled"}
    assert engine.instances[A].reason == "Held back by milestone none."
    engine.enable([A], temporary=False)
    engine.enable([B], temporary=True)
    await settle(engine, procs)
    assert states(engine) == {"a": "online", "b": "online"}


async def test_a_milestone_lifts_temporary_disables_inside_it(rig):
    """Entering a milestone removes the temporary overrides of what it runs, as "all" removes them all."""
    engine, procs, _ = rig
    await up(engine, procs, svc("a"), svc("b", dep("require_all", "none", A)), svc("c"))
    engine.disable([A], temporary=True)
    await settle(engine, procs)
    assert states(engine)["a"] == "disabled"
    engine.set_milestone(B)
    await settle(engine, procs)
    assert states(engine) == {"a": "online", "b": "online", "c": "disabled"}


async def test_a_milestone_takes_instances_out_of_maintenance_as_a_disable_does(rig):
    """What a milestone does not need is disabled as an administrator's disable would: out of maintenance."""
    engine, procs, _ = rig
    await up(engine, procs, svc("a"), svc("b"))
    engine.mark([A], "maintenance", temporary=False, immediate=False)
    await settle(engine, procs)
    engine.set_milestone(B)
    await settle(engine, procs)
    assert states(engine) == {"a": "disabled", "b": "online"}
    assert "maintenance" not in engine.instances[A].marks


async def test_a_milestone_does_not_run_what_only_a_disabled_optional_member_needs(rig):
    """mark_subgraph(): past an optional_all group only enabled instances belong to the milestone, so what a
    disabled optional member needs is not run for it."""
    engine, procs, _ = rig
    await up(engine, procs, svc("a"), svc("b", dep("require_all", "none", A), extra="enabled = false"),
             svc("c", dep("optional_all", "none", B)), svc("d"))
    assert states(engine) == {"a": "online", "b": "disabled", "c": "online", "d": "online"}
    engine.set_milestone(C)
    await settle(engine, procs)
    assert states(engine) == {"a": "disabled", "b": "disabled", "c": "online", "d": "disabled"}
    engine.enable([B], temporary=False)
    await settle(engine, procs)
    assert states(engine) == {"a": "online", "b": "online", "c": "online", "d": "disabled"}, \
        "enabled, b joins the milestone and brings a with it (eval_subgraph())"


async def test_a_restart_a_dependency_caused_forgets_the_restart_history(rig):
    """STOP_RESET (restarter.c): a dependent stopped for a dependency's restart or refresh has its start
    times reset, so its own earlier deaths do not add up with later ones to "restarting too quickly"."""
    engine, procs, _ = rig
    await up(engine, procs, svc("a"), svc("b", dep("require_all", "refresh", A), extra="[restart]\nlimit = 2"))
    procs.exit(B)
    await settle(engine, procs)
    engine.refresh([A])
    await settle(engine, procs)
    procs.exit(B)
    await settle(engine, procs)
    assert states(engine) == {"a": "online", "b": "online"}
    procs.exit(B)
    await settle(engine, procs)
    assert states(engine) == {"a": "online", "b": "maintenance"}, "two deaths of its own in a row still count"


async def test_refreshing_one_instance_restarts_only_that_instances_dependents(rig):
    """svcadm refresh names instances: the service's other instances are not refreshed, so the
    restart_on=refresh dependents of those do not restart."""
    engine, procs, _ = rig
    await up(engine, procs, svc("a", extra="[instances.default]\n[instances.b]"),
             svc("c", dep("require_all", "refresh", "svc:/t/a:b")))
    engine.refresh([A])
    await settle(engine, procs)
    assert ("stop", C) not in procs.calls
    engine.refresh(["svc:/t/a:b"])
    await settle(engine, procs)
    assert procs.calls.count(("start", C)) == 2 and states(engine)["c"] == "online"


def stops(procs) -> list[str]:
    return [f.split("/")[-1].split(":")[0] for what, f in procs.calls if what == "stop"]


async def test_disabling_a_dependency_stops_its_dependents_first(rig):
    """graph_enable_by_vertex(): an administrator's disable stops the dependents that go down with it
    (require_* with restart_on restart or refresh), leaves first, before the instance itself."""
    engine, procs, _ = rig
    await up(engine, procs, svc("a"), svc("b", dep("require_all", "restart", A)),
             svc("c", dep("require_all", "refresh", B)), svc("d", dep("require_all", "error", A)))
    engine.disable([A], temporary=False)
    await settle(engine, procs)
    assert stops(procs) == ["c", "b", "a"]
    assert states(engine) == {"a": "disabled", "b": "offline", "c": "offline", "d": "online"}, \
        "a disable is no error: a restart_on=error dependent stays up"


async def test_a_require_any_dependent_stopped_for_a_disable_starts_again_when_its_group_is_met(rig):
    engine, procs, _ = rig
    await up(engine, procs, svc("a"), svc("b"), svc("c", dep("require_any", "restart", A, B)))
    engine.disable([A], temporary=True)
    await settle(engine, procs)
    assert stops(procs) == ["c", "a"]
    assert states(engine) == {"a": "disabled", "b": "online", "c": "online"}


async def test_a_milestone_stops_what_it_does_not_need_dependents_first(rig):
    """dgraph_set_milestone() disables the leaves of what lies outside the milestone first, whatever the
    grouping (but exclude_all) and restart_on."""
    engine, procs, _ = rig
    await up(engine, procs, svc("a"), svc("b", dep("require_all", "none", A)), svc("c", dep("optional_all", "none", B)))
    engine.set_milestone("none")
    await settle(engine, procs)
    assert stops(procs) == ["c", "b", "a"]
    assert states(engine) == {"a": "disabled", "b": "disabled", "c": "disabled"}


async def test_a_milestone_keeps_the_order_through_an_offline_instance_it_disables_at_once(rig):
    """Found by the model: c is offline for good (its ghost never comes) and d needs it only optionally, so
    d runs. Under a milestone c, not a leaf while d is up (is_nonsubgraph_leaf(): up_state() counts offline),
    keeps b and a waiting for d; the engine disables c at once, and still stops d before b and a."""
    engine, procs, _ = rig
    await up(engine, procs, svc("a"), svc("b", dep("require_all", "none", A)),
             svc("c", dep("require_all", "none", "svc:/t/ghost", name="g"), dep("require_all", "none", B)),
             svc("d", dep("optional_all", "none", C)))
    assert states(engine) == {"a": "online", "b": "online", "c": "offline", "d": "online"}
    engine.set_milestone("none")
    await settle(engine, procs)
    assert stops(procs) == ["d", "b", "a"]
    assert states(engine) == {"a": "disabled", "b": "disabled", "c": "disabled", "d": "disabled"}


async def test_a_disable_stops_a_dependent_reached_through_an_offline_instance(rig):
    """mark_subtree() walks through an enabled offline instance: b waits for its ghost, c needs b or d
    (restart_on restart), so the disable of a, which b needs, stops c first though no stop reaches c from
    b; c then stays offline, its require_all of a unmet (the campaign found the model wrong here)."""
    engine, procs, _ = rig
    await up(engine, procs, svc("a"), svc("b", dep("require_all", "restart", "svc:/t/ghost", A)), svc("d"),
             svc("c", dep("require_any", "restart", B, D), dep("require_all", "none", A, name="e")))
    assert states(engine) == {"a": "online", "b": "offline", "c": "online", "d": "online"}
    engine.disable([A], temporary=False)
    await settle(engine, procs)
    assert stops(procs) == ["c", "a"]
    assert states(engine) == {"a": "disabled", "b": "offline", "c": "offline", "d": "online"}


async def test_an_optional_all_dependent_starts_when_an_exclusion_goes_to_a_running_member(rig):
    """exclude_all_satisfied(): the first member neither disabled nor in maintenance decides. b excludes a
    (offline: b may still start) and d (running); a's disable leaves the decision to d, so b can never
    start and c, which needs b only optionally, must start though b's state did not change (the
    campaign found c left waiting: only a change of a's dependents' states was looked at)."""
    engine, procs, _ = rig
    await up(engine, procs, svc("a", dep("require_all", "none", "svc:/t/ghost")), svc("d"),
             svc("b", dep("exclude_all", "none", A, D)), svc("c", dep("optional_all", "none", B)))
    assert states(engine) == {"a": "offline", "b": "offline", "c": "offline", "d": "online"}
    engine.disable([A], temporary=False)
    await settle(engine, procs)
    assert states(engine) == {"a": "disabled", "b": "offline", "c": "online", "d": "online"}


async def test_an_exclude_all_dependency_imported_later_stops_its_dependent_when_its_target_comes_up(rig):
    """An instance coming up stops its running exclude_all dependents; whether a graph has any such dependency
    is looked at once per graph, and a graph built by a later import (the first with one) is looked at anew."""
    engine, procs, _ = rig
    await up(engine, procs, svc("a", extra="enabled = false"), svc("b"))  # b comes up: a graph without exclude_all
    assert states(engine) == {"a": "disabled", "b": "online"}
    manifests(engine, svc("c", dep("exclude_all", "none", A)))
    await settle(engine, procs)
    assert states(engine)["c"] == "online"  # a is not running
    engine.enable([A], temporary=False)
    await settle(engine, procs)
    assert states(engine) == {"a": "online", "b": "online", "c": "offline"}
