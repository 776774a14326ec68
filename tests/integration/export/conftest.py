"""Real parts for the MQTT and metrics tests: a mosquitto broker on loopback, subscribers, nodes.

``mosquitto`` starts a real broker on 127.0.0.1 and a free port, with its own
folder (persistence on, so a subscriber's session and its queued messages
survive a broker restart, as in production), and stops it after the test even
when the test fails. ``subscriber`` records what a real MQTT client receives.
Helpers (``start_node``: a real svcmgrd with a test-only event emitter) are in
``export_helpers``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from export_helpers import Broker, Subscriber, free_port


@pytest.fixture
def mosquitto() -> Iterator[Callable[..., Broker]]:
    """A factory: ``b = mosquitto()`` starts a broker. ``extra`` adds configuration lines;
    ``setup(folder)`` may write files into the broker's folder first and return more lines."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto not installed (Debian package mosquitto)")
    made: list[Broker] = []

    def make(extra: str = "", *, anonymous: bool = True, setup: Any = None) -> Broker:
        folder = Path(tempfile.mkdtemp(prefix="svcmgr-mq-", dir="/tmp"))
        os.chmod(folder, 0o755)
        if setup is not None:
            extra += setup(folder)
        b = Broker(folder, free_port(), extra, anonymous=anonymous)
        made.append(b)
        return b.start()

    yield make
    for b in made:
        b.stop()
        shutil.rmtree(b.folder, ignore_errors=True)


@pytest.fixture
def subscriber() -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def make(port: int, topics: list[str], **kw: Any) -> Subscriber:
        s = Subscriber(port, topics, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        with contextlib.suppress(Exception):
            s.close()


