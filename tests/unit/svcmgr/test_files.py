"""svcmgr.files.write_atomic against a folder someone else can write to."""

from __future__ import annotations

import os

from svcmgr.files import write_atomic


def test_a_file_planted_under_a_predictable_name_is_not_what_gets_renamed(tmp_path):
    """The temporary name used to be ``.NAME.PID.tmp``: a file made there first (here a hard link to the
    planter's own file) was opened, written and renamed into place, so the planter owned the result."""
    target = tmp_path / "keepalived.conf"
    theirs = tmp_path / "theirs"
    theirs.write_text("planted\n")
    os.link(theirs, tmp_path / f".keepalived.conf.{os.getpid()}.tmp")
    write_atomic(str(target), "ours\n", 0o600)
    assert target.read_text() == "ours\n"
    assert target.stat().st_ino != theirs.stat().st_ino and theirs.read_text() == "planted\n"
    assert target.stat().st_mode & 0o777 == 0o600 & ~_umask()


def test_nothing_is_left_beside_the_file(tmp_path):
    target = tmp_path / "f"
    for text in ("one", "two"):
        write_atomic(str(target), text)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"] and target.read_text() == "two"


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old
