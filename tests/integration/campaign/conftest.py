"""The campaign's seeds and figures in the summary of every run, passed or failed, also on xdist workers.

A test adds ``("campaign", text)`` to its report (``record_property``); the summary prints each one, so the
seed of a run of ``make test`` can be replayed even when it found nothing.
"""

from __future__ import annotations

import pytest

_lines: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _lines.extend(str(v) for k, v in report.user_properties if k == "campaign")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _lines:
        terminalreporter.section("fault campaign")
        for line in _lines:
            terminalreporter.write_line(line)
