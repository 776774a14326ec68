"""fault.disclosure: which records quote a service's log, and what a caller without its log right reads of them."""

from types import SimpleNamespace

from fault.cases import Case, Suspect
from fault.disclosure import Reader, quoted_services
from fault.rules import Rule, RuleSet
from fault.views import log_records
from svcmgr.api import Caller
from svcmgr.manifest import parse_service

APP = "svc:/site/app:default"
SPEC = parse_service({"name": "site/app", "methods": {"start": {"exec": ["/bin/true"]}},
                      "authorizations": {"read": {"users": ["1001"]}, "action": {"users": ["1002"]}}})


def _rule(name, *match):
    return Rule(name, "", match, ("svc",), "immediate", "fault.app.x", "minor", "SITE-8000-1D", 100, "none", "t")


RULES = RuleSet([_rule("app", "ereport.app.*"), _rule("svc", "ereport.svc.exit.*", "ereport.svc.maintenance")])


def _case(rule, *classes, count=None):
    c = Case.new(rule, "fault.app.x", "SITE-8000-1D", "minor", "n", "none")
    c.suspects = [Suspect("fault.app.x", APP, 100)]
    c.diagnoses = [{"rule": rule, "fault": "fault.app.x", "resource": APP}]
    for i, cls in enumerate(classes):
        c.add_ereport({"id": i + 1, "class": cls, "time": 1.0, "resource": APP}, "ERROR token=s3cret")
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


def _reader(uid, privileged=False, spec=SPEC):
    services = SimpleNamespace(instance=lambda f: SimpleNamespace(config=SimpleNamespace(spec=spec)))
    return Reader(Caller(1, uid, uid, frozenset({uid}), privileged), services)


def test_a_log_line_is_withheld_from_a_caller_without_the_services_log_right_and_shown_to_the_others():
    line = {"id": 1, "class": "ereport.app.db", "resource": APP, "source": "log", "payload": {"line": "s3cret"}}
    exit_ = {**line, "class": "ereport.svc.exit.signal", "source": "restarter", "payload": {"signal": 9}}
    case = _case("app", "ereport.app.db")
    for reader in (_reader(0, privileged=True), _reader(1001), _reader(1002)):
        assert reader.entry(line) is line and not reader.withholds(case, RULES)
    for reader in (_reader(1003), _reader(1001, spec=None)):  # no grant; a service since deleted
        assert reader.entry(line) == {**line, "payload": {}, "withheld": ["payload"]}
        assert reader.entry(exit_) is exit_  # the restarter's payload is not the service's log
        assert reader.withholds(case, RULES) and not reader.withholds(_case("svc", "ereport.svc.exit.signal"), RULES)
    (rec,) = log_records([case], withheld=frozenset({case.uuid}))
    assert rec["text"] == "(withheld)" and rec["withheld"] == ["text"]
    (rec,) = log_records([case])
    assert "s3cret" in rec["text"] and "withheld" not in rec


def test_fmdump_says_once_how_many_events_or_cases_it_shows_withheld(capsys):
    from fault.cli import fmdump

    args = fmdump.parser().parse_args(["--json"])
    out = fmdump.Printer(args, [], lambda uuids: {})
    case = _case("app", "ereport.app.db")
    records = log_records([case, case], withheld=frozenset({case.uuid}))  # two records of one case
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
