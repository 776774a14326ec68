"""FMRIs: parsing, normal form and SMF-style abbreviations. A leaf module.

An FMRI names a service (``svc:/site/app``) or one of its instances
(``svc:/site/app:default``). ``svc://localhost/site/app:default``,
``/site/app:default`` and ``site/app:default`` name the same instance.
A path dependency is named by a ``file://localhost/path`` FMRI.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["FMRI", "MAX_GLOB", "MAX_GLOB_TEXT", "RESTARTER", "ROOT_SCALE", "FmriError", "PathFMRI", "glob_text",
           "is_glob", "match", "name_test", "parse", "parse_any", "valid_instance_name"]

#: The restarter of every instance (SMF's master restarter, svc.startd), as ``svcs -l`` and ``svcs -R`` name it.
RESTARTER = "svc:/system/svc/restarter:default"

_SEGMENT = r"[A-Za-z][A-Za-z0-9_.,+-]*"
_SERVICE_RE = re.compile(rf"^{_SEGMENT}(?:/{_SEGMENT})*\Z")
_INSTANCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.,+-]*\Z")
_PATH_RE = re.compile(r"^/[^\x00-\x1f\x7f]*\Z")


def valid_instance_name(name: str) -> bool:
    """Whether ``name`` may name an instance (letters, digits, '_', '.', ',', '+', '-')."""
    return bool(_INSTANCE_RE.match(name))


class FmriError(ValueError):
    """A string that is not a valid FMRI."""


class _Frozen:
    """What ``dataclass(frozen=True, order=True, slots=True)`` gives a value class (equal, hashed and
    ordered by its fields, within its own class; immutable; copied and pickled by its fields), written out:
    ``dataclasses`` imports ``inspect``, some 5 ms of every command's start, and svcs imports this module."""

    __slots__: tuple[str, ...] = ()

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return type(self), self._key()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self.__slots__)})"

    def __eq__(self, other: object) -> bool:
        return self._key() == other._key() if type(other) is type(self) else NotImplemented  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())

    def __lt__(self, other: object) -> bool:
        return self._key() < other._key() if type(other) is type(self) else NotImplemented  # type: ignore[attr-defined]

    def __le__(self, other: object) -> bool:
        return self._key() <= other._key() if type(other) is type(self) else NotImplemented  # type: ignore[attr-defined]

    def __gt__(self, other: object) -> bool:
        return self._key() > other._key() if type(other) is type(self) else NotImplemented  # type: ignore[attr-defined]

    def __ge__(self, other: object) -> bool:
        return self._key() >= other._key() if type(other) is type(self) else NotImplemented  # type: ignore[attr-defined]


class FMRI(_Frozen):
    """A service (``instance`` is None) or a service instance."""

    __slots__ = ("service", "instance")  # noqa: RUF023 - the order of the fields (repr, order)
    service: str
    instance: str | None

    def __init__(self, service: str, instance: str | None = None) -> None:
        object.__setattr__(self, "service", service)
        object.__setattr__(self, "instance", instance)

    def _key(self) -> tuple[str, str | None]:
        return self.service, self.instance

    def __str__(self) -> str:
        if self.instance is None:
            return f"svc:/{self.service}"
        return f"svc:/{self.service}:{self.instance}"

    @property
    def is_instance(self) -> bool:
        return self.instance is not None

    @property
    def service_fmri(self) -> FMRI:
        return FMRI(self.service)

    def with_instance(self, instance: str) -> FMRI:
        return FMRI(self.service, instance)

    @property
    def is_milestone(self) -> bool:
        return self.service.startswith("milestone/")

    @property
    def log_name(self) -> str:
        """File-name form used for logs: ``category-name:instance``."""
        base = self.service.replace("/", "-")
        return f"{base}:{self.instance}" if self.instance else base


class PathFMRI(_Frozen):
    """A path dependency: met while the file exists."""

    __slots__ = ("path",)
    path: str

    def __init__(self, path: str) -> None:
        object.__setattr__(self, "path", path)

    def __str__(self) -> str:
        return f"file://localhost{self.path}"


def parse(text: str, *, instance_required: bool = False) -> FMRI:
    """Parse a service or instance FMRI into its normal form.

    >>> str(parse("site/app"))
    'svc:/site/app'
    >>> str(parse("svc://localhost/site/app:default"))
    'svc:/site/app:default'
    """
    if not isinstance(text, str):
        raise FmriError(f"FMRI must be a string, not {type(text).__name__}")
    s = text.strip()
    if not s:
        raise FmriError("empty FMRI")
    if s.startswith("svc://"):
        rest = s[len("svc://"):]
        host, sep, path = rest.partition("/")
        if not sep or host not in ("", "localhost"):
            raise FmriError(f"{text!r}: only svc://localhost/ FMRIs are supported")
        s = path
    elif s.startswith("svc:/"):
        s = s[len("svc:/"):]
    elif s.startswith("svc:"):
        raise FmriError(f"{text!r}: expected svc:/category/name[:instance]")
    s = s.lstrip("/")
    service, sep, instance = s.partition(":")
    if not _SERVICE_RE.match(service):
        raise FmriError(f"{text!r}: bad service name {service!r} "
                        "(segments of letters, digits, '_', '.', ',', '+', '-', separated by '/')")
    if sep:
        if not _INSTANCE_RE.match(instance):
            raise FmriError(f"{text!r}: bad instance name {instance!r}")
        return FMRI(service, instance)
    if instance_required:
        raise FmriError(f"{text!r}: an instance is required (svc:/{service}:INSTANCE)")
    return FMRI(service)


