"""Health in: followed services' verdicts from states and fault cases, and the priority keepalived derives."""

from __future__ import annotations

import ipaddress

import pytest

from vrrp.health import Health, case_resources, effective_priority
from vrrp.model import Follow, VrrpInstance

WEB = "svc:/site/web:default"
DB = "svc:/site/db:default"


def inst(*follows: Follow, priority: int = 150) -> VrrpInstance:
    return VrrpInstance("web", "eth0", 51, (ipaddress.ip_interface("192.0.2.10/24"),), priority=priority,
                        follows=follows)


@pytest.mark.parametrize("state, healthy", [("online", True), ("degraded", False), ("offline", False),
                                            ("maintenance", False), ("disabled", False),
                                            ("uninitialized", False)])
def test_only_online_is_healthy(state, healthy):
    h = Health()
    h.set_state(WEB, state)
    assert h.healthy(WEB) is healthy


def test_absent_and_deleted_services_are_unhealthy():
    h = Health()
    assert not h.healthy(WEB) and h.why(WEB) == "absent"
    h.set_state(WEB, "online")
    h.set_state(WEB, "deleted")
    assert not h.healthy(WEB)


def test_a_case_retires_a_service_until_it_is_repaired():
    h = Health()
    h.set_state(WEB, "online")
    h.open_case("c1", {WEB})
    assert not h.healthy(WEB) and h.why(WEB) == "retired by case c1"
    h.close_case("c1")
    assert h.healthy(WEB)


def test_a_case_naming_the_service_retires_every_instance():
    h = Health()
    h.set_state(WEB, "online")
    h.open_case("c1", {"svc:/site/web"})
    assert not h.healthy(WEB)


def test_changed_reports_each_verdict_once():
    h = Health()
    h.set_state(WEB, "online")
    assert h.changed([WEB, DB]) == {WEB: True, DB: False}
    assert h.changed([WEB, DB]) == {}
    h.set_state(DB, "online")
    assert h.changed([WEB, DB]) == {DB: True}


@pytest.mark.parametrize("resource, data, want", [
    ("", {"suspects": [{"fmri": WEB, "certainty": 1.0}], "impacted": [DB]}, {WEB, DB}),
    (WEB, {}, {WEB}),
    ("", {"affected": ["site/web:default"], "resources": ["svc://localhost/site/db:default"]}, {WEB, DB}),
    ("", {"suspects": [{"resource": "svc:/site/web:default"}, {"asru": "dev:///sda"}]}, {WEB}),
    ("", {"suspects": "not a list", "affected": [42, None, {"fmri": 7}]}, set()),
    ("uuid-only", {"uuid": "1234"}, set()),
])
def test_case_resources_are_read_from_every_list(resource, data, want):
    assert case_resources(resource, data) == want


def test_effective_priority_follows_keepalived_rules():
    h = Health()
    h.set_state(WEB, "online")
    h.set_state(DB, "online")
    i = inst(Follow(WEB, -60), Follow(DB, -100))
    assert effective_priority(i, h) == 150
    h.set_state(WEB, "offline")
    assert effective_priority(i, h) == 90
    h.set_state(DB, "offline")
    assert effective_priority(i, h) == 1  # never below 1
    j = inst(Follow(WEB, 0), Follow(DB, -10))
    assert effective_priority(j, h) == 0  # weight 0: FAULT
