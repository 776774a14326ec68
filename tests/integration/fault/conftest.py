"""The fault manager's integration fixtures: a real Alertmanager on loopback (helpers in fault_helpers.py)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fault_helpers import Alertmanager


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Any]:
    """A factory: ``alertmanager(webhook_url, credentials_file)`` starts Alertmanager posting to that URL
    (with that file's secret as a Bearer token); stopped afterwards."""
    for exe in ("prometheus-alertmanager", "amtool"):
        if shutil.which(exe) is None:
            pytest.skip(f"{exe} is not installed (Debian package prometheus-alertmanager)")
    started: list[Alertmanager] = []

    def start(webhook: str, credentials_file: Path | None = None) -> Alertmanager:
        d = tmp_path / f"am{len(started)}"
        d.mkdir()
        am = Alertmanager(d, webhook, credentials_file)
        started.append(am)
        return am

    yield start
    for am in started:
        with contextlib.suppress(Exception):
            am.stop()