def parse_any(text: str) -> FMRI | PathFMRI:
    """Parse a dependency target: an svc FMRI or a ``file://`` path."""
    if isinstance(text, str) and text.startswith("file:"):
        rest = text[len("file:"):]
        if rest.startswith("//"):
            host, _sep, path = rest[2:].partition("/")
            if host not in ("", "localhost"):
                raise FmriError(f"{text!r}: only file://localhost/ paths are supported")
            rest = "/" + path
        if not _PATH_RE.match(rest):
            raise FmriError(f"{text!r}: bad path")
        return PathFMRI(rest)
    return parse(text)


#: The longest glob matched: fnmatch makes a glob a regular expression in time quadratic in its unclosed
#: brackets and compiles each different one (100,000 ``[`` held the daemon's event loop for a quarter of an
#: hour); a longer one matches nothing (docs/security.md, "any local user").
MAX_GLOB = 256
#: Characters of all the globs of one request (the control socket's operands, ``fm.dump``'s classes): each
#: different glob is compiled; root may send ``ROOT_SCALE`` times more.
MAX_GLOB_TEXT = 8192
#: How many times more operands and glob characters root may send in one request.
ROOT_SCALE = 16


def glob_text(patterns: Iterable[str]) -> int:
    """Characters of the globs among ``patterns`` (what ``MAX_GLOB_TEXT`` bounds)."""
    return sum(len(p) for p in patterns if is_glob(p))


def is_glob(pattern: str) -> bool:
    """Whether an operand is a shell glob (``*``, ``?``, ``[``) rather than an FMRI or an abbreviation."""
    return any(c in pattern for c in "*?[")


def name_test(patterns: Iterable[str]) -> Callable[[str], bool]:
    """A test of whether a name is one of ``patterns`` (names, and globs as ``fnmatch.fnmatchcase`` reads them),
    asked once per different name: the names a set, the globs one regular expression. ``fnmatchcase`` for each
    pattern and each name is some microseconds a pair: ``fm.dump``'s 1,000 class patterns over an error log of
    100,000 entries held the daemon's event loop for a minute. The globs are bounded as ``MAX_GLOB`` says."""
    patterns = list(patterns)
    names = {p for p in patterns if not is_glob(p)}
    globs = [p for p in patterns if is_glob(p)]
    rx = re.compile("|".join(fnmatch.translate(p) for p in globs)) if globs else None
    seen: dict[str, bool] = {}

    def test(name: str) -> bool:
        hit = seen.get(name)
        if hit is None:
            hit = seen[name] = name in names or (rx is not None and rx.match(name) is not None)
        return hit

    return test


def match(pattern: str, candidates: Iterable[FMRI]) -> list[FMRI]:
    """Instances or services that one operand names, as libscf's ``scf_walk_fmri`` matches it.

    * A full FMRI (``svc:/...``) names itself; a service's FMRI names the service and its instances.
    * A glob is matched against the whole FMRI with ``fnmatch``; ``svc:/`` is put before one that
      begins neither with ``*`` nor with a scheme (``svc:``). One of more than ``MAX_GLOB`` characters
      matches nothing.
    * Anything else is an abbreviation: a part of the FMRI that begins at the start of a segment
      (after ``/`` or ``:``, or with ``:``) and ends at the end of the service or instance name. For
      ``svc:/network/smtp:sendmail``: ``sendmail``, ``:sendmail``, ``smtp``, ``smtp:sendmail`` and
      ``network/smtp`` (not ``mail``, ``network`` or ``network/smt``).
    """
    text = pattern.strip()
    if is_glob(text):
        if len(text) > MAX_GLOB:
            return []
        pat = text if text.startswith("*") or text[3:4] == ":" else "svc:/" + text.lstrip("/")
        return sorted((c for c in candidates if fnmatch.fnmatchcase(str(c), pat)), key=_order)
    if text.startswith(("svc:", "/")):
        try:
            want = parse(text)
        except FmriError:
            return []
        return sorted((c for c in candidates if c.service == want.service
                       and (want.instance is None or c.instance == want.instance)), key=_order)
    if not text:
        return []
    return sorted((c for c in candidates if _abbreviates(text, str(c))), key=_order)


def _abbreviates(part: str, fmri: str) -> bool:
    """Whether ``part`` is an abbreviation of ``fmri`` (see ``match``)."""
    at = fmri.find(part)
    while at != -1:
        end = at + len(part)
        starts = at == 0 or fmri[at - 1] in "/:" or part[0] == ":"
        ends = end == len(fmri) or fmri[end] == ":" or part[-1] == ":"
        if starts and ends and end > len("svc:"):  # never a part of the scheme alone
            return True
        at = fmri.find(part, at + 1)
    return False


def _order(f: FMRI) -> tuple[str, str]:
    """Services before their instances (an instance of None does not compare with a name)."""
    return (f.service, f.instance or "")
