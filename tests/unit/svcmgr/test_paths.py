"""Where the commands find the daemon: the per-user registration, only in a folder of the user's own."""

import os

import pytest

from svcmgr import paths
from svcmgr.safefs import UnsafePath


@pytest.fixture
def xdg(tmp_path, monkeypatch):
    d = tmp_path / "xdg"
    d.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(d))
    return d


def test_register_read_and_forget(xdg):
    paths.register("/srv/state")
    assert paths.read_registration() == "/srv/state"
    assert (xdg / "svcmgr" / "root").stat().st_mode & 0o777 == 0o600
    paths.unregister("/elsewhere")  # not ours: kept
    assert paths.read_registration() == "/srv/state"
    paths.unregister("/srv/state")
    assert paths.read_registration() is None


def test_an_own_folder_left_open_by_an_older_svcmgr_is_closed(xdg):
    (xdg / "svcmgr").mkdir(mode=0o755)
    os.chmod(xdg / "svcmgr", 0o755)
    paths.register("/srv/state")
    assert (xdg / "svcmgr").stat().st_mode & 0o777 == 0o700


def test_a_link_or_a_folder_others_may_write_is_not_believed(xdg, tmp_path):
    other = tmp_path / "planted"
    other.mkdir()
    (other / "root").write_text("/attacker/root\n")
    os.symlink(other, xdg / "svcmgr")
    assert paths.read_registration() is None
    with pytest.raises(UnsafePath, match="symbolic link"):
        paths.register("/srv/state")
    os.unlink(xdg / "svcmgr")
    (xdg / "svcmgr").mkdir()
    (xdg / "svcmgr" / "root").write_text("/attacker/root\n")
    os.chmod(xdg / "svcmgr", 0o777)
    assert paths.read_registration() is None
