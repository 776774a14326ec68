"""Rule files: the shipped ones load; a bad file is refused whole, naming the file, the rule and the reason."""

import textwrap

import pytest

from fault.knowledge import load_knowledge
from fault.rules import SHIPPED_RULES, load_rules, parse_rules

KB, _ = load_knowledge()


def test_shipped_rules_load():
    rules, errors = load_rules([SHIPPED_RULES], KB)
    assert errors == []
    names = [r.name for r in rules]
    assert {"svc-cascade", "svc-flapping", "svc-maintenance", "disk-errors", "prometheus-alert"} <= set(names)
    flapping = rules.by_name["svc-flapping"]
    assert flapping.kind == "serd" and flapping.n == 2 and flapping.t == 1800.0
    assert rules.consumers("ereport.svc.exit.signal", "svc")
    assert [r.name for r in rules.consumers("ereport.io.disk.error", "dev")] == ["disk-errors"]
    assert rules.consumers("ereport.io.disk.error", "svc") == ()


GOOD = """
[[rule]]
name = "r1"
match = ["ereport.io.disk.error"]
serd = { n = 2, t = "1m" }
fault = "fault.io.disk.degraded"
msgid = "DISK-8000-3E"
"""


@pytest.mark.parametrize(("body", "field", "reason"), [
    ('name = "Bad Name"', "rule[Bad Name].name", "is not a valid name"),
    ('match = ["fault.x"]', "rule[r].match", "is not an ereport class or pattern"),
    ('match = []', "rule[r].match", "must not be empty"),
    ('fault = "ereport.x.y"', "rule[r].fault", "is not a fault class"),
    ('msgid = "NOPE-8000-99"', "rule[r].msgid", "has no article in the knowledge base"),
    ('msgid = "lowercase"', "rule[r].msgid", "is not a message id"),
    ('severity = "fatal"', "rule[r].severity", "must be one of minor, major, critical"),
    ('response = "reboot"', "rule[r].response", "must be one of none, degrade, maintenance"),
    ('serd = { n = -1, t = "1m" }', "rule[r].serd.n", "out of range"),
    ('serd = { n = 2 }', "rule[r].serd.t", "is required"),
    ('serd = { n = 2, t = "0s" }', "rule[r].serd.t", "must be greater than zero"),
    ('serd = { n = 2, t = "soon" }', "rule[r].serd.t", "cannot parse duration"),
    ('serd = { n = 2, t = "1m", x = 1 }', "rule[r].serd.x", "unknown field"),
    ('threshold = { field = "value" }', "rule[r].threshold", "needs 'above' or 'below'"),
    ('threshold = { field = "value", above = 1, below = 5 }', "rule[r].threshold.below", "must be below"),
    ('serd = { n = 1, t = "1m" }\nthreshold = { field = "v", above = 1 }', "rule[r].threshold",
     "not both serd and threshold"),
    ('resources = ["disk"]', "rule[r].resources", "unknown FMRI scheme"),
    ('resolve_when = {}', "rule[r].resolve_when", "is empty"),
    ('certainty = 150', "rule[r].certainty", "out of range"),
    ('colour = "red"', "rule[r].colour", "unknown field"),
    ('cascade = { window = "10s" }\nresources = ["dev"]', "rule[r].resources", "only 'svc' resources"),
])
def test_bad_rules_name_file_rule_and_reason(body, field, reason):
    base = {"name": '"r"', "match": '["ereport.io.disk.error"]', "fault": '"fault.io.disk.degraded"',
            "msgid": '"DISK-8000-3E"'}
    lines = [line for line in body.splitlines()]
    for line in lines:
        key = line.split("=")[0].strip()
        base.pop(key, None)
    text = "[[rule]]\n" + "".join(f"{k} = {v}\n" for k, v in base.items()) + body + "\n"
    import tomllib
    rules, errors = parse_rules(tomllib.loads(text), "x.toml", KB)
    assert rules == []
    msgs = [str(e) for e in errors]
    assert any(m.startswith(f"x.toml: {field}: ") and reason in m for m in msgs), msgs


def test_a_bad_file_is_refused_whole_and_the_others_load(tmp_path):
    (tmp_path / "a-good.toml").write_text(GOOD)
    (tmp_path / "b-bad.toml").write_text(GOOD.replace('"r1"', '"r2"') + textwrap.dedent("""
        [[rule]]
        name = "r3"
        match = ["ereport.x.y"]
        fault = "fault.x"
        msgid = "SVC-8000-3Q"
        serd = { n = 1 }
        """))
    (tmp_path / "c-syntax.toml").write_text("[[rule]\nname=")
    (tmp_path / "d-dup.toml").write_text(GOOD)
    rules, errors = load_rules([tmp_path], KB)
    assert [r.name for r in rules] == ["r1"]
    text = "\n".join(map(str, errors))
    assert f"{tmp_path}/b-bad.toml: rule[r3].serd.t: is required" in text
    assert f"{tmp_path}/c-syntax.toml: TOML syntax error" in text
    assert f"{tmp_path}/d-dup.toml: rule[r1].name: 'r1' is also defined in {tmp_path}/a-good.toml" in text


def test_empty_or_missing_rule_files(tmp_path):
    (tmp_path / "empty.toml").write_text("")
    rules, errors = load_rules([tmp_path, tmp_path / "nope"], KB)
    assert len(rules) == 0
    text = "\n".join(map(str, errors))
    assert "empty.toml: rule: is required" in text
    assert "nope: no such file or folder" in text
