"""svcmgr.authz: who holds which right, and which property groups a value grant reaches."""

import pytest

from svcmgr import authz
from svcmgr.api import ApiError, Caller
from svcmgr.authz import Right
from svcmgr.manifest import parse_service

SPEC = parse_service({
    "name": "site/web",
    "methods": {"start": {"exec": ["/bin/true"], "environment": {"DB_PASSWORD": "s3cret"}}},
    "dependencies": [{"name": "db", "fmris": ["svc:/site/db"]}],
    "authorizations": {"action": {"users": ["1001"]}, "value": {"users": ["1002"]}, "read": {"groups": ["4242"]}},
    "properties": {"config": {"port": 80}, "secrets": {"read_authorization": "x", "key": "k"}},
    "smf": {"pg_types": {"fw": "framework", "config2": "application"}},
})


def caller(uid, *gids, privileged=False):
    return Caller(1, uid, uid, frozenset({uid, *gids}), privileged)


@pytest.mark.parametrize("who,held", [
    (caller(1001), {Right.ACTION, Right.LOG}),
    (caller(1002), {Right.ACTION, Right.VALUE, Right.LOG}),
    (caller(1003, 4242), {Right.READ, Right.LOG}),
    (caller(1004), set()),
    (caller(0, privileged=True), set(Right)),
])
def test_each_grant_carries_its_rights_and_root_all(who, held):
    assert {r for r in Right if authz.allowed(who, SPEC, r)} == held


def test_no_service_means_root_only():
    assert not authz.allowed(caller(1002), None, Right.ACTION)
    with pytest.raises(ApiError, match="may not repair dev:///dev/sda: only root may"):
        authz.require(caller(1002), [("dev:///dev/sda", None)], Right.ACTION, "repair")


@pytest.mark.parametrize("pg,kind", [
    ("start", "method"), ("stop", "method"), ("refresh", "method"), ("db", "dependency"),
    ("general", "framework"), ("restarter", "framework"), ("startd", "framework"), ("restart", "framework"),
    ("readiness", "framework"), ("health", "framework"), ("log", "framework"), ("tm_common_name", "framework"),
    ("fw", "framework"), ("config", "application"), ("config2", "application"), ("anything", "application"),
])
def test_group_types(pg, kind):
    assert authz.group_type(SPEC, pg) == kind


def test_refusal_names_who_may():
    who = caller(1001)
    with pytest.raises(ApiError) as e:
        authz.require(who, [("svc:/site/web:default", SPEC)], Right.VALUE, "disable")
    assert str(e.value) == (f"permission denied: {who.describe()} may not disable svc:/site/web:default: needs root "
                            "or a grant in the service's [authorizations.value]")


def test_redaction_hides_environments_and_protected_groups():
    data = SPEC.to_dict()
    hidden = authz.redact_manifest(data)
    assert data["methods"]["start"]["environment"]["DB_PASSWORD"] == authz.HIDDEN
    assert data["properties"]["secrets"] == {"read_authorization": "x", "key": authz.HIDDEN}
    assert data["properties"]["config"]["port"] == 80
    assert sorted(hidden) == ["methods.start.environment.DB_PASSWORD", "properties.secrets.key"]
    view = {"start": {"type": {"type": "astring", "values": ["method"]},
                      "environment": {"type": "astring", "values": ["DB_PASSWORD=s3cret"]}},
            "secrets": {"read_authorization": {"type": "astring", "values": ["x"]},
                        "key": {"type": "astring", "values": ["k"]}},
            "config": {"port": {"type": "integer", "values": [80]}}}
    assert sorted(authz.redact_view(view, SPEC)) == ["secrets/key", "start/environment"]
    assert view["start"]["environment"]["values"] == [authz.HIDDEN] and view["config"]["port"]["values"] == [80]


OTHER = parse_service({"name": "site/other", "methods": {"start": {"exec": ["/bin/true"]}}})


def test_partition_keeps_the_permitted_and_says_why_each_other_is_refused():
    who = caller(1001)
    targets = [("svc:/site/other:default", OTHER), ("svc:/site/web:default", SPEC), ("dev:///dev/sda", None)]
    permitted, refused = authz.partition(who, targets, Right.ACTION, "restart")
    assert permitted == ["svc:/site/web:default"]
    assert list(refused) == ["svc:/site/other:default", "dev:///dev/sda"]
    assert refused["svc:/site/other:default"] == (
        f"permission denied: {who.describe()} may not restart svc:/site/other:default: needs root or a grant in the "
        "service's [authorizations.action] or [authorizations.value]")
    assert refused["dev:///dev/sda"].endswith("may not restart dev:///dev/sda: only root may")
    # require refuses with the first refusal's very words
    with pytest.raises(ApiError) as e:
        authz.require(who, targets, Right.ACTION, "restart")
    assert str(e.value) == refused["svc:/site/other:default"]
    assert authz.partition(caller(0, privileged=True), targets, Right.OPERATOR, "x") == (
        [t for t, _ in targets], {})
