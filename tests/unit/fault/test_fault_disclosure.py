"""fault.disclosure: which records quote a service's log or the kernel log, and what a caller who may not read
them reads of them."""

from types import SimpleNamespace

import pytest

from fault.cases import Case, Suspect
from fault.cli.withheld import because
from fault.disclosure import Reader, kernel_log_open, quoted_kernel, quoted_services
from fault.rules import Rule, RuleSet
from fault.views import log_records
from svcmgr.api import Caller
from svcmgr.manifest import parse_service

APP = "svc:/site/app:default"
SPEC = parse_service({"name": "site/app", "methods": {"start": {"exec": ["/bin/true"]}},
                      "authorizations": {"read": {"users": ["1001"]}, "action": {"users": ["1002"]}}})


def _rule(name, *match):
    return Rule(name, "", match, ("svc",), "immediate", "fault.app.x", "minor", "SITE-8000-1D", 100, "none", "t")


RULES = RuleSet([_rule("app", "ereport.app.*"), _rule("svc", "ereport.svc.exit.*", "ereport.svc.maintenance"),
                 _rule("oom", "ereport.kernel.oom"), _rule("disk", "ereport.io.disk.error"),
                 _rule("any", "ereport.*")])


def _case(rule, *classes, count=None, resource=APP):
    c = Case.new(rule, "fault.app.x", "SITE-8000-1D", "minor", "n", "none")
    c.suspects = [Suspect("fault.app.x", resource, 100)]
    c.diagnoses = [{"rule": rule, "fault": "fault.app.x", "resource": resource}]
    for i, cls in enumerate(classes):
        c.add_ereport({"id": i + 1, "class": cls, "time": 1.0, "resource": resource}, "ERROR token=s3cret")
    c.ereport_count = count or len(classes)
    c.note("solved", "fault.app.x diagnosed: ERROR token=s3cret")
    return c


def test_a_case_quotes_a_log_when_it_holds_a_class_no_source_owns_or_may_hold_one_it_did_not_keep():
    assert quoted_services(_case("svc", "ereport.svc.exit.signal"), RULES) == set()
    assert quoted_services(_case("app", "ereport.svc.exit.signal", "ereport.app.db"), RULES) == {APP}
    # more ereports than kept: its rules say which classes the others may have had
    assert quoted_services(_case("app", "ereport.svc.exit.signal", count=500), RULES) == {APP}
    assert quoted_services(_case("svc", "ereport.svc.exit.signal", count=500), RULES) == set()
    assert quoted_services(_case("gone", "ereport.svc.exit.signal", count=500), RULES) == {APP}


def _reader(uid, privileged=False, spec=SPEC, dmesg_restrict="/nonexistent/dmesg_restrict"):
    services = SimpleNamespace(instance=lambda f: SimpleNamespace(config=SimpleNamespace(spec=spec)))
    return Reader(Caller(1, uid, uid, frozenset({uid}), privileged), services, dmesg_restrict=dmesg_restrict)


def test_a_log_line_is_withheld_from_a_caller_without_the_services_log_right_and_shown_to_the_others():
    line = {"id": 1, "class": "ereport.app.db", "resource": APP, "source": "log", "payload": {"line": "s3cret"}}
    exit_ = {**line, "class": "ereport.svc.exit.signal", "source": "restarter", "payload": {"signal": 9}}
    case = _case("app", "ereport.app.db")
    for reader in (_reader(0, privileged=True), _reader(1001), _reader(1002)):
        assert reader.entry(line) is line and not reader.withholds(case, RULES)
    for reader in (_reader(1003), _reader(1001, spec=None)):  # no grant; a service since deleted
        assert reader.entry(line) == {**line, "payload": {}, "withheld": ["payload"], "quotes": ["log"]}
        assert reader.entry(exit_) is exit_  # the restarter's payload is not the service's log
        assert reader.withholds(case, RULES) == ["log"]
        assert not reader.withholds(_case("svc", "ereport.svc.exit.signal"), RULES)
    (rec,) = log_records([case], withheld={case.uuid: ["log"]})
    assert rec["text"] == "(withheld)" and rec["withheld"] == ["text"] and rec["quotes"] == ["log"]
    (rec,) = log_records([case])
    assert "s3cret" in rec["text"] and "withheld" not in rec


