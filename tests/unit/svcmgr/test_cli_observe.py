"""The time arguments of ``svcs --plot``: ISO 8601, @epoch, or a duration ago; anything else named."""

from __future__ import annotations

import datetime as dt

import pytest

from svcmgr.cli.observe import parse_time


def test_times_are_read_in_three_forms():
    now = 1_700_000_000.0
    assert parse_time("10m", now) == now - 600
    assert parse_time("@1699999000.5", now) == 1699999000.5
    when = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
    assert parse_time("2024-05-01T10:00:00+00:00", now) == when.timestamp()


@pytest.mark.parametrize("text", ["yesterday", "@soon", "10 parsecs", ""])
def test_a_bad_time_names_itself(text):
    with pytest.raises(ValueError, match="expected"):
        parse_time(text, 0.0)



@pytest.mark.parametrize("text", ["0001-01-01T00:00", "0001-01-01"])
def test_a_time_the_clock_cannot_hold_names_itself(text):
    """The first moment of year 1, read as local time: the error names the argument, not datetime's bare
    "year 0 is out of range"."""
    with pytest.raises(ValueError, match=f"^'{text}': .*out of range"):
        parse_time(text, 0.0)
