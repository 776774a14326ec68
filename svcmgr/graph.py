"""The dependency graph (networkx) and SMF's three-valued dependency evaluation. No I/O.

Nodes are instance FMRIs; an edge runs from a dependent to each instance its
dependency names (a service-level FMRI names all of that service's instances).
``satisfiability`` answers "may this instance start?" exactly as illumos' graph
engine does: 1 met, 0 not yet, -1 never without an operator.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import networkx as nx

from svcmgr.fmri import FMRI, PathFMRI
from svcmgr.fmri import parse_any as _parse_any
from svcmgr.spec import Dependency, InstanceConfig
from svcmgr.states import RUNNING, State

__all__ = ["MET", "NEVER", "NOTYET", "Blocker", "Graph", "StateView", "find_cycles", "services_named"]

MET, NOTYET, NEVER = 1, 0, -1

#: fmri -> (state, effective enabled), or None when the instance does not exist.
StateView = Callable[[str], "tuple[State, bool] | None"]


@dataclass(frozen=True)
class Blocker:
    """Why one dependency is not met."""

    dependency: str  # the dependency's name
    grouping: str
    member: str  # the FMRI (or file://) that is not met
    why: str  # absent | disabled | maintenance | offline | uninitialized | missing | running


#: A dependency target's parsed form (FMRIs are immutable): the graph is rebuilt at each import and
#: its evaluations read the same few targets again and again. Bounded.
parse_any = functools.lru_cache(maxsize=8192)(_parse_any)


@functools.lru_cache(maxsize=8192)
def _target(t: str) -> tuple[str, str | None] | None:
    """A target's normal form and, for an instance, its service's; None for a path."""
    p = parse_any(t)
    if isinstance(p, PathFMRI):
        return None
    return str(p), None if p.instance is None else str(p.service_fmri)


def _expand_targets(dep: Dependency, by_service: Mapping[str, list[str]]) -> list[str]:
    out = []
    for t in dep.fmris:
        k = _target(t)
        if k is None:
            continue
        name, service = k
        if service is None:
            out.extend(by_service.get(name, ()))
        elif name in by_service.get(service, ()):
            out.append(name)
    return out


def _index(configs: Mapping[str, InstanceConfig]) -> dict[str, list[str]]:
    """Each service's FMRI -> its instances' FMRIs, sorted (the services in the order of their first instance)."""
    by_name: dict[str, list[str]] = {}  # by the service's name: an FMRI made and written once per service
    for f, c in configs.items():
        by_name.setdefault(c.fmri.service, []).append(f)
    for v in by_name.values():
        v.sort()
    return {str(FMRI(name)): v for name, v in by_name.items()}


def effective_dependencies(configs: Mapping[str, InstanceConfig],
                           by_service: Mapping[str, list[str]] | None = None) -> dict[str, list[Dependency]]:
    """Each instance's dependencies, with the ``dependents`` other services declare on it added
    (``by_service``: ``configs``' index, when the caller has it)."""
    if by_service is None:
        by_service = _index(configs)
    deps: dict[str, list[Dependency]] = {f: list(c.dependencies) for f, c in configs.items()}
    seen_specs = set()
    for c in configs.values():
        spec = c.spec
        if id(spec) in seen_specs:
            continue
        seen_specs.add(id(spec))
        for d in spec.dependents:
            back = Dependency(d.name, d.grouping, d.restart_on, (str(spec.fmri),), "service")
            for t in d.fmris:
                p = parse_any(t)
                assert isinstance(p, FMRI)
                targets = by_service.get(str(p), []) if p.instance is None else [str(p)]
                for target in targets:
                    if target in deps:
                        deps[target].append(back)
    return deps


def services_named(deps: Iterable[Dependency]) -> set[str]:
    """The services these dependencies name, themselves or by one of their instances, through the groups
    that ``find_cycles`` follows (not ``exclude_all``): where their edges may lead."""
    out = set()
    for d in deps:
        if d.grouping == "exclude_all":
            continue
        for t in d.fmris:
            k = _target(t)
            if k is not None:
                out.add(k[1] or k[0])
    return out


def find_cycles(configs: Mapping[str, InstanceConfig]) -> list[list[str]]:
    """Dependency cycles (``exclude_all`` edges do not count), each as a closed path of FMRIs."""
    by_service = _index(configs)
    deps = effective_dependencies(configs, by_service)
    g = nx.DiGraph()
    g.add_nodes_from(configs)
    for f, ds in deps.items():
        for d in ds:
            if d.grouping == "exclude_all":
                continue
            for t in _expand_targets(d, by_service):
                g.add_edge(f, t)
    cycles = []
    for comp in nx.strongly_connected_components(g):
        if len(comp) == 1:
            (n,) = comp
            if not g.has_edge(n, n):
                continue
        edges = nx.find_cycle(g.subgraph(comp))
        path = [edges[0][0]] + [e[1] for e in edges]
        cycles.append(path)
    return sorted(cycles)


class Graph:
    """The instances and their dependencies, as the running snapshots declare them."""

    def __init__(self, configs: Mapping[str, InstanceConfig]) -> None:
        self.configs = dict(configs)
        self.by_service = _index(self.configs)
        self.deps = effective_dependencies(self.configs, self.by_service)
        self.g = nx.DiGraph()
        self.g.add_nodes_from(self.configs)
        #: whether any dependency is ``exclude_all`` (most graphs have none: nothing to look for as one comes up)
        self.excludes = False
        for f, ds in self.deps.items():
            for d in ds:
                self.excludes = self.excludes or d.grouping == "exclude_all"
                for t in _expand_targets(d, self.by_service):
                    if self.g.has_edge(f, t):
                        self.g[f][t]["deps"].append(d)
                    else:
                        self.g.add_edge(f, t, deps=[d])
        self._has_path_deps = {f for f, ds in self.deps.items() if any(d.type == "path" for d in ds)}
        #: ``members`` of each group asked about, by its FMRIs (a graph never changes: a new one is built instead)
        self._members: dict[tuple[str, ...], list[tuple[str, list[str] | None]]] = {}

    # ----------------------------------------------------------- queries
    def __contains__(self, fmri: str) -> bool:
        return fmri in self.configs

    def dependencies_of(self, fmri: str) -> list[str]:
        return sorted(self.g.successors(fmri)) if fmri in self.g else []

    def dependents_of(self, fmri: str, *, grouping: str | None = None) -> list[tuple[str, Dependency]]:
        """Direct dependents, each with the dependency through which it depends on ``fmri`` (only those of
        ``grouping`` when it is given), sorted."""
        if fmri not in self.g:
            return []
        out = []
        for p in self.g.predecessors(fmri):
            for d in self.g[p][fmri]["deps"]:
                if grouping is None or d.grouping == grouping:
                    out.append((p, d))
        return sorted(out, key=lambda x: (x[0], x[1].name))

    def all_dependents(self, fmri: str, *, groupings: Iterable[str] | None = None) -> set[str]:
        """Every instance that depends on ``fmri``, directly or not."""
        if fmri not in self.g:
            return set()
        if groupings is None:
            return set(nx.ancestors(self.g, fmri))
        return self._reach(fmri, groupings, up=True) - {fmri}

    def closure(self, fmri: str, groupings: Iterable[str]) -> set[str]:
        """``fmri`` and what it depends on through the given groupings, transitively."""
        return self._reach(fmri, groupings, up=False)

    def _reach(self, fmri: str, groupings: Iterable[str], *, up: bool) -> set[str]:
        """``fmri`` and what it reaches through edges of these groupings: towards its dependents (``up``)
        or towards its dependencies."""
        allowed = set(groupings)
        seen = {fmri}
        stack = [fmri]
        while stack:
            n = stack.pop()
            for m in (self.g.predecessors(n) if up else self.g.successors(n)) if n in self.g else ():
                edge = self.g[m][n] if up else self.g[n][m]
                if m not in seen and any(d.grouping in allowed for d in edge["deps"]):
                    seen.add(m)
                    stack.append(m)
        return seen

    @functools.cached_property
    def optional_upstream(self) -> frozenset[str]:
        """The instances an ``optional_all`` group names, and what they depend on through ``require_*``
        groups, transitively: the only instances from which a walk towards dependents through require
        groups (``graphwalks.affected_by``) can meet an optional_all dependent. Empty when no instance
        has an optional_all group, as in most graphs. One pass over the edges, once per graph."""
        seen = {t for p, t, deps in self.g.edges(data="deps") if any(d.grouping == "optional_all" for d in deps)}
        stack = list(seen)
        while stack:
            n = stack.pop()
            for t, edge in self.g.adj[n].items():
                if t not in seen and any(d.grouping in ("require_all", "require_any") for d in edge["deps"]):
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)

    def missing_targets(self, fmri: str) -> list[tuple[Dependency, str]]:
        """Dependencies naming services or instances that are not imported."""
        out = []
        for d in self.deps.get(fmri, ()):
            if d.type == "path":
                continue
            for t in d.fmris:
                p = parse_any(t)
                if isinstance(p, FMRI) and (
                    (p.instance is None and str(p) not in self.by_service)
                    or (p.instance is not None and str(p) not in self.configs)
                ):
                    out.append((d, t))
        return out

    def stop_layers(self, fmris: Iterable[str]) -> list[list[str]]:
        """Layers to stop in: every dependent before what it depends on."""
        sub = self.g.subgraph([f for f in fmris if f in self.g])
        h = nx.DiGraph((u, v) for u, v in sub.edges if not all(
            d.grouping == "exclude_all" for d in sub[u][v]["deps"]))
        h.add_nodes_from(sub.nodes)
        try:
            return [sorted(layer) for layer in nx.topological_generations(h)]
        except nx.NetworkXUnfeasible:
            return [sorted(sub.nodes)]

    def path_dependents(self) -> set[str]:
        return set(self._has_path_deps)

    # ----------------------------------------------------------- evaluation
    def satisfiability(self, fmri: str, view: StateView, memo: dict[str, int] | None = None) -> int:
        """1 when every dependency group of ``fmri`` is met, -1 when one never will be, else 0."""
        memo = {} if memo is None else memo
        if fmri in memo:
            return memo[fmri]
        memo[fmri] = NOTYET  # guards against cycles that slipped in
        worst = MET
        for d in self.deps.get(fmri, ()):
            v = self._group(d, view, memo)
            if v < worst:
                worst = v
                if worst == NEVER:
                    break
        memo[fmri] = worst
        return worst

    def met(self, fmri: str, view: StateView) -> bool:
        """``satisfiability(fmri, view) == MET``, without its recursion where it cannot change the answer.

        A require group is met only by running members; whether a member that is not running will
        never run (the recursion) tells NEVER from NOTYET, which "may it start now?" does not need.
        Starting a chain evaluates every dependent on each change, so this is the engine's hot path."""
        for d in self.deps.get(fmri, ()):
            if d.type != "path" and d.grouping in ("require_all", "require_any"):
                vals = []
                for _, insts in self.members(d):
                    if insts is None:
                        vals.append(NEVER)
                        continue
                    up = False
                    for i in insts:
                        s = view(i)
                        if s is not None and s[0] in RUNNING:
                            up = True
                            break
                    vals.append(MET if up else NOTYET)
                if _combine(d.grouping, vals) != MET:
                    return False
            elif self._group(d, view, {fmri: NOTYET}) != MET:
                return False
        return True

    def members(self, d: Dependency) -> list[tuple[str, list[str] | None]]:
        """(declared FMRI, its instances or None when absent) for each member of a group (the caller must not
        change the lists). Worked out once per group and graph: every evaluation of a dependent asks again."""
        out = self._members.get(d.fmris)
        if out is None:
            out = self._members[d.fmris] = self._find_members(d.fmris)
        return out

    def _find_members(self, fmris: tuple[str, ...]) -> list[tuple[str, list[str] | None]]:
        out: list[tuple[str, list[str] | None]] = []
        for t in fmris:
            p = parse_any(t)
            if isinstance(p, PathFMRI):
                out.append((t, None))
            elif p.instance is None:
                out.append((t, self.by_service.get(t) or None))
            else:
                out.append((t, [t] if t in self.configs else None))
        return out

    def _member_value(self, inst: str, view: StateView, memo: dict[str, int]) -> int:
        s = view(inst)
        if s is None:
            return NEVER
        state, enabled = s
        if state in RUNNING:
            return MET
        if state == State.MAINTENANCE:
            return NEVER
        if not enabled:
            return NEVER
        if state in (State.DISABLED, State.UNINITIALIZED):
            return NOTYET
        return NEVER if self.satisfiability(inst, view, memo) == NEVER else NOTYET

    def _group(self, d: Dependency, view: StateView, memo: dict[str, int]) -> int:
        if d.type == "path":
            vals = [MET if os.path.exists(parse_any(t).path) else NEVER for t in d.fmris]  # type: ignore[union-attr]
            return _combine(d.grouping, vals)
        if d.grouping in ("require_all", "require_any"):
            vals = []
            for _, insts in self.members(d):
                if insts is None:
                    vals.append(NEVER)
                else:
                    vals.append(max(self._member_value(i, view, memo) for i in insts))
            return _combine(d.grouping, vals)
        if d.grouping == "optional_all":
            result = MET
            for _, insts in self.members(d):
                for i in insts or ():
                    v = self._optional_value(i, view, memo)
                    if v == NOTYET:
                        result = NOTYET
            return result
        # exclude_all
        for _, insts in self.members(d):
            for i in insts or ():
                s = view(i)
                if s is None:
                    continue
                state, enabled = s
                if state in (State.DISABLED, State.MAINTENANCE):
                    continue
                if state in RUNNING:
                    return NEVER
                if not enabled:
                    continue
                return NOTYET
        return MET

    def _optional_value(self, inst: str, view: StateView, memo: dict[str, int]) -> int | None:
        s = view(inst)
        if s is None:
            return None
        state, enabled = s
        if state == State.MAINTENANCE:
            return None
        if state in RUNNING:
            return MET
        if not enabled:
            return MET
        if state in (State.DISABLED, State.UNINITIALIZED):
            return NOTYET
        return MET if self.satisfiability(inst, view, memo) == NEVER else NOTYET

    def edges(self) -> list[tuple[str, str, Dependency]]:
        """Every (dependent, instance it depends on, through which dependency), sorted."""
        return sorted(((u, v, d) for u, v, ds in self.g.edges(data="deps") for d in ds),
                      key=lambda e: (e[0], e[1], e[2].name))

    def member_values(self, fmri: str, view: StateView) -> list[tuple[Dependency, str, int]]:
        """Each member of each dependency group of ``fmri`` with what it gives the group now: MET,
        NOTYET, or NEVER (absent, in maintenance, disabled for good, or running where excluded).
        A member is an instance FMRI, or the declared FMRI (or ``file://`` path) when absent."""
        out: list[tuple[Dependency, str, int]] = []
        memo: dict[str, int] = {fmri: NOTYET}
        for d in self.deps.get(fmri, ()):
            if d.type == "path":
                out.extend((d, t, self._group(Dependency(d.name, d.grouping, d.restart_on, (t,), "path"),
                                              view, memo)) for t in d.fmris)
                continue
            for declared, insts in self.members(d):
                if insts is None:
                    out.append((d, declared, NEVER if d.grouping in ("require_all", "require_any") else MET))
                    continue
                for i in insts:
                    if d.grouping in ("require_all", "require_any"):
                        v = self._member_value(i, view, memo)
                    elif d.grouping == "optional_all":
                        v = NOTYET if self._optional_value(i, view, memo) == NOTYET else MET
                    else:
                        v = self._group(Dependency(d.name, d.grouping, d.restart_on, (i,)), view, memo)
                    out.append((d, i, v))
        return out

    def blockers(self, fmri: str, view: StateView) -> list[Blocker]:
        """The unmet members of ``fmri``'s unmet dependency groups."""
        out: list[Blocker] = []
        memo: dict[str, int] = {}
        for d in self.deps.get(fmri, ()):
            if self._group(d, view, memo) == MET:
                continue
            for declared, insts in self.members(d):
                if d.type == "path":
                    if not os.path.exists(parse_any(declared).path):  # type: ignore[union-attr]
                        out.append(Blocker(d.name, d.grouping, declared, "missing"))
                    continue
                if insts is None:
                    if d.grouping != "optional_all" and d.grouping != "exclude_all":
                        out.append(Blocker(d.name, d.grouping, declared, "absent"))
                    continue
                for i in insts:
                    s = view(i)
                    assert s is not None
                    state, enabled = s
                    if d.grouping == "exclude_all":
                        if state in RUNNING or (enabled and state not in (State.DISABLED, State.MAINTENANCE)):
                            out.append(Blocker(d.name, d.grouping, i, "running"))
                        continue
                    if state in RUNNING:
                        continue
                    if d.grouping == "optional_all" and self._optional_value(i, view, memo) != NOTYET:
                        continue
                    why = "disabled" if not enabled else str(state)
                    out.append(Blocker(d.name, d.grouping, i, why))
        return out

    def root_causes(self, fmri: str, view: StateView, limit: int = 32) -> list[list[str]]:
        """Paths from ``fmri`` down to the instances that keep it from running."""
        paths: list[list[str]] = []

        def walk(f: str, path: list[str]) -> None:
            if len(paths) >= limit:
                return
            bs = self.blockers(f, view)
            deeper = [b for b in bs if b.why in ("offline", "uninitialized") and b.member not in path]
            ends = [b for b in bs if b not in deeper]
            for b in ends:
                paths.append([*path, b.member])
            for b in deeper:
                sub = self.blockers(b.member, view)
                if sub:
                    walk(b.member, [*path, b.member])
                else:
                    paths.append([*path, b.member])

        walk(fmri, [fmri])
        return paths


def _combine(grouping: str, vals: list[int]) -> int:
    if not vals:
        return MET
    if grouping == "require_all":
        if all(v == MET for v in vals):
            return MET
        return NEVER if NEVER in vals else NOTYET
    if grouping == "require_any":
        if MET in vals:
            return MET
        return NOTYET if NOTYET in vals else NEVER
    if grouping == "optional_all":
        return MET if all(v != NOTYET for v in vals) else NOTYET
    return MET if all(v != MET for v in vals) else NEVER
