"""A small directed graph with attributes on its edges, and the few walks the engine needs. A leaf module.

The dependency graph (``svcmgr.graph``) is built at every import and walked at every state
change, from the first spawn of a boot on: a structure of plain dicts, as networkx's
``DiGraph`` keeps one (``succ``/``pred``: node -> neighbour -> the edge's attributes, in the
order added), spelled with the same names for what the engine reads, without networkx's
import (about a third of the daemon's start-up before its first spawn). The walks are the
textbook ones: strongly connected components (Tarjan), a cycle inside one, ancestors, and
topological generations (Kahn).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Any

__all__ = ["CycleError", "DiGraph", "ancestors", "find_cycle", "strongly_connected_components",
           "topological_generations"]

Node = Hashable


class CycleError(ValueError):
    """The graph has a cycle, so it has no topological order."""


class DiGraph:
    """Nodes, and edges each with a dict of attributes. ``g[u][v]`` is the edge's attributes."""

    def __init__(self, edges: Iterable[tuple[Node, Node]] = ()) -> None:
        #: node -> successor -> the edge's attributes (also ``adj``)
        self.succ: dict[Node, dict[Node, dict[str, Any]]] = {}
        #: node -> predecessor -> the edge's attributes (the same dict as in ``succ``)
        self.pred: dict[Node, dict[Node, dict[str, Any]]] = {}
        for u, v in edges:
            self.add_edge(u, v)

    @property
    def adj(self) -> dict[Node, dict[Node, dict[str, Any]]]:
        return self.succ

    def add_node(self, n: Node) -> None:
        if n not in self.succ:
            self.succ[n] = {}
            self.pred[n] = {}

    def add_nodes_from(self, nodes: Iterable[Node]) -> None:
        for n in nodes:
            self.add_node(n)

    def add_edge(self, u: Node, v: Node, **attr: Any) -> None:
        """Add the edge ``u -> v`` (and its nodes), or update its attributes."""
        self.add_node(u)
        self.add_node(v)
        data = self.succ[u].get(v)
        if data is None:
            data = self.succ[u][v] = self.pred[v][u] = {}
        data.update(attr)

    def has_edge(self, u: Node, v: Node) -> bool:
        return u in self.succ and v in self.succ[u]

    def __contains__(self, n: object) -> bool:
        return n in self.succ

    def __iter__(self) -> Iterator[Node]:
        return iter(self.succ)

    def __len__(self) -> int:
        return len(self.succ)

    def __getitem__(self, u: Node) -> dict[Node, dict[str, Any]]:
        return self.succ[u]

    @property
    def nodes(self) -> list[Node]:
        return list(self.succ)

    def successors(self, n: Node) -> Iterator[Node]:
        return iter(self.succ[n])

    def predecessors(self, n: Node) -> Iterator[Node]:
        return iter(self.pred[n])

    def edges(self, data: str | None = None) -> Iterator[tuple[Any, ...]]:
        """Every edge as ``(u, v)``, or ``(u, v, its attribute data)`` (None when absent), in the order added."""
        for u, nbrs in self.succ.items():
            for v, attrs in nbrs.items():
                yield (u, v) if data is None else (u, v, attrs.get(data))

    def subgraph(self, nodes: Iterable[Node]) -> DiGraph:
        """A copy holding ``nodes`` (those in the graph) and the edges between them, sharing their attributes."""
        keep = [n for n in self.succ if n in set(nodes)]
        sub = DiGraph()
        sub.add_nodes_from(keep)
        for u in keep:
            for v, attrs in self.succ[u].items():
                if v in sub.succ:
                    sub.succ[u][v] = sub.pred[v][u] = attrs
        return sub


def strongly_connected_components(g: DiGraph) -> list[set[Node]]:
    """The strongly connected components (Tarjan's algorithm, without recursion)."""
    index: dict[Node, int] = {}
    low: dict[Node, int] = {}
    on_stack: set[Node] = set()
    stack: list[Node] = []
    out: list[set[Node]] = []
    for root in g.succ:
        if root in index:
            continue
        work = [(root, iter(g.succ[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(g.succ[w])))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    out.append(comp)
    return out


def find_cycle(g: DiGraph, start: Node) -> list[Node]:
    """A cycle through the nodes reachable from ``start``, as a closed path ``[a, b, ..., a]``; [] if none."""
    path: list[Node] = [start]
    where = {start: 0}
    done: set[Node] = set()
    work = [iter(g.succ[start])]
    while work:
        for w in work[-1]:
            if w in where:
                return [*path[where[w]:], w]
            if w not in done:
                where[w] = len(path)
                path.append(w)
                work.append(iter(g.succ[w]))
                break
        else:
            work.pop()
            n = path.pop()
            del where[n]
            done.add(n)
    return []


def ancestors(g: DiGraph, n: Node) -> set[Node]:
    """Every node from which ``n`` can be reached, ``n`` itself excepted (as networkx's ``ancestors``)."""
    seen: set[Node] = set()
    stack = [n]
    while stack:
        for p in g.pred[stack.pop()]:
            if p not in seen:
                seen.add(p)
                stack.append(p)
    seen.discard(n)
    return seen


def topological_generations(g: DiGraph) -> list[list[Node]]:
    """The nodes in layers: each node after every node with an edge to it (Kahn). Raises CycleError."""
    indegree = {n: len(p) for n, p in g.pred.items()}
    layer = [n for n, d in indegree.items() if d == 0]
    out = []
    while layer:
        out.append(layer)
        nxt = []
        for u in layer:
            for v in g.succ[u]:
                indegree[v] -= 1
                if indegree[v] == 0:
                    nxt.append(v)
        layer = nxt
    if sum(len(layer) for layer in out) != len(g.succ):
        raise CycleError("the graph has a cycle")
    return out
