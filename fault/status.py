"""How a resource named by a case is doing, in fmd's terms: its status bits and the words fmadm prints for them.

fmd keeps per suspect a set of bits (``FM_SUSPECT_FAULTY``, ``UNUSABLE``, ``DEGRADED``,
``NOT_PRESENT``, ``REPAIRED``, ``ACQUITTED``, ``REPLACED``); ``fmadm faulty`` words them
one way for what a fault affects (``Affects``), another for where the problem is
(``Problem in``) and a third, shorter, for ``fmadm faulty -r``. Here the bits are
strings, and a service's state gives ``unusable`` (maintenance, disabled, offline)
or ``degraded``. Standard library only: the commands import it.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["BITS", "affects_words", "asru_word", "bits_of", "problem_words"]

BITS = ("faulty", "unusable", "degraded", "not_present", "repaired", "acquitted", "replaced")

#: an affected resource (ASRU): the three bits that matter -> fmadm faulty's words (print_asru_status)
_AFFECTS = {
    frozenset(): "ok and in service",
    frozenset({"degraded"}): "service degraded, but associated components no longer faulty",
    frozenset({"faulty", "degraded"}): "faulted but still providing degraded service",
    frozenset({"faulty"}): "faulted but still in service",
    frozenset({"unusable"}): "out of service, but associated components no longer faulty",
    frozenset({"faulty", "unusable"}): "faulted and taken out of service",
}
#: fmadm faulty -r: the bits of every case naming a resource, or-ed -> one word (print_asru)
_ASRU = {
    frozenset(): "ok",
    frozenset({"degraded"}): "degraded",
    frozenset({"faulty", "degraded"}): "degraded",
    frozenset({"faulty"}): "degraded",
    frozenset({"unusable"}): "unknown",
    frozenset({"faulty", "unusable"}): "faulted",
}


def bits_of(suspect_status: str | None, state: str | None) -> list[str]:
    """The bits of a resource: ``suspect_status`` (faulty, repaired, acquitted, replaced; None when the resource
    is not a suspect) and, for a service, its ``state`` (None: no such instance)."""
    bits = []
    if suspect_status == "faulty":
        bits.append("faulty")
    elif suspect_status in ("repaired", "acquitted", "replaced"):
        bits.append(suspect_status)
    if state is None:
        bits.append("not_present")
    elif state == "degraded":
        bits.append("degraded")
    elif state in ("maintenance", "disabled", "offline", "uninitialized"):
        bits.append("unusable")
    return [b for b in BITS if b in bits]


def affects_words(bits: Iterable[str]) -> str:
    """What ``Affects`` says of a resource; '' when fmd would say nothing (not present)."""
    key = frozenset(bits) & {"faulty", "unusable", "degraded"}
    if "not_present" in bits and not key:
        return ""
    return _AFFECTS.get(key, "")


def problem_words(bits: Iterable[str]) -> str:
    """What ``Problem in`` says of a suspect's resource (print_rsrc_status)."""
    b = set(bits)
    if "not_present" in b:
        return "not present"
    if "faulty" in b:
        if "degraded" in b:
            return "faulted but still providing degraded service"
        if "unusable" in b:
            return "faulted and taken out of service"
        return "faulted but still in service"
    for bit, word in (("replaced", "replaced"), ("repaired", "repair attempted"), ("acquitted", "acquitted")):
        if bit in b:
            return word
    return "removed"


def asru_word(bits: Iterable[str]) -> str:
    """``fmadm faulty -r``'s one word for the or-ed bits of a resource."""
    return _ASRU.get(frozenset(bits) & {"faulty", "unusable", "degraded"}, "")
