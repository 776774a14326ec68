"""Fixtures of the dashboard tests: one demo daemon with a dashboard, and one headless Chromium, per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from svctest import Daemon, private_daemon
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
    with private_daemon() as d:
        yield d
