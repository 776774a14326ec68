"""Parsing of durations and sizes written in manifests and configuration. A leaf module."""

from __future__ import annotations

import math
import re

__all__ = ["format_duration", "parse_duration", "parse_size"]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|us)?\s*\Z")
_DUR_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([kKmMgG]i?[bB]?|[bB])?\s*\Z")
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mi": 1024**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gi": 1024**3, "gib": 1024**3,
}


def parse_duration(value: object, *, allow_none: bool = False) -> float | None:
    """Seconds from ``30``, ``1.5``, ``"500ms"``, ``"30s"``, ``"10m"``, ``"2h"``, ``"1d"``.

    With ``allow_none``, ``0``, ``-1``, ``"none"`` and ``"infinity"`` mean no limit
    (as SMF's ``timeout_seconds`` 0 and -1) and give None.
    Raises ValueError with a message naming the value.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got boolean {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"duration {value!r} is not finite")
        if allow_none and value in (0, -1):
            return None
        if value < 0:
            raise ValueError(f"duration {value!r} is negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if allow_none and text in ("none", "infinity", "0", "-1"):
            return None
        m = _DURATION_RE.match(text)
        if not m:
            raise ValueError(f"cannot parse duration {value!r} (use e.g. 500ms, 30s, 10m, 2h)")
        seconds = float(m.group(1)) * _DUR_UNITS[m.group(2)]
        if allow_none and seconds == 0:
            return None
        return seconds
    raise ValueError(f"expected a duration, got {type(value).__name__} {value!r}")


def parse_size(value: object) -> int:
    """Bytes from ``1048576``, ``"512k"``, ``"10MB"``, ``"1MiB"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got boolean {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size {value!r} is negative")
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if not m:
            raise ValueError(f"cannot parse size {value!r} (use e.g. 512k, 10MB, 1MiB)")
        unit = (m.group(2) or "").lower()
        return int(float(m.group(1)) * _SIZE_UNITS[unit])
    raise ValueError(f"expected a size, got {type(value).__name__} {value!r}")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
