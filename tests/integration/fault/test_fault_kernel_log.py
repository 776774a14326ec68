"""The kernel log: a followed file, and a real OOM kill of a service's process read from /dev/kmsg."""

import contextlib
import os
import time
import uuid

import pytest

from fault_helpers import cases, child_service, errlog, fault_config, memory_cgroup_v1, wait_until

OOM_SVC = "svc:/site/hog:default"


def test_disk_errors_in_a_followed_kernel_log_become_a_disk_case(daemon):
    log = daemon.root / "kern.log"
    log.write_text("[    1.000000] I/O error, dev sdq, sector 1 op 0x0:(READ) flags 0x0\n")  # old news
    daemon.start("--config", fault_config(daemon, f'[fault]\nkmsg = "{log}"\n'))
    wait_until(lambda: daemon.call("fm.stat")["kmsg"] == str(log), 10)
    with log.open("a") as f:
        for i in range(2, 7):
            f.write(f"[  {i}.000000] blk_update_request: I/O error, dev sdq{i % 2 + 1}, sector {i * 8} "
                    "op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 0\n")
            f.write(f"[  {i}.000001] Buffer I/O error on dev sdq1, logical block {i}, lost async page write\n")
    (case,) = wait_until(lambda: cases(daemon), 15, what="the disk case")
    assert case["class"] == "fault.io.disk.degraded" and case["suspects"][0]["resource"] == "dev:///dev/sdq"
    entries = errlog(daemon, "ereport.io.disk.error")
    assert [e["payload"]["sector"] for e in entries] == [16, 24, 32, 40, 48]
    assert {e["source"] for e in entries} == {"kmsg"}
    assert entries[0]["payload"]["op"] == "WRITE"


@pytest.fixture
def memcg():
    base = memory_cgroup_v1()
    if base is None or not os.access("/dev/kmsg", os.R_OK):
        pytest.skip("needs a writable cgroup v1 memory controller and a readable /dev/kmsg (root)")
    cg = base / f"svcmgr-oom-{uuid.uuid4().hex[:8]}"
    cg.mkdir()
    (cg / "memory.limit_in_bytes").write_text(str(32 * 1024 * 1024))
    yield cg
    for _ in range(100):
        with contextlib.suppress(OSError):
            cg.rmdir()
            return
        time.sleep(0.1)


def test_a_real_oom_kill_of_a_service_is_diagnosed_on_that_service(daemon, memcg):
    marker = daemon.root / "hogged"
    # The service's process joins a memory cgroup limited to 32 MiB and, the first time, asks for 256 MiB:
    # the kernel's OOM killer kills it (a real kernel log record). Restarted, it just sleeps.
    script = (f"import os, time\nopen('{memcg}/cgroup.procs', 'w').write(str(os.getpid()))\n"
              f"if not os.path.exists('{marker}'):\n    open('{marker}', 'w').close()\n"
              "    x = bytearray(256 * 1024 * 1024)\n    x[::4096] = b'x' * len(x[::4096])\n"
              "time.sleep(100000)\n")
    daemon.manifest("hog.toml", child_service("site/hog", script))
    daemon.start("--config", fault_config(daemon, '[fault]\nkmsg = "/dev/kmsg"\n'))
    (e,) = wait_until(lambda: errlog(daemon, "ereport.kernel.oom"), 30, what="the OOM kill in the kernel log")
    assert e["resource"] == OOM_SVC and e["source"] == "kmsg"
    assert e["payload"]["scope"] == "cgroup" and e["payload"]["comm"].startswith("python")
    assert e["payload"]["memcg"].endswith(memcg.name)
    case = wait_until(lambda: [c for c in cases(daemon) if c["class"] == "fault.svc.oom"], 15)[0]
    assert case["suspects"][0]["resource"] == OOM_SVC and case["msgid"] == "SVC-8000-7T"
    kills = errlog(daemon, "ereport.svc.exit.signal")
    assert kills and kills[0]["payload"]["signal"] == 9 and kills[0]["payload"]["pid"] == e["payload"]["pid"]
    daemon.wait_state(OOM_SVC, "online")
