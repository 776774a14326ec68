"""The filesystem under --root full (a small tmpfs of the test's own): the daemon keeps running, refuses what it
cannot record with the reason, loses nothing it acknowledged, and writes again once there is space."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from campaign_world import fill, small_disk

from svctest import Daemon, _alive_marked, remove_cgroups, wait_until

SERVICE = 'name = "full/s{i}"\nduration = "child"\n[methods.start]\nexec = "exec sleep 1000"\n'


@pytest.fixture
def full_daemon(tmp_path: Path) -> Iterator[Daemon]:
    with small_disk(16) as (root, why):
        if why:
            pytest.skip(why)
        env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path / "xdg"), PYTHONUNBUFFERED="1")
        env.pop("SVCMGR_ROOT", None)
        env.pop("NOTIFY_SOCKET", None)
        d = Daemon(root, env)
        d.output = tmp_path / "daemon.out"  # not on the disk that fills up
        for i in range(3):
            d.manifest(f"s{i}.toml", SERVICE.format(i=i))
        try:
            yield d
        finally:
            (root / "ballast").unlink(missing_ok=True)
            d.stop()
            left = _alive_marked(root)
            for p in left:
                os.kill(p, 9)
            remove_cgroups(root)
            assert not left, f"processes left behind: {left}"


def test_a_full_disk_refuses_persistent_changes_with_the_reason_and_keeps_everything_else(full_daemon):
    d = full_daemon
    d.start()
    d.wait_state("svc:/full/s2:default", "online")
    fill(d.root / "ballast")
    r = d.cli("svcadm", "disable", "s0")
    assert r.returncode == 1 and "cannot write the repository" in r.stderr and "nothing was changed" in r.stderr, \
        r.stderr
    assert d.state("svc:/full/s0:default") == "online"  # refused means not done
    d.cli("svcadm", "disable", "-t", "s1", check=True)  # temporary: nothing to write, so it is done
    d.wait_state("svc:/full/s1:default", "disabled")
    assert "database or disk is full" in d.call("ping")["unwritable"]
    assert "cannot write the repository" in d.log_text()
    (d.root / "ballast").unlink()
    wait_until(lambda: d.call("ping")["unwritable"] is None, 10, what="the repository written again")
    d.cli("svcadm", "disable", "s0", check=True)
    d.kill9()
    d.start(manifests=False)
    d.wait_state("svc:/full/s0:default", "disabled")
    d.wait_state("svc:/full/s1:default", "online")  # the temporary disable ended with the daemon


def test_a_case_opened_while_the_disk_is_full_is_kept(full_daemon):
    """Found by SVCMGR_CAMPAIGN_SEED=2 (cgroup, round 2): a case solved while the repository could not be written
    was never written afterwards, and a daemon killed later had forgotten it."""
    d = full_daemon
    d.start()
    fill(d.root / "ballast")
    d.call("fm.inject", ereports=[{"class": "ereport.io.disk.error", "resource": "dev:///full0"}] * 5)
    (uuid,) = wait_until(lambda: [c["uuid"] for c in d.call("fm.faulty")], 10, what="the case")
    (d.root / "ballast").unlink()

    def written() -> bool:  # the fault manager's next writes (it tries every 0.25 s; 3 s was a guess under load)
        st = d.call("fm.stat")
        return st["diagnosis"]["unsaved"] == 0 and st["errlog"]["pending"] == 0

    wait_until(written, 30, what="the fault manager to write what waited for the disk")
    d.kill9()
    d.start(manifests=False)
    assert [c["uuid"] for c in d.call("fm.faulty")] == [uuid]
