"""``list`` as the control socket sends it (``control.Listing``, what svcs, the dashboard and every poller
read): byte for byte what summarizing and encoding every instance afresh gives, for every field set, and
never stale: each change is in the very next listing, made with no turn of the loop between the two."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
from typing import Any

import pytest

from svcmgr.api import Api, Caller, Encoded
from svcmgr.contract import Contract
from svcmgr.control import SUMMARY, Control, instance_summary
from svcmgr.states import State

from fakes import manifests, settle

A, B, C = "svc:/l/a:default", "svc:/l/b:default", "svc:/l/c:default"
ROOT = Caller(1, 0, 0, frozenset({0}), True)

#: Every field set a client of the project sends (svcs' columns with -a, -p, -v, -o; the bench's poller;
#: the dashboard and --json: none), and the rest of the fields, and none at all.
FIELD_SETS: list[list[str] | None] = [
    None,
    ["fmri", "state", "nstate", "pids"],
    ["enabled", "enabled_persistent", "fmri", "nstate", "state", "stime_epoch"],
    ["enabled", "enabled_persistent", "fmri", "nstate", "pids", "state", "stime_epoch"],
    ["ctid", "enabled", "enabled_persistent", "fmri", "nstate", "state", "stime_epoch"],
    ["stime", "svc", "inst", "desc", "temporary", "comment", "reason", "restarts", "ctid", "pids"],
    ["state", "fmri", "state"],
    [],
]


def svc(name: str, extra: str = "") -> str:
    return f'name = "{name}"\ndescription = "the {name} service"\n{extra}\n[methods.start]\nexec = ["daemon"]\n'


@pytest.fixture
async def rig(fake_engine, tmp_path):
    engine, procs, _ = fake_engine
    manifests(engine, svc("l/a"), svc("l/b"), svc("l/c", "enabled = false"))
    engine.boot()
    await settle(engine, procs)
    control = Control(engine, Api(str(tmp_path / "unused.sock")), node="t1", root=None, backend="pgid")
    control.listing.KEPT = len(FIELD_SETS)  # every field set below is kept from one listing to the next
    return engine, procs, control


def afresh(engine, fields: list[str] | None, names: list[str] | None = None) -> str:
    """What ``list`` said before Listing: each instance's summary built and the whole list encoded."""
    fs = None if fields is None else tuple(dict.fromkeys(fields))
    insts = [engine.instances[f] for f in (names or engine.instances)]
    return json.dumps([instance_summary(i, None, fs) for i in insts], default=str)


async def listed(control: Control, **req: Any) -> str:
    out = await control.op_list(ROOT, {"op": "list", **req})
    assert isinstance(out, Encoded)
    return out.text


async def check_every_field_set(control: Control, engine) -> None:
    for fields in FIELD_SETS:
        req = {} if fields is None else {"fields": fields}
        assert await listed(control, **req) == afresh(engine, fields), fields
        assert await listed(control, fmris=[B], **req) == afresh(engine, fields, [B]), fields


async def test_every_change_is_in_the_next_listing_byte_for_byte(rig):
    engine, procs, control = rig
    a, b, c = engine.instances[A], engine.instances[B], engine.instances[C]
    await check_every_field_set(control, engine)
    await check_every_field_set(control, engine)  # now from what the first listing kept
    operations = [
        lambda: engine.disable([A], temporary=True),
        lambda: engine.enable([A], temporary=True),
        lambda: engine.disable([B], temporary=False, comment="taken down for the test"),
        lambda: engine.enable([B], temporary=False),
        lambda: engine.mark([A], "maintenance", temporary=False, immediate=True),
        lambda: engine.clear([A]),
        lambda: procs.kill(B, signal.SIGKILL),
    ]
    for operation in operations:
        operation()
        await check_every_field_set(control, engine)  # at once: no turn of the loop between the two
        await settle(engine, procs)
        await check_every_field_set(control, engine)
    # each thing a field reads, changed alone (the engine changes some only together with others), then back
    pokes = [(b, "state", State.DEGRADED), (b, "next_state", State.ONLINE), (c, "enabled_set", True),
             (c, "enabled_temp", True), (c, "comment", "a comment"), (b, "restarts", b.restarts + 1),
             (b, "reason", "Said otherwise."), (b, "stime", b.stime + 1.5),
             (b, "config", dataclasses.replace(b.config, description="described anew")),
             (a, "contract", Contract(7, "pgid", "t.7", members={4242}))]
    for inst, attr, value in pokes:
        was = getattr(inst, attr)
        setattr(inst, attr, value)
        await check_every_field_set(control, engine)
        setattr(inst, attr, was)
        await check_every_field_set(control, engine)
    a.contract = Contract(7, "pgid", "t.7", members={4242})
    for change in (lambda m: m.add(4243), lambda m: m.discard(4242), lambda m: (m.discard(4243), m.add(4244))):
        change(a.contract.members)  # in place, as the restarter's notes do; the last as many as before
        await check_every_field_set(control, engine)
    a.contract = Contract(8, "pgid", "t.8", members=set(a.contract.members))  # a new one, the same processes
    await check_every_field_set(control, engine)


async def test_a_listing_with_live_pids_and_the_dashboard_get_the_same(rig):
    engine, _, control = rig
    assert await listed(control, pids=True) == afresh(engine, None)
    api = Api("unused")
    Control(engine, api, node="t1", root=None, backend="pgid")
    for fields in FIELD_SETS:
        args = {} if fields is None else {"fields": fields}
        assert await api.call(ROOT, "list", **args) == json.loads(afresh(engine, fields))


async def test_the_reply_on_the_socket_is_what_json_makes_of_it(tmp_path):
    """An Encoded result is spliced into the reply as ``json.dumps`` would have written the value."""
    value = [{"fmri": "svc:/x:default", "state": "online", "nstate": None, "pids": [1, 2], "stime_epoch": 1.5,
              "desc": "caf\u00e9 \"quoted\""}]
    api = Api(str(tmp_path / "s.sock"))
    api.register("plain", lambda caller, req: _value(value))
    api.register("encoded", lambda caller, req: _value(Encoded(json.dumps(value, default=str))))
    await api.start()
    try:
        replies = [await _ask(api.path, op) for op in ("plain", "encoded")]
    finally:
        await api.close()
    assert replies[0] == replies[1] == (json.dumps({"ok": True, "result": value}) + "\n").encode()


async def _value(v: Any) -> Any:
    return v


async def _ask(path: str, op: str) -> bytes:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(json.dumps({"op": op}).encode() + b"\n")
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return data


def test_every_field_is_read_from_what_listing_compares():
    """A new field of SUMMARY must read only what ``control.Listing.encode`` compares, or Listing could say it stale:
    add what it reads there, then here."""
    assert set(SUMMARY) == {"fmri", "state", "nstate", "stime", "stime_epoch", "svc", "inst", "desc", "ctid",
                            "enabled", "enabled_persistent", "temporary", "comment", "pids", "reason", "restarts"}
