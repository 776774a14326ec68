"""svcadm's actions on a mix of instances the caller may and may not act on (``control.Operations._permitted``):
the permitted ones are acted on as before, each other one is left alone without a trace (no event, no state
or setting changed) and named in the reply's ``refused`` with why; a request that permits none is refused."""

from __future__ import annotations

from typing import Any

import pytest

from svcmgr.api import Api, ApiError, Caller
from svcmgr.control import Control
from svcmgr.states import State

from fakes import manifests, settle

MINE, THEIRS, TOP, LOW = "svc:/g/mine:default", "svc:/g/theirs:default", "svc:/h/top:default", "svc:/h/low:default"
NOBODY = Caller(1, 65534, 65534, frozenset({65534}), False)
GRANT = '[authorizations.{}]\nusers = ["65534"]\n'


def svc(name: str, extra: str = "", grant: str | None = "action") -> str:
    return (f'name = "{name}"\n{extra}\n[methods.start]\nexec = ["daemon"]\n'
            + (GRANT.format(grant) if grant else ""))


@pytest.fixture
async def rig(fake_engine, tmp_path):
    engine, procs, _ = fake_engine
    manifests(engine, svc("g/mine"), svc("g/theirs", grant=None),
              svc("h/top", 'enabled = false\n[[dependencies]]\nname = "low"\nfmris = ["svc:/h/low:default"]',
                  grant="value"),
              svc("h/low", "enabled = false", grant=None))
    engine.boot()
    await settle(engine, procs)
    control = Control(engine, Api(str(tmp_path / "unused.sock")), node="t1", root=None, backend="pgid")
    events: list[Any] = []
    engine.bus.listen(events.append)
    return engine, procs, control, events


def snapshot(inst) -> tuple:
    return (inst.phase, inst.state, inst.enabled_set, inst.enabled_temp, inst.comment, dict(inst.marks), inst.stime,
            inst.restarts, inst.reason)


async def act(rig, op: str, **req: Any) -> dict[str, Any]:
    engine, procs, control, _ = rig
    out = await getattr(control, f"op_{op}")(NOBODY, {"op": op, **req})
    await settle(engine, procs)
    return out


@pytest.mark.parametrize("op,req", [
    ("restart", {}), ("refresh", {}), ("mark", {"state": "maintenance"}), ("mark", {"state": "degraded"}),
    ("disable", {"temporary": True}), ("clear", {}),
])
async def test_an_action_on_a_glob_acts_on_the_permitted_and_leaves_the_others_untouched(rig, op, req):
    engine, _, _, events = rig
    before = snapshot(engine.instances[THEIRS])
    out = await act(rig, op, fmris=["svc:/g/*"], **req)
    assert out["refused"] == [{"fmri": THEIRS, "reason": (
        f"permission denied: uid 65534 ({NOBODY.name}) may not {op} {THEIRS}: needs root or a grant in the "
        "service's [authorizations.action] or [authorizations.value]")}]
    assert THEIRS not in out["fmris"] and THEIRS not in out.get("skipped", [])
    assert snapshot(engine.instances[THEIRS]) == before
    assert not [e for e in events if e.resource == THEIRS], "an event about an instance the caller may not touch"
    if op != "clear":
        assert out["fmris"] == [MINE]


async def test_the_permitted_instance_is_acted_on_as_before(rig):
    engine, _, _, _ = rig
    await act(rig, "disable", fmris=["svc:/g/*"], temporary=True)
    assert engine.instances[MINE].state == State.DISABLED and engine.instances[THEIRS].state == State.ONLINE
    out = await act(rig, "enable", fmris=["svc:/g/*"], temporary=True)
    assert out["fmris"] == [MINE] and [s for s in out["steps"] if "refused" in s] == [
        {"refused": THEIRS, "reason": out["refused"][0]["reason"]}]
    assert engine.instances[MINE].state == State.ONLINE


@pytest.mark.parametrize("op,req", [
    ("restart", {}), ("refresh", {}), ("mark", {"state": "maintenance"}), ("disable", {}), ("enable", {}),
    ("clear", {}), ("enable", {"recursive": True}),
])
async def test_a_request_that_permits_nothing_is_refused_as_a_whole(rig, op, req):
    engine, _, control, events = rig
    before = {f: snapshot(i) for f, i in engine.instances.items()}
    with pytest.raises(ApiError) as e:
        await getattr(control, f"op_{op}")(NOBODY, {"op": op, "fmris": [THEIRS, LOW], **req})
    assert e.value.code == 1
    lines = str(e.value).splitlines()  # one per refused instance, the first as the whole refusal said before
    assert [line.startswith(f"permission denied: uid 65534 ({NOBODY.name}) may not {op} {f}: needs root")
            for line, f in zip(lines, (THEIRS, LOW), strict=False)] == [True, True] and len(lines) == 2
    assert {f: snapshot(i) for f, i in engine.instances.items()} == before and not events


async def test_recursive_enable_never_enables_a_dependency_the_caller_may_not(rig):
    engine, _, _, events = rig
    before = snapshot(engine.instances[LOW])
    out = await act(rig, "enable", fmris=[TOP], recursive=True)
    assert out["fmris"] == [TOP]
    assert out["steps"] == [{"enable": TOP}, {"refused": LOW, "reason": out["refused"][0]["reason"]}]
    assert out["refused"][0]["fmri"] == LOW and "may not enable svc:/h/low:default" in out["refused"][0]["reason"]
    assert "[authorizations.value]" in out["refused"][0]["reason"]
    assert engine.instances[TOP].enabled and snapshot(engine.instances[LOW]) == before
    assert not [e for e in events if e.resource == LOW]
