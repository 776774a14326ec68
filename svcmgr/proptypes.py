"""SMF's property types: a leaf, so that ``svccfg`` knows them without loading the manifest vocabulary."""

from __future__ import annotations

__all__ = ["NONPERSISTENT", "PROP_TYPES", "decimal_text", "encoding_error"]

PROP_TYPES = ("astring", "ustring", "integer", "count", "boolean", "float", "time", "fmri",
              "host", "hostname", "net_address", "net_address_v4", "net_address_v6", "uri", "opaque")

#: The property groups the restarter keeps on the instance and out of every snapshot (SMF's
#: ``SCF_PG_FLAG_NONPERSISTENT``): read as they are now whatever the snapshot.
NONPERSISTENT = frozenset({"restarter"})

_COUNT_MAX = 2**64 - 1
_INTEGER_MIN, _INTEGER_MAX = -(2**63), 2**63 - 1
_HEX = frozenset("0123456789abcdefABCDEF")


def decimal_text(text: str) -> bool:
    """Whether ``text`` is a number as ``strtoll`` reads one in base 10: a sign, then ASCII digits (Python's
    ``int`` also takes ``1_000`` and other scripts' digits, which no SMF tool would)."""
    digits = text.strip()
    digits = digits[1:] if digits[:1] in ("+", "-") else digits
    return digits.isascii() and digits.isdigit()


def encoding_error(ptype: str, value: object) -> str | None:
    """Why ``value`` (already of its Python kind: an int for a count or integer, a str otherwise) lies
    outside what SMF stores for ``ptype``, as libscf's ``valid_encoded_value`` checks it: a count is 64-bit
    unsigned, an integer 64-bit signed, a time seconds with an optional nine-digit fraction, an opaque
    value pairs of hexadecimal digits. None when it fits (or the type has no such rule here)."""
    if ptype == "count" and isinstance(value, int) and value > _COUNT_MAX:
        return f"a count is at most {_COUNT_MAX}: {value!r}"
    if ptype == "integer" and isinstance(value, int) and not _INTEGER_MIN <= value <= _INTEGER_MAX:
        return f"an integer lies between {_INTEGER_MIN} and {_INTEGER_MAX}: {value!r}"
    if ptype == "time" and isinstance(value, str):
        sec, dot, ns = value.partition(".")
        if not sec.removeprefix("-").isdecimal() or not sec.isascii():
            return f"expected a time as seconds[.nanoseconds], got {value!r}"
        if dot and not (len(ns) == 9 and ns.isdecimal() and ns.isascii()):
            return f"a time's fraction has nine digits (nanoseconds): {value!r}"
        if not _INTEGER_MIN <= int(sec) <= _INTEGER_MAX:
            return f"a time's seconds lie between {_INTEGER_MIN} and {_INTEGER_MAX}: {value!r}"
    if ptype == "opaque" and isinstance(value, str) and (len(value) % 2 or not _HEX.issuperset(value)):
        return f"expected an even number of hexadecimal digits, got {value!r}"
    return None
