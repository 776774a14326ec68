"""A damaged repository is refused at start with the file, what is wrong and the ways out, and left as it is;
never started afresh, which would forget every service and setting without a word."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from svcmgr.daemon import EXIT_DAMAGED

DAMAGE = {
    "garbage": lambda good: bytes(b ^ 0x5A for b in good),
    "truncated": lambda good: good[:len(good) // 2],
    "empty": lambda good: b"",
    "header": lambda good: b"\0" * 100 + good[100:],
}


def _manifests(daemon, n: int = 5) -> None:
    for i in range(n):
        daemon.manifest(f"s{i}.toml", f'name = "dmg/s{i}"\nduration = "child"\n[methods.start]\nexec = "sleep 1000"\n')


def _start(daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "svcmgr.daemon", "--root", str(daemon.root), "--no-register",
                           "--metrics", "", *args], capture_output=True, text=True, env=daemon.env, timeout=30)


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_damaged_repository_is_refused_and_left_as_it_is(daemon, how):
    _manifests(daemon)
    daemon.start()
    daemon.wait_state("svc:/dmg/s4:default", "online")
    daemon.cli("svcadm", "disable", "s1", check=True)
    daemon.stop()  # a clean stop: everything is in the main file
    db = daemon.root / "lib" / "repository.db"
    db.write_bytes(DAMAGE[how](db.read_bytes()))
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    r = _start(daemon)
    assert r.returncode == EXIT_DAMAGED, r.stderr
    assert f"the repository {db} cannot be used" in r.stderr
    assert f"svcmgrd --root {daemon.root} --restore-repository" in r.stderr and f"mv {db} {db}.damaged" in r.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before  # untouched
    # The way out it names: back to the copy kept at the clean stop, with every setting made before it.
    r = _start(daemon, "--restore-repository")
    assert r.returncode == 0 and "restored" in r.stderr, r.stderr
    assert sorted(p.name for p in db.parent.glob("repository.db.damaged-*")) != []
    daemon.start(manifests=False)
    daemon.wait_state("svc:/dmg/s4:default", "online")
    assert daemon.state("svc:/dmg/s1:default") == "disabled"


def test_a_missing_repository_beside_its_old_log_is_refused(daemon):
    """Starting afresh beside an old write-ahead log would replay it into the new file."""
    _manifests(daemon, 1)
    daemon.start()
    daemon.kill9()  # the log stays
    db = daemon.root / "lib" / "repository.db"
    assert (db.parent / "repository.db-wal").exists()
    db.unlink()
    r = _start(daemon)
    assert r.returncode == EXIT_DAMAGED and "repository.db-wal" in r.stderr and "of an earlier one" in r.stderr, \
        r.stderr
    # The other way out: start afresh, the old log moved aside too; what the old daemon ran is ended.
    for side in ("-wal", "-shm"):
        (db.parent / f"repository.db{side}").rename(db.parent / f"repository.db{side}.damaged")
    daemon.start(manifests=False)
    assert daemon.instances() == {}


def test_a_damaged_repository_beside_its_log_is_left_as_it_is(daemon):
    """Found by SVCMGR_CAMPAIGN_SEED=1941095610 (pgid, round 25): the file truncated while its write-ahead log
    was still there (a kill -9 leaves it); the check refused it, but closing SQLite's connection checkpointed
    the log into the damaged file. The check now reads through a read-only connection."""
    _manifests(daemon, 30)
    daemon.start()
    daemon.wait_state("svc:/dmg/s29:default", "online")
    daemon.stop()  # most pages in the main file...
    daemon.start(manifests=False)
    daemon.cli("svcadm", "disable", "s1", check=True)
    daemon.kill9()  # ... the last changes in the log
    db = daemon.root / "lib" / "repository.db"
    assert (db.parent / "repository.db-wal").stat().st_size > 0
    db.write_bytes(db.read_bytes()[:len(db.read_bytes()) // 2])
    def data() -> dict[str, str]:  # the file and its log (the -shm beside them is an index SQLite rebuilds)
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (db, db.parent / "repository.db-wal")}

    files = data()
    r = _start(daemon)
    assert r.returncode == EXIT_DAMAGED, r.stderr
    assert data() == files
    r = _start(daemon, "--restore-repository")
    assert r.returncode == 0, r.stderr
    daemon.start(manifests=False)  # the copy of the last start: it adopts what still runs
    daemon.wait_state("svc:/dmg/s29:default", "online")
