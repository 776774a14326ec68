"""The critical chain: which waits and starts decided when an instance came online. No I/O.

systemd's ``critical-chain`` follows ordering edges and guesses, at each unit, that the
dependency that became active last was the one waited for. Here the guess is replaced by
the groupings' own rule, applied to the recorded times: an instance's dependencies were met
when its last group was met; a ``require_all`` (or ``optional_all``) group is met when the
last of its members that was online came online, a ``require_any`` group when the first did.
The member that met the last group is the *decider*, and the chain goes on from its start
that was online at that moment. The chain ends at an instance that waited for nothing (its
dependencies were met before it was queued: an operator enabled it, or it was restarted).
``exclude_all`` and path dependencies decide nothing here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from svcmgr.timings import StartRecord

__all__ = ["Group", "Step", "critical_chain"]


@dataclass(frozen=True)
class Group:
    """One dependency of an instance: its grouping and member instances."""

    name: str
    grouping: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class Step:
    """One link of the chain: an instance's start, and the dependency that released it (if any)."""

    fmri: str
    record: StartRecord
    via: str | None = None  # the dependency (of the previous step's instance) this one met


def _online_at(records: Sequence[StartRecord], t: int) -> StartRecord | None:
    """The start of an instance that was online at monotonic time ``t``."""
    for r in reversed(records):
        if r.online is not None and r.online <= t and (r.stop is None or r.stop >= t):
            return r
    return None


def critical_chain(target: str, records: Mapping[str, Sequence[StartRecord]],
                   groups: Callable[[str], Sequence[Group]], *,
                   comparable: Callable[[StartRecord, StartRecord], bool] = lambda a, b: True) -> list[Step]:
    """The chain from ``target``'s last start that reached online down to the start that began it.

    ``records`` holds each instance's kept starts, oldest first; ``groups`` gives an
    instance's dependencies; ``comparable`` tells whether two records share a clock (one
    boot of the machine)."""
    rec = next((r for r in reversed(records.get(target, ())) if r.online is not None), None)
    if rec is None:
        return []
    chain = [Step(target, rec)]
    seen = {target}
    fmri = target
    while rec.deps_met is not None:
        best: tuple[int, str, StartRecord, str] | None = None
        for g in groups(fmri):
            cands = []
            for m in g.members:
                r = _online_at(records.get(m, ()), rec.deps_met)
                if r is not None and comparable(rec, r):
                    assert r.online is not None
                    cands.append((r.online, m, r, g.name))
            if not cands:
                continue
            pick = min if g.grouping == "require_any" else max
            met = pick(cands, key=lambda c: (c[0], c[1]))
            if best is None or met[0] > best[0]:
                best = met
        if best is None or best[1] in seen:
            break
        online, fmri, dep, name = best
        if rec.queued is not None and online <= rec.queued:
            break  # its dependencies were met before it was queued: nothing of theirs held it back
        chain.append(Step(fmri, dep, name))
        seen.add(fmri)
        rec = dep
    return chain
