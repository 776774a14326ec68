"""Fixtures of the dashboard tests: one demo daemon with a dashboard, and one headless Chromium, per module."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator

import pytest

from svctest import Daemon, _alive_marked, _short_root
from web_helpers import Browser, why_no_browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    why = why_no_browser()
    if why is not None:
        pytest.skip(why)
    b = Browser()
    yield b
    b.close()


@pytest.fixture(scope="module")
def module_daemon() -> Iterator[Daemon]:
    """A daemon shared by a module's tests (started by the module), stopped and cleaned up after."""
    root = _short_root()
    os.chmod(root, 0o755)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(root / "xdg"), PYTHONUNBUFFERED="1")
    env.pop("SVCMGR_ROOT", None)
    env.pop("NOTIFY_SOCKET", None)
    d = Daemon(root, env)
    yield d
    with contextlib.suppress(Exception):
        d.stop()
    if os.environ.get("SVCMGR_WEB_LOG"):
        print(d.log_text()[-int(os.environ["SVCMGR_WEB_LOG"]):])
    left = _alive_marked(root)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if not left:
        shutil.rmtree(root, ignore_errors=True)
    assert not left, f"processes left behind: {left}"
