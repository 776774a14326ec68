"""Reading TOML-shaped tables with errors that name the source, the field and the problem. A leaf module.

Manifests, the daemon's configuration, fault rules and VRRP declarations are all
read with ``Reader``: each accessor checks a type, records an error with the
dotted path of the field and returns a default, so that every problem of a file
is reported at once; ``done()`` refuses unknown fields.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from typing import Any

from svcmgr.units import parse_duration, parse_size

__all__ = ["MISSING", "FieldError", "FieldErrors", "Reader", "read_toml", "toml_files", "typename"]

MISSING = object()


class FieldError(ValueError):
    """One problem in one input: the source, the field and what is wrong."""

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = source
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.field}: {self.message}" if self.field else f"{where}{self.message}"


class FieldErrors(ValueError):
    """All problems found in one or more inputs."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class Reader:
    """Reads one table, recording errors with the dotted path of the field."""

    def __init__(self, source: str, errors: list[FieldError], data: Any, path: str) -> None:
        self.source = source
        self.errors = errors
        self.path = path
        self.ok = True
        if not isinstance(data, dict):
            self.error("", f"expected a table, got {typename(data)}")
            data = {}
        self.data: dict[str, Any] = data
        self.seen: set[str] = set()

    def f(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> None:
        self.ok = False
        self.errors.append(FieldError(self.source, self.f(key) if key else self.path, message))

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def str(self, key: str, default: Any = None, *, required: bool = False,
            pattern: re.Pattern[str] | None = None, choices: tuple[str, ...] | None = None,
            maxlen: int = 4096) -> Any:
        v = self.get(key, MISSING)
        if v is MISSING:
            if required:
                self.error(key, "is required")
            return default
        if not isinstance(v, str):
            self.error(key, f"expected a string, got {typename(v)}")
            return default
        if len(v) > maxlen:
            self.error(key, f"is longer than {maxlen} characters")
            return default
        if "\x00" in v:
            self.error(key, "contains a NUL character")
            return default
        if choices is not None and v not in choices:
            self.error(key, f"must be one of {', '.join(choices)}, not {v!r}")
            return default
        if pattern is not None and not pattern.fullmatch(v):
            self.error(key, f"{v!r} is not a valid name")
            return default
        return v

    def bool(self, key: str, default: Any = None) -> Any:
        v = self.get(key, MISSING)
        if v is MISSING:
            return default
        if not isinstance(v, bool):
            self.error(key, f"expected true or false, got {typename(v)}")
            return default
        return v

    def int(self, key: str, default: Any = None, *, lo: int | None = None, hi: int | None = None) -> Any:
        v = self.get(key, MISSING)
        if v is MISSING:
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            self.error(key, f"expected an integer, got {typename(v)}")
            return default
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            rng = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
            self.error(key, f"{v} is out of range {rng}")
            return default
        return v

    def duration(self, key: str, default: Any = None, *, allow_none: bool = False,
                 positive: bool = False) -> Any:
        v = self.get(key, MISSING)
        if v is MISSING:
            return default
        try:
            d = parse_duration(v, allow_none=allow_none)
        except ValueError as e:
            self.error(key, str(e))
            return default
        if positive and d is not None and d <= 0:
            self.error(key, "must be greater than zero")
            return default
        return d

    def size(self, key: str, default: Any = None) -> Any:
        v = self.get(key, MISSING)
        if v is MISSING:
            return default
        try:
            return parse_size(v)
        except ValueError as e:
            self.error(key, str(e))
            return default

    def strlist(self, key: str, default: Any = (), *, pattern: re.Pattern[str] | None = None,
                nonempty: bool = False) -> Any:
        v = self.get(key, MISSING)
        if v is MISSING:
            if nonempty:
                self.error(key, "is required")
            return default
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            self.error(key, f"expected a list of strings, got {typename(v)}")
            return default
        if nonempty and not v:
            self.error(key, "must not be empty")
            return default
        if pattern is not None:
            for x in v:
                if not pattern.fullmatch(x):
                    self.error(key, f"{x!r} is not a valid name")
                    return default
        return tuple(v)

    def table(self, key: str) -> Reader | None:
        v = self.get(key, MISSING)
        if v is MISSING:
            return None
        return Reader(self.source, self.errors, v, self.f(key))

    def tables(self, key: str) -> list[Reader]:
        v = self.get(key, MISSING)
        if v is MISSING:
            return []
        if not isinstance(v, list):
            self.error(key, f"expected an array of tables ([[{self.f(key)}]]), got {typename(v)}")
            return []
        return [Reader(self.source, self.errors, x, f"{self.f(key)}[{i}]") for i, x in enumerate(v)]

    def done(self) -> None:
        for k in self.data:
            if k not in self.seen:
                self.error(k, "unknown field")


def typename(v: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean",
            int: "an integer", float: "a float"}.get(type(v), type(v).__name__)


def read_toml(path: str) -> dict[str, Any]:
    """A TOML file's table; raises FieldError naming the file when it cannot be read or parsed."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise FieldError(path, "", f"cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise FieldError(path, "", f"TOML syntax error: {e}") from None


def toml_files(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[str], list[FieldError]]:
    """The files named, and the ``*.toml`` files of the folders named (sorted, hidden ones left out); a
    path that does not exist is an error."""
    out: list[str] = []
    errors: list[FieldError] = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            out.extend(os.path.join(p, n) for n in sorted(os.listdir(p))
                       if n.endswith(".toml") and not n.startswith("."))
        elif os.path.exists(p):
            out.append(p)
        else:
            errors.append(FieldError(p, "", "no such file or folder"))
    return out, errors