def test_fmdump_says_once_how_many_events_or_cases_it_shows_withheld(capsys):
    from fault.cli import fmdump

    args = fmdump.parser().parse_args(["--json"])
    out = fmdump.Printer(args, [], lambda uuids: {})
    case = _case("app", "ereport.app.db")
    records = log_records([case, case], withheld={case.uuid: ["log"]})  # two records of one case
    out.records(records)
    out.say_withheld()
    out.records(records)
    out.say_withheld()
    err = capsys.readouterr().err
    assert err.count("withheld") == 1 and err.startswith("fmdump: 1 case's text is withheld: it may quote a line")
    args = fmdump.parser().parse_args(["-e", "--json"])
    out = fmdump.Printer(args, [], lambda uuids: {})
    line = {"id": 1, "time": 1.0, "class": "ereport.app.db", "node": "n", "resource": APP, "source": "log",
            "payload": {}, "withheld": ["payload"]}
    out.entries([line, {**line, "id": 2}, {**line, "id": 3, "withheld": None}])
    out.say_withheld()
    assert capsys.readouterr().err.startswith("fmdump: 2 events' payloads are withheld: they hold a line")


OOM = {"id": 7, "class": "ereport.kernel.oom", "resource": APP, "source": "kmsg",
       "payload": {"pid": 4242, "comm": "hog", "memcg": "/svcmgr/site-app", "line": "Killed process 4242 (hog)"}}
DISK = {**OOM, "id": 8, "class": "ereport.io.disk.error", "resource": "dev:///dev/sdq",
        "payload": {"disk": "sdq", "sector": 16, "line": "I/O error, dev sdq, sector 16"}}
STRAY = {**OOM, "id": 9, "resource": "sw:///python3"}  # a process no service owns


@pytest.fixture
def sysctl(tmp_path):
    """The file a Reader reads as kernel.dmesg_restrict: write "1" or "0" to it."""
    path = tmp_path / "dmesg_restrict"
    path.write_text("1\n")
    return path


def test_the_kernel_log_is_open_only_while_dmesg_restrict_reads_0(sysctl, tmp_path):
    assert not kernel_log_open(str(sysctl))
    sysctl.write_text("0\n")
    assert kernel_log_open(str(sysctl))
    for text in ("2\n", "", "garbage"):
        sysctl.write_text(text)
        assert not kernel_log_open(str(sysctl)), text
    assert not kernel_log_open(str(tmp_path / "missing"))  # unreadable: restricted
    assert not kernel_log_open(str(tmp_path))  # a folder: unreadable too


def test_a_kernel_log_payload_is_withheld_from_an_unprivileged_caller_while_the_kernel_restricts_its_log(sysctl):
    root = _reader(0, privileged=True, dmesg_restrict=str(sysctl))
    nobody = _reader(65534, dmesg_restrict=str(sysctl))
    for e in (OOM, DISK, STRAY):
        assert root.entry(e) is e
        assert nobody.entry(e) == {**e, "payload": {}, "withheld": ["payload"], "quotes": ["kmsg"]}
    injected = {**DISK, "source": "inject"}  # root's fminject of a kernel class: the same class, the same rule
    assert nobody.entry(injected)["withheld"] == ["payload"]
    exit_ = {**OOM, "class": "ereport.svc.exit.signal", "source": "restarter", "payload": {"signal": 9}}
    assert nobody.entry(exit_) is exit_  # the restarter's report of the same death is not the kernel log
    expired = {"id": 10, "class": "ereport.kernel.oom", "time": 1.0, "resource": "sw:///x", "payload": {},
               "expired": True}  # fm.dump -u of an entry gone from the error log: no source, its class says
    assert nobody.entry(expired)["quotes"] == ["kmsg"]


def test_a_kernel_log_payload_is_shown_to_everyone_while_the_kernel_gives_its_log_to_everyone(sysctl):
    nobody = _reader(65534, dmesg_restrict=str(sysctl))
    assert nobody.entry(OOM)["withheld"] == ["payload"]
    sysctl.write_text("0\n")  # asked again at the next request: not kept from the first
    nobody = _reader(65534, dmesg_restrict=str(sysctl))
    for e in (OOM, DISK, STRAY):
        assert nobody.entry(e) is e
    case = _case("oom", "ereport.kernel.oom", resource="sw:///python3")
    assert not nobody.withholds(case, RULES)


def test_a_delegated_user_reads_the_oom_kill_of_a_process_of_their_own_service_and_no_other(sysctl):
    for uid in (1001, 1002):  # [authorizations.read] and .action on svc:/site/app: its log right
        reader = _reader(uid, dmesg_restrict=str(sysctl))
        assert reader.entry(OOM) is OOM
        assert not reader.withholds(_case("oom", "ereport.kernel.oom"), RULES)
        for e in (DISK, STRAY):  # a disk, a process no service owns: the kernel's alone
            assert reader.entry(e)["quotes"] == ["kmsg"]
    for reader in (_reader(1003, dmesg_restrict=str(sysctl)),  # no grant on the service
                   _reader(1001, spec=None, dmesg_restrict=str(sysctl))):  # a service since deleted
        assert reader.entry(OOM)["withheld"] == ["payload"]
        assert reader.withholds(_case("oom", "ereport.kernel.oom"), RULES) == ["kmsg"]


