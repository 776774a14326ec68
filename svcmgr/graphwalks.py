"""How a change travels the dependency graph, as illumos' graph.c walks it. No I/O.

Functions over a ``svcmgr.graph.Graph``: which instances to evaluate again after a state
change (``affected_by``: propagate_satbility()), what an administrator's disable or a
milestone takes down first (``taken_down_by``, ``disable_subtree``: mark_subtree(),
is_nonsubgraph_leaf()), and what a milestone runs (``subgraph``: mark_subgraph()).
"""

from __future__ import annotations

from collections.abc import Callable

from svcmgr.graph import Graph, StateView
from svcmgr.spec import Dependency
from svcmgr.states import State

__all__ = ["affected_by", "disable_subtree", "held_by", "subgraph", "taken_down_by"]


def affected_by(graph: Graph, fmri: str, view: StateView, *, came_up: bool) -> set[str]:
    """The instances whose answer to "may it start?" can change when ``fmri`` changes state: its direct
    dependents, and the ``optional_all`` dependents of offline instances that can now never start
    (graph.c's propagate_satbility(): an offline member that can never start counts as met, so a change
    several levels down may start an instance whose own members did not change state).

    Only a change to "never" starts anyone, and it travels up through ``require_*`` groups of offline
    instances: from ``fmri`` when it went down (disabled, in maintenance, offline), and from the offline
    instances that exclude it, whether it ``came_up`` or went down (the first member of an exclude_all
    group that is neither disabled nor in maintenance decides: one going down can leave the decision to
    a running member). A start chain stays linear: each start looks at its direct dependents only.

    The walk adds only optional_all dependents, so it goes only where one can be met
    (``Graph.optional_upstream``): at boot, where every instance goes offline in turn and each walk would
    otherwise climb all its offline dependents, the evaluation stays linear in the graph's size."""
    out: set[str] = set()
    stack: list[str] = []
    if fmri not in graph.g:
        return out
    upstream = graph.optional_upstream
    pred = graph.g.pred
    for p, edge in pred[fmri].items():
        out.add(p)
        if p in upstream and any(d.grouping == "exclude_all" for d in edge["deps"]):
            s = view(p)
            if s is not None and s[0] == State.OFFLINE:
                stack.append(p)
    if not came_up and fmri in upstream:
        stack.append(fmri)
    seen = set(stack)
    while stack:
        n = stack.pop()
        for p, edge in pred[n].items():
            groupings = {d.grouping for d in edge["deps"]}
            if "optional_all" in groupings:
                out.add(p)
            if p not in seen and p in upstream and groupings & {"require_all", "require_any"}:
                s = view(p)
                if s is not None and s[0] == State.OFFLINE:
                    seen.add(p)
                    stack.append(p)
    return out


def _takes_down(deps: list[Dependency], every_grouping: bool) -> bool:
    """Whether a dependent through ``deps`` goes down before its dependency's disable (``taken_down_by``)."""
    return any(d.grouping != "exclude_all" if every_grouping else
               d.grouping in ("require_all", "require_any") and d.restart_on in ("restart", "refresh")
               for d in deps)


def taken_down_by(graph: Graph, fmri: str, *, every_grouping: bool = False) -> list[str]:
    """Direct dependents that must stop before an administrator's disable of ``fmri`` does: through a
    require_all or require_any group whose restart_on is restart or refresh (graph.c's mark_subtree()
    bypasses exclude_all, optional_all and lower restart_on values); with ``every_grouping``, through
    any group but exclude_all (a milestone's is_nonsubgraph_leaf())."""
    if fmri not in graph.g:
        return []
    return sorted(p for p in graph.g.predecessors(fmri) if _takes_down(graph.g[p][fmri]["deps"], every_grouping))


def disable_subtree(graph: Graph, fmri: str, member: Callable[[str], bool], *,
                every_grouping: bool = False) -> set[str]:
    """Every instance (``member`` says which may be) that a disable of ``fmri`` takes down first, transitively."""
    out: set[str] = set()
    stack = [fmri]
    while stack:
        for p in taken_down_by(graph, stack.pop(), every_grouping=every_grouping):
            if p not in out and p != fmri and member(p):
                out.add(p)
                stack.append(p)
    return out


def held_by(graph: Graph, up: set[str], member: Callable[[str], bool], *, every_grouping: bool = False) -> set[str]:
    """The instances (``member`` says which may be) that instances of ``up`` depend on, transitively, through
    the groups a disable takes down (``taken_down_by``'s): those that must not stop while any of ``up``
    runs. A walk passes through members already down, so a dependent two levels up still holds its
    dependency when the instance between them was disabled first (graph.c would not disable that one
    before its own dependents are down: is_nonsubgraph_leaf()). One pass over the edges."""
    out: set[str] = set()
    stack = [f for f in up if f in graph.g]
    while stack:
        n = stack.pop()
        for t in graph.g.successors(n):
            if t not in out and member(t) and _takes_down(graph.g[n][t]["deps"], every_grouping):
                out.add(t)
                stack.append(t)
    return out


def subgraph(graph: Graph, milestone: str, enabled: Callable[[str], bool]) -> set[str]:
    """What a milestone runs, as illumos' mark_subgraph() decides: the milestone and what it depends
    on, not through exclude_all; past an optional_all group, only instances ``enabled`` (persistently)."""
    inside: set[str] = set()
    seen: set[tuple[str, bool]] = set()
    stack = [(milestone, False)] if milestone in graph.g else []
    while stack:
        f, optional = stack.pop()
        if (f, optional) in seen:
            continue
        seen.add((f, optional))
        if optional and not enabled(f):
            continue
        inside.add(f)
        for t in graph.g.successors(f):
            for d in graph.g[f][t]["deps"]:
                if d.grouping != "exclude_all":
                    stack.append((t, optional or d.grouping == "optional_all"))
    return inside
