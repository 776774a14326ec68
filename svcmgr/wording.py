"""Counts in the daemon's own sentences (its log, its sd_notify status): "1 instance", "2 instances"."""

from __future__ import annotations

__all__ = ["counted"]


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun in the number it takes: ``counted(1, "instance")`` is "1 instance"; the plural is the
    noun and "s" unless given."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
