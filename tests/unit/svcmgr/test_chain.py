"""The critical chain follows the groupings' own rule over recorded times, not the latest dependency."""

from __future__ import annotations

from svcmgr.chain import Group, critical_chain
from svcmgr.timings import StartRecord

S = 1_000_000_000


def rec(fmri: str, queued: float, deps_met: float, online: float | None, stop: float | None = None) -> StartRecord:
    return StartRecord(fmri, 1, queued=int(queued * S), deps_met=int(deps_met * S),
                       online=None if online is None else int(online * S), stop=None if stop is None else int(stop * S))


GRAPH = {
    "top": [Group("all", "require_all", ("mid", "side"))],
    "mid": [Group("db", "require_all", ("db",))],
    "any": [Group("one", "require_any", ("slowdb", "db"))],
    "opt": [Group("maybe", "optional_all", ("db", "never"))],
}


def groups(f: str) -> list[Group]:
    return GRAPH.get(f, [])


def chain_of(target: str, records: dict[str, list[StartRecord]]) -> list[str]:
    return [s.fmri for s in critical_chain(target, records, groups)]


RECORDS = {
    "db": [rec("db", 0, 0, 1.0)],
    "slowdb": [rec("slowdb", 0, 0, 3.0)],
    "mid": [rec("mid", 0, 1.0, 1.5)],
    "side": [rec("side", 0, 0, 0.2)],
    "top": [rec("top", 0, 1.5, 1.5)],
    "any": [rec("any", 0, 1.0, 1.1)],
    "opt": [rec("opt", 0, 1.0, 1.2)],
}


def test_require_all_follows_the_member_that_came_online_last():
    assert chain_of("top", RECORDS) == ["top", "mid", "db"]


def test_require_any_follows_the_member_that_came_online_first():
    assert chain_of("any", RECORDS) == ["any", "db"]  # not slowdb, which came online later


def test_optional_members_that_never_ran_do_not_decide():
    assert chain_of("opt", RECORDS) == ["opt", "db"]


def test_an_instance_queued_after_its_dependencies_were_up_ends_the_chain():
    late = {**RECORDS, "mid": [rec("mid", 5.0, 5.0, 5.2)]}  # enabled by an operator at 5 s
    assert chain_of("mid", late) == ["mid"]


def test_the_start_online_at_that_moment_is_the_one_followed():
    restarted = {**RECORDS, "db": [rec("db", 0, 0, 1.0, stop=9.0), rec("db", 9.0, 9.0, 9.5)]}
    steps = critical_chain("mid", restarted, groups)
    assert [s.fmri for s in steps] == ["mid", "db"] and steps[1].record is restarted["db"][0]
    assert steps[1].via == "db"


def test_no_start_online_no_chain():
    assert critical_chain("mid", {"mid": [rec("mid", 0, 1, None)]}, groups) == []
