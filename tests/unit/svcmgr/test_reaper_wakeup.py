"""A burst of signals that fills asyncio's wakeup pipe prints nothing (``svcmgr.reaper.quiet_wakeup``).

Python 3.11 reports a full pipe from a pending call; a signal arriving while that report prints can
spin the interpreter forever (a daemon stopping 500 services hung so). asyncio's add_signal_handler
turns the report back on, so the daemon calls quiet_wakeup again after adding its handlers."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from svcmgr.reaper import quiet_wakeup


async def _flood(capfd, quiet: bool) -> tuple[str, int]:
    loop = asyncio.get_running_loop()
    seen = []
    loop.add_signal_handler(signal.SIGUSR1, lambda: seen.append(1))
    try:
        if quiet:
            quiet_wakeup()
        for _ in range(3000):  # the loop does not run meanwhile: each signal is a byte in the pipe
            os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.sleep(0.05)
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
    return capfd.readouterr().err, len(seen)


async def test_a_full_wakeup_pipe_is_not_reported_once_quieted(capfd):
    err, seen = await _flood(capfd, quiet=True)
    assert "wakeup fd" not in err
    assert 0 < seen < 3000  # the pipe did fill: fewer calls than signals, and still some


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_add_signal_handler_turns_the_report_back_on(capfd):
    err, _ = await _flood(capfd, quiet=False)
    assert "Exception ignored when trying to write to the signal wakeup fd" in err