def test_a_case_quotes_the_kernel_log_when_it_holds_a_kernel_class_or_may_hold_one_it_did_not_keep():
    disk = "dev:///dev/sdq"
    assert quoted_kernel(_case("disk", "ereport.io.disk.error", resource=disk), RULES) == {disk}
    assert quoted_kernel(_case("oom", "ereport.kernel.oom"), RULES) == {APP}
    assert quoted_kernel(_case("svc", "ereport.svc.exit.signal"), RULES) == set()
    assert quoted_kernel(_case("app", "ereport.app.db"), RULES) == set()
    # more ereports than kept: its rules say which classes the others may have had
    assert quoted_kernel(_case("disk", count=500, resource=disk), RULES) == {disk}
    assert quoted_kernel(_case("any", "ereport.svc.exit.signal", count=500), RULES) == {APP}  # ereport.* may
    assert quoted_kernel(_case("app", "ereport.app.db", count=500), RULES) == set()
    assert quoted_kernel(_case("gone", "ereport.svc.exit.signal", count=500), RULES) == {APP}
    nameless = _case("gone", count=500)
    nameless.suspects, nameless.diagnoses = [], []
    assert quoted_kernel(nameless, RULES) == {""}  # the node's


def test_a_case_quoting_the_kernel_log_has_its_detail_and_history_withheld_and_says_whose(sysctl):
    from fault.knowledge import Article, KnowledgeBase
    from fault.views import case_view

    case = _case("disk", "ereport.io.disk.error", resource="dev:///dev/sdq")
    nobody = _reader(65534, dmesg_restrict=str(sysctl))
    assert nobody.withholds(case, RULES) == ["kmsg"] and not _reader(0, True).withholds(case, RULES)
    both = _case("any", "ereport.app.db", "ereport.kernel.oom")
    assert nobody.withholds(both, RULES) == ["log", "kmsg"]
    kb = KnowledgeBase({"SITE-8000-1D": Article("SITE-8000-1D", "t", "Last: {detail}.", "r", "i", "a", "kb.toml")})
    view = case_view(case, kb, lambda f, s: [], nobody.withholds(case, RULES))
    assert view["description"] == "Last: (withheld)." and "s3cret" not in str(view)
    assert view["withheld"] == ["detail", "history"] and view["quotes"] == ["kmsg"]
    view = case_view(case, kb, lambda f, s: [], [])
    assert "s3cret" in view["description"] and "withheld" not in view


def test_the_commands_say_whose_text_they_withhold(capsys):
    from fault.cli import fmdump

    assert because(["log"]).startswith("a line of a service's log") and "kernel" not in because(["log"])
    assert because(["kmsg"]).startswith("a line of the kernel log") and "dmesg_restrict" in because(["kmsg"])
    both = because(["kmsg", "log"])
    assert both.index("a service's log") < both.index("the kernel log")
    out = fmdump.Printer(fmdump.parser().parse_args(["-e", "--json"]), [], lambda uuids: {})
    out.entries([{**OOM, "time": 1.0, "node": "n", "payload": {}, "withheld": ["payload"], "quotes": ["kmsg"]}])
    out.say_withheld()
    err = capsys.readouterr().err
    assert err.startswith("fmdump: 1 event's payload is withheld: it holds a line of the kernel log, which only root")
    assert err.count("withheld") == 1


def test_a_cascade_case_that_kept_only_its_suspects_ereports_may_quote_those_it_did_not_keep():
    dependent = "svc:/site/web:default"
    cascade = Rule("cascade", "", ("ereport.svc.exit.*",), ("svc",), "cascade", "fault.svc.cascade", "major",
                   "SVC-8000-6M", 100, "none", "t", window=30.0)
    rules = RuleSet([cascade])
    # the suspect's recent ereports come first (its OOM kill, a log line among them): all kept, then a dependent's
    case = _case("cascade", "ereport.kernel.oom", "ereport.app.db", "ereport.svc.exit.signal")
    case.add_ereport({"id": 99, "class": "ereport.svc.exit.signal", "time": 2.0, "resource": dependent})
    case.ereport_count = 500
    assert quoted_kernel(case, rules) == {APP} and quoted_services(case, rules) == {APP}  # as kept
    case.ereports = [b for b in case.ereports if b["class"] == "ereport.svc.exit.signal"]
    assert quoted_kernel(case, rules) == set() and quoted_services(case, rules) == set()  # all its quotes kept
    case.ereports = [b for b in case.ereports if b["resource"] == APP]  # only the suspect's: more may be cut
    assert quoted_kernel(case, rules) == {APP} and quoted_services(case, rules) == {APP}
