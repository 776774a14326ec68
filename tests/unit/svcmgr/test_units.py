"""Durations and sizes as manifests write them."""

import pytest

from svcmgr.units import parse_duration, parse_size


@pytest.mark.parametrize("value,seconds", [(30, 30.0), (1.5, 1.5), ("500ms", 0.5), ("30s", 30.0),
                                           ("10m", 600.0), ("2h", 7200.0), ("1d", 86400.0), ("0.25", 0.25)])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [0, -1, "0", "-1", "none", "infinity"])
def test_no_timeout_spellings(value):
    assert parse_duration(value, allow_none=True) is None


@pytest.mark.parametrize("bad", ["abc", "10 parsecs", "-5s", True, [1], float("nan"), -3])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("value,n", [(1024, 1024), ("512k", 512000), ("10MB", 10_000_000), ("1MiB", 1 << 20)])
def test_sizes(value, n):
    assert parse_size(value) == n


@pytest.mark.parametrize("bad", ["lots", "-1", -1, True, "1TB"])
def test_bad_sizes(bad):
    with pytest.raises(ValueError):
        parse_size(bad)
