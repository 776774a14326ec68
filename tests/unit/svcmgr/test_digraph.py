"""svcmgr.digraph against networkx, on random graphs: the same components, ancestors, layers and cycles."""

from __future__ import annotations

import itertools
import random

import networkx as nx
import pytest

from svcmgr import digraph


def pair(seed: int, n: int = 30, p: float = 0.06) -> tuple[digraph.DiGraph, nx.DiGraph]:
    rnd = random.Random(seed)
    ours, theirs = digraph.DiGraph(), nx.DiGraph()
    nodes = [f"n{i}" for i in range(n)]
    ours.add_nodes_from(nodes)
    theirs.add_nodes_from(nodes)
    for u in nodes:
        for v in nodes:
            if rnd.random() < p:
                ours.add_edge(u, v, deps=[(u, v)])
                theirs.add_edge(u, v, deps=[(u, v)])
    return ours, theirs


@pytest.mark.parametrize("seed", range(40))
def test_components_ancestors_and_layers_are_networkx_s(seed: int) -> None:
    ours, theirs = pair(seed)
    assert list(ours.edges(data="deps")) == list(theirs.edges(data="deps"))
    assert sorted(map(sorted, digraph.strongly_connected_components(ours))) == \
        sorted(map(sorted, nx.strongly_connected_components(theirs)))
    for n in theirs:
        assert digraph.ancestors(ours, n) == nx.ancestors(theirs, n)
        assert list(ours.successors(n)) == list(theirs.successors(n))
        assert list(ours.predecessors(n)) == list(theirs.predecessors(n))
    if nx.is_directed_acyclic_graph(theirs):
        assert [sorted(x) for x in digraph.topological_generations(ours)] == \
            [sorted(x) for x in nx.topological_generations(theirs)]
    else:
        with pytest.raises(digraph.CycleError):
            digraph.topological_generations(ours)


@pytest.mark.parametrize("seed", range(40))
def test_a_cycle_is_found_in_each_component_that_has_one(seed: int) -> None:
    ours, _ = pair(seed, p=0.08)
    for comp in digraph.strongly_connected_components(ours):
        start = min(comp)
        cycle = digraph.find_cycle(ours.subgraph(comp), start)
        if len(comp) == 1 and not ours.has_edge(start, start):
            assert cycle == []
            continue
        assert cycle[0] == cycle[-1] and len(cycle) >= 2
        assert set(cycle) <= comp
        assert all(ours.has_edge(u, v) for u, v in itertools.pairwise(cycle))
        assert len(set(cycle[:-1])) == len(cycle) - 1


def test_a_subgraph_keeps_the_edges_between_its_nodes_and_their_attributes() -> None:
    g = digraph.DiGraph()
    g.add_edge("a", "b", deps=[1])
    g.add_edge("b", "c", deps=[2])
    sub = g.subgraph(["a", "b"])
    assert sub.nodes == ["a", "b"] and list(sub.edges()) == [("a", "b")]
    assert sub["a"]["b"] is g["a"]["b"] and "c" not in sub
