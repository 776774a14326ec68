"""Fixtures shared by every test: a real svcmgrd on a private state folder (helpers in svctest.py).

``svcmgrd`` starts a daemon (a real process, real children) under a short temporary
root, imports the manifests a test writes, and stops it afterwards, even when the
test fails, checking that no process of any contract is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from fakes import engine_on_fakes
from hostile import Attacker, why_not
from svctest import Daemon, _alive_marked, _short_root, remove_cgroups


@pytest.fixture
def svcmgrd(request: pytest.FixtureRequest) -> Iterator[Callable[..., Daemon]]:
    """A factory: ``d = svcmgrd()`` gives a Daemon on a fresh root (call ``d.start()``)."""
    made: list[Daemon] = []

    def make() -> Daemon:
        root = _short_root()
        os.chmod(root, 0o755)
        env = dict(os.environ)
        env["XDG_RUNTIME_DIR"] = str(root / "xdg")
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("SVCMGR_ROOT", None)
        env.pop("NOTIFY_SOCKET", None)
        d = Daemon(root, env)
        made.append(d)
        return d

    yield make
    leftovers: dict[str, list[int]] = {}
    for d in made:
        with contextlib.suppress(Exception):
            d.stop()
        left = _alive_marked(d.root)
        if left:
            leftovers[str(d.root)] = left
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        remove_cgroups(d.root)
        if not left and not os.environ.get("SVCMGR_KEEP_ROOTS"):
            shutil.rmtree(d.root, ignore_errors=True)
    assert not leftovers, f"processes left behind after svcmgrd stopped: {leftovers}"


@pytest.fixture
def daemon(svcmgrd: Callable[[], Daemon]) -> Daemon:
    """A daemon not yet started: write manifests with ``daemon.manifest(...)``, then ``daemon.start()``."""
    return svcmgrd()


@pytest.fixture(scope="session")
def attacker() -> Iterator[Attacker]:
    """An unprivileged local user (uid 65534) with the commands on the system interpreter (tests/hostile.py)."""
    why = why_not()
    if why is not None:
        pytest.skip(why)
    a = Attacker()
    yield a
    a.close()


@pytest.fixture
async def fake_engine(tmp_path: Path) -> AsyncIterator[tuple]:
    """A real engine on fake processes (``fakes.engine_on_fakes``): (engine, procs, clock), shut down after."""
    engine, procs, clock = engine_on_fakes(str(tmp_path))
    yield engine, procs, clock
    await engine.shutdown()
