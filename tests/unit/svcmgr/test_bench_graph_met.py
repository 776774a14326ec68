"""The engine's fast paths agree with the full evaluation, whatever the groupings and states: Graph.met is
satisfiability == MET, and affected_by's walk pruned to Graph.optional_upstream finds what the unpruned one does."""

from __future__ import annotations

import random

from svcmgr.graph import MET, Graph
from svcmgr.graphwalks import affected_by
from svcmgr.manifest import parse_service
from svcmgr.spec import resolve_instance
from svcmgr.states import State

GROUPINGS = ("require_all", "require_any", "optional_all", "exclude_all")
STATES = (State.ONLINE, State.DEGRADED, State.OFFLINE, State.DISABLED, State.MAINTENANCE, State.UNINITIALIZED)


def _graph(rnd: random.Random, n: int) -> Graph:
    configs = {}
    for i in range(n):
        deps = []
        for j in range(rnd.randrange(0, 3)):
            targets = [f"svc:/t/s{k}:default" for k in rnd.sample(range(i), min(i, rnd.randrange(1, 3)))] if i else []
            if rnd.random() < 0.1:
                targets.append("svc:/t/absent:default")
            if targets:
                deps.append({"name": f"d{j}", "grouping": rnd.choice(GROUPINGS), "fmris": targets})
        spec = parse_service({"name": f"t/s{i}", "methods": {"start": {"exec": ["true"]}}, "dependencies": deps},
                             "test")
        cfg = resolve_instance(spec, "default")
        configs[str(cfg.fmri)] = cfg
    return Graph(configs)


def test_met_agrees_with_satisfiability():
    rnd = random.Random(3)
    checked = 0
    seen = set()
    for _ in range(60):
        n = rnd.randrange(2, 9)
        g = _graph(rnd, n)
        fmris = list(g.configs)
        for _ in range(40):
            states = {f: (rnd.choice(STATES), rnd.random() < 0.8) for f in fmris}
            view = states.get
            for f in fmris:
                met = g.met(f, view)
                assert met == (g.satisfiability(f, view) == MET), (f, states)
                seen.add(met)
                checked += 1
    assert checked > 10_000 and seen == {True, False}



def test_affected_by_pruned_to_optional_upstream_agrees_with_the_whole_walk():
    rnd = random.Random(5)
    checked = 0
    pruned_away = 0
    for _ in range(80):
        n = rnd.randrange(2, 10)
        g = _graph(rnd, n)
        whole = Graph(g.configs)
        whole.optional_upstream = frozenset(whole.g)  # the cached property, set: the walk goes everywhere
        fmris = list(g.configs)
        pruned_away += len(fmris) - len(g.optional_upstream)
        for _ in range(30):
            states = {f: (rnd.choice(STATES), rnd.random() < 0.8) for f in fmris}
            for f in fmris:
                for came_up in (False, True):
                    assert (affected_by(g, f, states.get, came_up=came_up)
                            == affected_by(whole, f, states.get, came_up=came_up)), (f, came_up, states)
                    checked += 1
    assert checked > 10_000 and pruned_away > 0
