"""The notify agent publishes every change of a case on the bus, as the MQTT bridge, metrics and VRRP expect."""

from fault.agents import NotifyAgent
from fault.cases import CaseEv, CaseStore
from fault.diagnosis import Diagnosis
from fault.events import validate
from fault.knowledge import load_knowledge
from fault.rules import SHIPPED_RULES, load_rules
from fault.topology import StaticTopology
from svcmgr.bus import Bus

KB, _ = load_knowledge()
RULES, _ = load_rules([SHIPPED_RULES], KB)
DB = "svc:/site/db:default"


def test_list_events_carry_the_case():
    bus = Bus("n1")
    sub = bus.subscribe("list", "fault")
    d = Diagnosis(RULES, CaseStore(None), StaticTopology({"svc:/site/app:default": [DB]}), node="n1")
    agent = NotifyAgent(bus)
    changes = []
    for t in range(3):
        changes += d.feed(validate("ereport.svc.exit.signal", resource=DB, payload={"pid": t, "signal": 9}), t)
    changes += d.feed(validate("ereport.svc.exit.code", resource="svc:/site/app:default", payload={"code": 1}), 3)
    (case,) = [c for c in d.store.cases.values()]
    changes += d.close(case, CaseEv.REPAIR, None, "fixed")
    for ch in changes:
        agent.apply(ch)
    got = []
    while (ev := sub.get_nowait()) is not None:
        got.append(ev)
    assert [e.cls for e in got] == ["list.suspect", "fault.svc.flapping", "list.updated", "list.repaired",
                                    "list.resolved"]
    suspect = got[0]
    assert suspect.resource == "" and suspect.node == "n1"
    for key in ("uuid", "class", "severity", "msgid", "suspects", "affected", "state"):
        assert key in suspect.data
    assert suspect.data["state"] == "solved" and suspect.data["severity"] == "major"
    assert suspect.data["suspects"][0]["resource"] == DB and suspect.data["affected"] == [DB]
    assert got[1].resource == DB and got[1].data["uuid"] == case.uuid
    assert got[2].data["affected"] == [DB, "svc:/site/app:default"]
    assert got[3].data["state"] == "repaired" and got[4].data["state"] == "resolved"
    assert {e.data["uuid"] for e in got} == {case.uuid}
