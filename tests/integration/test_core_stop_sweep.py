"""The last sweep of a clean exit (``Backend.close``), on real cgroups and real processes: a process that
ends by itself within ``ENDING_WAIT`` (as one killed by its own cut-short start does, once scheduled) is
not a stray; one still there after it is killed and logged; every group and the daemon's own go."""

from __future__ import annotations

import logging
import os
import subprocess
import time

import pytest

from svcmgr import backend as backend_mod
from svcmgr.backend import detect_backend


def _into(contract_group: str, argv: list[str]) -> subprocess.Popen:
    p = subprocess.Popen(argv)
    with open(os.path.join(contract_group, "cgroup.procs"), "w") as f:
        f.write(str(p.pid))
    return p


@pytest.fixture
def backend():
    b = detect_backend(f"sweeptest-{os.getpid()}")
    if b.kind != "cgroup":
        pytest.skip("no writable cgroup v2 here")
    yield b
    b.close()


def test_an_ending_process_is_waited_for_and_a_stray_is_killed_and_named(backend, caplog):
    ending = backend.create(1, "test/ending")
    stray = backend.create(2, "test/stray")
    quiet = backend.create(3, "test/quiet")
    assert ending.cgroup and stray.cgroup and quiet.cgroup
    short = _into(ending.cgroup, ["sleep", "0.15"])
    long = _into(stray.cgroup, ["sleep", "1000"])
    try:
        with caplog.at_level(logging.WARNING, logger="svcmgr.backend"):
            began = time.monotonic()
            backend.close()
            took = time.monotonic() - began
        long.wait(5)
        short.wait(5)
    finally:
        for p in (short, long):
            if p.poll() is None:
                p.kill()
                p.wait()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert stray.cgroup in warnings[0] and str(long.pid) in warnings[0]
    assert long.returncode == -9 and short.returncode == 0
    assert took >= backend_mod.ENDING_WAIT  # the stray was given the wait before it was called one
    assert not any(os.path.exists(g) for g in (ending.cgroup, stray.cgroup, quiet.cgroup, backend.base))


def test_nothing_busy_means_no_wait(backend, caplog):
    for n in range(5):
        backend.create(n + 1, f"test/idle{n}")
    with caplog.at_level(logging.WARNING, logger="svcmgr.backend"):
        began = time.monotonic()
        backend.close()
        took = time.monotonic() - began
    assert took < backend_mod.ENDING_WAIT
    assert not caplog.records
    assert not os.path.exists(backend.base)


def test_a_probe_group_left_by_a_daemon_that_died_does_not_cost_the_cgroup_mode():
    first = detect_backend(f"sweeptest-{os.getpid()}")
    if first.kind != "cgroup":
        pytest.skip("no writable cgroup v2 here")
    assert first.base is not None
    os.mkdir(os.path.join(first.base, ".probe"))  # as a daemon killed between its probe's mkdir and rmdir leaves it
    again = detect_backend(f"sweeptest-{os.getpid()}")
    try:
        assert again.kind == "cgroup" and again.base == first.base
        assert not os.path.exists(os.path.join(first.base, ".probe"))
    finally:
        again.close()
    assert not os.path.exists(first.base)
