"""Kernel log lines (as this kernel writes them) become ereports; a followed file may be truncated or replaced."""

import asyncio

from fault.sources.kmsg import KmsgParser, KmsgSource, disk_of

# Lines as /dev/kmsg gave them on this machine for a real OOM kill in a memory cgroup.
OOM_INFO = ("6,454,1886401469,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
            "oom_memcg=/process_api/oomtest,task_memcg=/process_api/oomtest,task=python3,pid=19920,uid=0")
OOM_KILL = ("3,455,1886401494,-;Memory cgroup out of memory: Killed process 19920 (python3) total-vm:221368kB, "
            "anon-rss:30336kB, file-rss:6592kB, shmem-rss:0kB, UID:0 pgtables:128kB oom_score_adj:0")


def test_oom_kill_with_its_cgroup_maps_to_the_owning_service():
    seen = []

    def resolve(pid, memcg):
        seen.append((pid, memcg))
        return "svc:/site/db:default" if pid == 19920 else None

    p = KmsgParser(resolve)
    assert p.parse(OOM_INFO) == []
    ((cls, res, payload),) = p.parse(OOM_KILL)
    assert cls == "ereport.kernel.oom" and res == "svc:/site/db:default"
    assert seen == [(19920, "/process_api/oomtest")]
    assert payload["pid"] == 19920 and payload["comm"] == "python3" and payload["anon_rss_kb"] == 30336
    assert payload["scope"] == "cgroup" and payload["constraint"] == "CONSTRAINT_MEMCG"


def test_oom_kill_of_an_unknown_process_names_the_program():
    p = KmsgParser(lambda pid, memcg: None)
    ((_, res, payload),) = p.parse("[ 123.456789] Out of memory: Killed process 77 (my prog) total-vm:1kB, "
                                   "anon-rss:2kB, file-rss:3kB, shmem-rss:0kB")
    assert res == "sw:///my_prog" and payload["scope"] == "global"


def test_block_layer_io_errors_count_for_the_whole_disk():
    p = KmsgParser()
    lines = [
        "3,1,1,-;I/O error, dev sda, sector 123456 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2",
        "blk_update_request: I/O error, dev sdb3, sector 2048 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 0",
        "[ 5.000000] critical medium error, dev nvme0n1p2, sector 99 op 0x0:(READ) flags 0x0",
        "Buffer I/O error on dev sda1, logical block 15, async page read",  # the same failure seen again
        " SUBSYSTEM=block",  # a continuation line
        "EXT4-fs (sda1): mounted filesystem",
    ]
    got = [x for line in lines for x in p.parse(line)]
    assert [(c, r) for c, r, _ in got] == [("ereport.io.disk.error", "dev:///dev/sda"),
                                          ("ereport.io.disk.error", "dev:///dev/sdb"),
                                          ("ereport.io.disk.error", "dev:///dev/nvme0n1")]
    assert got[0][2]["op"] == "READ" and got[1][2]["device"] == "sdb3" and got[2][2]["kind"] == "critical medium"


def test_disk_names():
    assert [disk_of(d) for d in ("sda", "sda12", "vdb1", "nvme0n1p3", "mmcblk0p1", "dm-0", "loop4")] == \
        ["sda", "sda", "vdb", "nvme0n1", "mmcblk0", "dm-0", "loop4"]


async def test_a_followed_file_is_read_from_its_end_and_reread_when_replaced(tmp_path):
    path = tmp_path / "kern.log"
    path.write_text("I/O error, dev sdz, sector 1\n")  # already there: history, not news
    got = []
    src = KmsgSource(str(path), lambda c, r, p: got.append((c, r, p["sector"])), poll=0.01)
    task = asyncio.create_task(src.run())
    try:
        await asyncio.sleep(0.05)
        with path.open("a") as f:
            f.write("I/O error, dev sdz, sector 2\nI/O error, dev sdz, sec")
        await asyncio.sleep(0.05)
        with path.open("a") as f:
            f.write("tor 3\n")
        for _ in range(100):
            if len(got) >= 2:
                break
            await asyncio.sleep(0.01)
        path.unlink()
        path.write_text("I/O error, dev sdy, sector 4\n")  # rotated: a new file is read from its start
        for _ in range(200):
            if len(got) >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert got == [("ereport.io.disk.error", "dev:///dev/sdz", 2), ("ereport.io.disk.error", "dev:///dev/sdz", 3),
                   ("ereport.io.disk.error", "dev:///dev/sdy", 4)]
    assert src.counters["lines"] == 3
