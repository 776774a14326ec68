"""illumos privilege sets as capabilities, the context vocabulary, the child's plan, cgroup decisions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from svcmgr import privileges as P
from svcmgr.credentials import Credentials
from svcmgr.manifest import ManifestErrors, parse_service
from svcmgr.rctl import Controls, _v2_available
from svcmgr.security import Resources, Security
from svcmgr.spec import resolve_instance

REPO = Path(__file__).resolve().parents[3]
ROUTED = ("basic,proc_owner,proc_fork,proc_exec,proc_info,proc_session,file_read,file_write,sys_ip_config,"
          "net_privaddr,net_icmpaccess,net_rawaccess")


def caps(*names: str) -> frozenset[int]:
    return frozenset(P.cap_number(n) for n in names)  # type: ignore[misc]


def test_every_illumos_privilege_maps_to_capabilities_or_says_why_none() -> None:
    assert len(P.PRIVILEGES) >= 85
    for name, (cs, why) in P.PRIVILEGES.items():
        assert all(c in P.CAPS for c in cs), name
        assert bool(cs) != bool(why), f"{name}: capabilities, or a reason nothing is needed, not both"
    assert {"file_link_any", "file_read", "file_write", "net_access", "proc_exec", "proc_fork",
                       "proc_info", "proc_secflags", "proc_session"} == P.BASIC


@pytest.mark.parametrize(("expr", "want"), [
    ("basic", set()),
    ("none", set()),
    ("basic,net_privaddr", {"CAP_NET_BIND_SERVICE"}),
    ("BASIC,PRIV_NET_PRIVADDR", {"CAP_NET_BIND_SERVICE"}),
    ("basic,CAP_NET_RAW,cap_kill", {"CAP_NET_RAW", "CAP_KILL"}),
    ("basic,proc_setid,!proc_setid", set()),
    ("basic,-net_privaddr,+net_privaddr", {"CAP_NET_BIND_SERVICE"}),
    ("all,none,proc_chroot", {"CAP_SYS_CHROOT"}),
    (ROUTED, {"CAP_KILL", "CAP_SYS_PTRACE", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}),
])
def test_expressions_read_left_to_right(expr: str, want: set[str]) -> None:
    assert set(P.parse(expr).names()) == want


def test_sets_and_negation_withhold_every_capability_a_negated_privilege_maps_to() -> None:
    assert P.parse("all").caps == P.parse("zone").caps == frozenset(range(len(P.CAPS)))
    s = P.parse("zone,!sys_mount")  # sys_admin maps to CAP_SYS_ADMIN too: the negation wins
    assert P.cap_number("CAP_SYS_ADMIN") not in s.caps and len(s.caps) == len(P.CAPS) - 1
    assert P.parse("all,!proc_owner").caps == frozenset(range(len(P.CAPS))) - caps("CAP_KILL", "CAP_SYS_PTRACE")
    assert P.parse("!sys_admin,all").caps == frozenset(range(len(P.CAPS)))  # all comes after: everything
    # Named capabilities are told apart from those all/zone brought (svcmgrd may lack the latter).
    assert P.parse("zone,sys_resource").named == caps("CAP_SYS_RESOURCE")
    assert P.parse("basic,!proc_info,!file_link_any").unenforced == ("file_link_any", "proc_info")


@pytest.mark.parametrize("bad", ["basic,net_privadr", "CAP_NOPE", "basic,!proc_fokr", "priv_"])
def test_unknown_names_are_refused_naming_the_token(bad: str) -> None:
    with pytest.raises(ValueError, match="is not an illumos privilege"):
        P.parse(bad)


def test_summary_is_short() -> None:
    assert P.summary([]) == "none" and P.summary(list(P.CAPS)) == "all" and P.summary(None) == "as svcmgrd"
    assert P.summary([c for c in P.CAPS if c != "CAP_SYS_RESOURCE"]) == "all but CAP_SYS_RESOURCE"
    assert P.summary(["CAP_KILL"]) == "CAP_KILL"


def test_the_documented_table_is_the_module_table() -> None:
    assert P.markdown_table() in (REPO / "docs" / "manifests.md").read_text()


def _spec(**top: object) -> dict[str, object]:
    return {"name": "site/x", "methods": {"start": {"exec": "sleep 1"}}, **top}


def test_context_fields_merge_method_over_instance_over_service() -> None:
    spec = parse_service(_spec(
        user="nobody", privileges="basic,net_privaddr", umask="022", rlimits={"nofile": 1024, "core": 0},
        resources={"memory": "64Mi", "tasks": 10},
        methods={"start": {"exec": "sleep 1", "umask": "077", "rlimits": {"nofile": [10, 20]}}},
        instances={"a": {"limit_privileges": "basic,net_privaddr", "resources": {"tasks": 5, "cpu": "50%"}}}), "x.toml")
    cfg = resolve_instance(spec, "a")
    sec = cfg.method_context("start").security
    assert sec.privileges == "basic,net_privaddr" and sec.limit_privileges == "basic,net_privaddr"
    assert sec.umask == 0o77 and dict(sec.rlimits) == {"nofile": (10, 20), "core": (0, 0)}
    assert cfg.resources == Resources(memory=64 << 20, cpu=0.5, tasks=5)
    assert parse_service(spec.to_dict(), "x.toml") == spec  # the normal form round-trips


@pytest.mark.parametrize(("top", "message"), [
    ({"privileges": "basic,net_privadr"}, "privileges: 'net_privadr' is not an illumos privilege"),
    ({"privileges": 7}, 'privileges: expected a privilege set such as "basic,net_privaddr"'),
    ({"capabilities": ["NET_RAW"]}, "capabilities: 'NET_RAW' is not a Linux capability"),
    ({"supplemental_groups": ["a b"]}, "supplemental_groups: 'a b' is not a valid name"),
    ({"umask": "0800"}, "umask: expected an octal mode"),
    ({"rlimits": {"nofile": "many"}}, "rlimits.nofile: expected a number or \"unlimited\""),
    ({"rlimits": {"stack": ["1M", "2M", "3M"]}}, "rlimits.stack: expected one value or [soft, hard]"),
    ({"rlimits": {"nofile": 2**70}}, "rlimits.nofile: expected a number or \"unlimited\""),
    ({"resources": {"memory": "1k"}}, "resources.memory: 1000 bytes is below"),
    ({"resources": {"cpu": "lots"}}, "resources.cpu: expected a number of CPUs"),
    ({"resources": {"tasks": 0}}, "resources.tasks: 0 is out of range"),
    ({"resources": {"swap": 1}}, "resources.swap: unknown field"),
    ({"privileges": "basic,net_rawaccess", "limit_privileges": "basic,net_privaddr"},
     "privileges: svc:/site/x:default start method: grants CAP_NET_RAW, which limit_privileges"),
])
def test_bad_fields_name_the_file_and_field(top: dict[str, object], message: str) -> None:
    with pytest.raises(ManifestErrors) as e:
        parse_service(_spec(**top), "/m/x.toml")
    assert f"/m/x.toml: {message}" in str(e.value)


def test_negated_basic_privileges_are_warned_about_not_refused() -> None:
    spec = parse_service(_spec(privileges="basic,!proc_info,net_privaddr"), "/m/x.toml")
    assert spec.warnings == ("/m/x.toml: svc:/site/x: start method: privileges: !proc_info: basic privileges "
                             "Linux grants every process; not withheld",)


def test_a_method_that_asks_nothing_needs_nothing_in_the_child() -> None:
    assert not Credentials.resolve(None, None, Security()).needs_child
    assert Credentials.resolve(None, None, Security(umask=0o22)).needs_child
    nobody = Credentials.resolve("nobody", None, Security())
    assert nobody.needs_child and nobody.no_new_privs and nobody.caps == frozenset()
    assert not Credentials.resolve("nobody", None, Security(no_new_privileges=False)).no_new_privs
    with pytest.raises(LookupError, match="group 'no-such-group' does not exist"):
        Credentials.resolve(None, None, Security(supplemental_groups=("no-such-group",)))


@pytest.mark.skipif(os.geteuid() != 0, reason="the plan depends on svcmgrd holding capabilities")
def test_the_plan_cuts_grants_to_what_svcmgrd_holds() -> None:
    c = Credentials.resolve("nobody", None, Security(privileges="basic,net_privaddr,CAP_CHECKPOINT_RESTORE"))
    assert c.caps is not None and P.cap_number("CAP_NET_BIND_SERVICE") in c.caps
    root = Credentials.resolve(None, None, Security(privileges="basic"))
    assert root.caps == frozenset() and root.noroot  # uid 0 with nothing: the NOROOT secure bits
    limited = Credentials.resolve(None, None, Security(limit_privileges="basic,net_privaddr"))
    assert limited.caps is None and P.cap_number("CAP_SYS_ADMIN") in limited.drop


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_v2_limits_only_where_the_controllers_reach_the_contracts(tmp_path: Path) -> None:
    # A delegated subtree (systemd's Delegate=yes): the daemon's group offers memory and pids.
    _tree(tmp_path, {"home/cgroup.controllers": "cpuset memory pids\n", "home/cgroup.subtree_control": "",
                     "home/base/cgroup.controllers": "memory pids\n", "home/base/cgroup.subtree_control": ""})
    assert _v2_available(str(tmp_path / "home" / "base")) == {"memory", "pids"}
    assert (tmp_path / "home/base/cgroup.subtree_control").read_text() == "+pids"  # written (a file here)
    # A hybrid host: the unified hierarchy carries hugetlb alone.
    _tree(tmp_path, {"u/cgroup.controllers": "hugetlb\n", "u/b/cgroup.controllers": "",
                     "u/b/cgroup.subtree_control": ""})
    assert _v2_available(str(tmp_path / "u" / "b")) == set()


def test_limits_a_daemon_cannot_apply_are_refused_with_the_reason() -> None:
    off = Controls.off("t", "svcmgrd runs without cgroups (--no-cgroup)")
    assert off.refusals(Resources(memory=64 << 20, tasks=3)) == [
        ("memory", "cannot be applied here: svcmgrd runs without cgroups (--no-cgroup)"),
        ("tasks", "cannot be applied here: svcmgrd runs without cgroups (--no-cgroup)")]
    assert off.refusals(Resources()) == []
    with pytest.raises(OSError, match="memory: svcmgrd runs without cgroups"):
        off.create("x.1", Resources(memory=64 << 20), None)


_GRANT = {"privileges": "basic,net_rawaccess"}


@pytest.mark.parametrize("instance", [
    {},  # the grant in the service's start method, below
    {"methods": {"start": {"exec": ["true"], **_GRANT}}},  # in the instance's own start method
    _GRANT,  # in the instance's context
])
def test_a_grant_outside_a_limit_set_at_another_level_is_refused(instance: dict[str, object]) -> None:
    """The merged context of each method is checked, whichever level (service, instance, method) sets the
    grant: a manifest whose only security field is deep in an instance is checked too."""
    start = {"exec": ["true"], **({} if instance else _GRANT)}
    data: dict[str, object] = {"name": "site/x", "limit_privileges": "basic,net_privaddr",
                               "methods": {"start": start}, "instances": {"a": instance}}
    with pytest.raises(ManifestErrors, match="svc:/site/x:a start method: grants CAP_NET_RAW"):
        parse_service(data, "/m/x.toml")
    del data["limit_privileges"]
    assert parse_service(data, "/m/x.toml").instances["a"]  # without the limit, the grant stands
