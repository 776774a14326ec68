"""SMF's dependency evaluation (met / not yet / never) for every grouping, without processes."""

import pytest

from svcmgr.graph import MET, NEVER, NOTYET, Graph, find_cycles
from svcmgr.manifest import parse_service
from svcmgr.spec import resolve_instance
from svcmgr.states import State


def spec(name, deps=(), dependents=()):
    data = {"name": name, "methods": {"start": {"exec": ":true"}},
            "dependencies": [{"name": f"d{i}", "grouping": g, "restart_on": "none", "fmris": list(f)}
                             for i, (g, f) in enumerate(deps)]}
    if dependents:
        data["dependents"] = [{"name": f"x{i}", "grouping": g, "fmris": list(f)}
                              for i, (g, f) in enumerate(dependents)]
    return parse_service(data, "test")


def graph(*specs):
    return Graph({str(c.fmri): c for s in specs for c in (resolve_instance(s, n) for n in s.instances)})


def view(states):
    """states: fmri -> (State, enabled)."""
    return lambda f: states.get(f)


A, B, C = "svc:/t/a:default", "svc:/t/b:default", "svc:/t/c:default"
ON, OFF, DIS, MNT, UN = State.ONLINE, State.OFFLINE, State.DISABLED, State.MAINTENANCE, State.UNINITIALIZED


@pytest.mark.parametrize("grouping,states,expected", [
    ("require_all", {B: (ON, True), C: (ON, True)}, MET),
    ("require_all", {B: (ON, True), C: (OFF, True)}, NOTYET),
    ("require_all", {B: (ON, True), C: (MNT, True)}, NEVER),
    ("require_all", {B: (ON, True), C: (DIS, False)}, NEVER),
    ("require_all", {B: (ON, True)}, NEVER),  # C absent
    ("require_all", {B: (State.DEGRADED, True), C: (ON, True)}, MET),
    ("require_any", {B: (MNT, True), C: (ON, True)}, MET),
    ("require_any", {B: (MNT, True), C: (OFF, True)}, NOTYET),
    ("require_any", {B: (MNT, True), C: (DIS, False)}, NEVER),
    ("optional_all", {B: (ON, True)}, MET),  # C absent: skipped
    ("optional_all", {B: (ON, True), C: (MNT, True)}, MET),  # maintenance: skipped
    ("optional_all", {B: (ON, True), C: (DIS, False)}, MET),  # disabled counts as met
    ("optional_all", {B: (ON, True), C: (DIS, True)}, NOTYET),  # being enabled: wait
    ("optional_all", {B: (ON, True), C: (OFF, True)}, NOTYET),  # may still start
    ("optional_all", {B: (ON, True), C: (UN, True)}, NOTYET),
    ("exclude_all", {B: (DIS, False), C: (MNT, True)}, MET),
    ("exclude_all", {B: (ON, True), C: (DIS, False)}, NEVER),
    ("exclude_all", {B: (OFF, True), C: (DIS, False)}, NOTYET),  # enabled and merely offline blocks
    ("exclude_all", {}, MET),
])
def test_groupings(grouping, states, expected):
    present = [spec(f[len("svc:/"):].rsplit(":", 1)[0]) for f in (B, C) if f in states]
    g = graph(spec("t/a", [(grouping, [B, C])]), *present)
    assert g.satisfiability(A, view({A: (OFF, True), **states})) == expected


def test_no_dependencies_is_met():
    g = graph(spec("t/a"))
    assert g.satisfiability(A, view({A: (OFF, True)})) == MET


def test_offline_member_whose_own_dependencies_never_can_be_met_is_never():
    # a -> b -> c, c in maintenance: b can never start, so a never either (require_all),
    # while an optional_all on b counts b as met.
    g = graph(spec("t/a", [("require_all", [B])]), spec("t/b", [("require_all", [C])]), spec("t/c"))
    st = {A: (OFF, True), B: (OFF, True), C: (MNT, True)}
    assert g.satisfiability(A, view(st)) == NEVER
    g2 = graph(spec("t/a", [("optional_all", [B])]), spec("t/b", [("require_all", [C])]), spec("t/c"))
    assert g2.satisfiability(A, view(st)) == MET


def test_service_level_dependency_is_met_by_any_instance():
    data = {"name": "t/b", "methods": {"start": {"exec": ":true"}},
            "instances": {"one": {}, "two": {}}}
    b = parse_service(data, "test")
    g = graph(spec("t/a", [("require_all", ["svc:/t/b"])]), b)
    st = {A: (OFF, True), "svc:/t/b:one": (OFF, True), "svc:/t/b:two": (ON, True)}
    assert g.satisfiability(A, view(st)) == MET


def test_dependents_declared_elsewhere_become_dependencies():
    g = graph(spec("t/a"), spec("t/b", dependents=[("require_all", [A])]))
    assert g.dependencies_of(A) == [B]
    assert g.satisfiability(A, view({A: (OFF, True), B: (OFF, True)})) == NOTYET


def test_cycles_are_found_and_exclude_all_edges_do_not_count():
    cyc = find_cycles({str(c.fmri): c for s in (spec("t/a", [("require_all", [B])]),
                                                spec("t/b", [("optional_all", [C])]),
                                                spec("t/c", [("require_any", [A])]))
                       for c in (resolve_instance(s, "default"),)})
    assert cyc == [[A, B, C, A]]
    ok = find_cycles({str(c.fmri): c for s in (spec("t/a", [("require_all", [B])]),
                                               spec("t/b", [("exclude_all", [A])]))
                      for c in (resolve_instance(s, "default"),)})
    assert ok == []


def test_blockers_and_root_causes():
    g = graph(spec("t/a", [("require_all", [B])]), spec("t/b", [("require_all", [C])]), spec("t/c"))
    st = {A: (OFF, True), B: (OFF, True), C: (MNT, True)}
    (b,) = g.blockers(A, view(st))
    assert (b.member, b.why) == (B, "offline")
    assert g.root_causes(A, view(st)) == [[A, B, C]]


def test_stop_layers_put_dependents_first():
    g = graph(spec("t/a", [("require_all", [B])]), spec("t/b", [("require_all", [C])]), spec("t/c"))
    assert g.stop_layers([A, B, C]) == [[A], [B], [C]]


def test_the_index_and_the_dependencies_are_those_of_each_instance_service():
    """``Graph.by_service`` groups the instances by their service's FMRI (in the order of each service's first
    instance, each group sorted), made once per service; ``effective_dependencies`` given that index
    answers as it does without it."""
    from svcmgr.graph import effective_dependencies

    data = {"name": "t/m", "methods": {"start": {"exec": ":true"}},
            "instances": {"z": {}, "a": {}, "k": {"enabled": False}}}
    specs = [spec("t/b", [("require_all", ["svc:/t/m:a"])], [("optional_all", ["svc:/t/m"])]),
             parse_service(data, "test"), spec("t/a", [("require_any", ["svc:/t/b", "svc:/t/m"])])]
    configs = {str(c.fmri): c for s in specs for c in (resolve_instance(s, n) for n in s.instances)}
    expected: dict[str, list[str]] = {}
    for f, c in configs.items():
        expected.setdefault(str(c.fmri.service_fmri), []).append(f)
    g = Graph(configs)
    assert list(g.by_service.items()) == [(k, sorted(v)) for k, v in expected.items()]
    assert g.by_service["svc:/t/m"] == ["svc:/t/m:a", "svc:/t/m:k", "svc:/t/m:z"]
    assert g.deps == effective_dependencies(configs) == effective_dependencies(configs, g.by_service)
