"""The monitor's reading of a process's end: which contract it belonged to decides what it means."""

import asyncio
import signal
import time

from svcmgr.contract import Contract
from svcmgr.instance import Instance
from svcmgr.manifest import parse_service
from svcmgr.monitor import Monitor
from svcmgr.policy import RestartHistory
from svcmgr.process import ExitStatus
from svcmgr.spec import resolve_instance


class Bus:
    def __init__(self):
        self.sent = []

    def emit(self, cls, resource, **payload):
        self.sent.append((cls, resource))


class Reaper:
    on_orphan = None

    def is_child(self, pid):
        return True


def _instance():
    cfg = resolve_instance(parse_service({"name": "site/app", "methods": {"start": {"exec": "sleep 1000"}}}),
                           "default")
    return Instance(str(cfg.fmri), cfg, RestartHistory(5, 600, time.monotonic))


def _contract(ctid, pid):
    c = Contract(ctid, "cgroup", f"m{ctid}", cgroup=f"/nonexistent/svcmgr-test/{ctid}")  # read as empty
    c.started(pid)
    return c


async def test_the_end_of_a_stopped_contracts_process_reaped_after_the_next_start_is_no_death_of_it():
    """The restarter stopped the instance (SIGTERM) and saw its group empty; the stopped process's end is
    reaped only after the instance started again: no ereport, no report of the new contract's end."""
    loop = asyncio.get_running_loop()
    bus, reports = Bus(), []
    monitor = Monitor(Reaper(), bus, lambda inst, kind, detail, status: reports.append((kind, detail)))
    inst = _instance()
    old_main, new_main = loop.create_future(), loop.create_future()
    inst.contract = _contract(1, 100)
    monitor.watch(inst, old_main)
    # the restarter's stop: unwatched, signalled, emptied, released, and the contract let go
    inst.stopping = True
    monitor.unwatch(inst)
    monitor.release(inst)
    inst.contract, inst.stopping = None, False
    # started again
    inst.contract = _contract(2, 200)
    monitor.watch(inst, new_main)
    old_main.set_result(ExitStatus(100, signal.SIGTERM))  # a raw wait status: killed by SIGTERM
    await asyncio.sleep(0)
    assert bus.sent == [] and reports == [] and inst.monitoring
    # the new contract's own process dying is a death
    new_main.set_result(ExitStatus(200, signal.SIGKILL))
    await asyncio.sleep(0)
    assert bus.sent == [("ereport.svc.exit.signal", inst.fmri)]
    assert reports == [("error", "died on Killed (9)")]
