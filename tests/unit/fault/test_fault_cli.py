"""The fault commands: argument parsing, layouts, and that they import only the client and the standard library."""

import datetime as dt
import subprocess
import sys

import pytest

from fault.cases import Case, CaseEv, Suspect
from fault.cli import faulty, fmdump, fminject, fmstat, nvlist
from fault.knowledge import load_knowledge
from fault.views import case_view


def test_time_forms_are_fmdumps():
    now = dt.datetime(2026, 3, 4, 12, 0, 0).timestamp()
    at = fmdump.parse_time
    assert at("10m", now) == at("10min", now) == now - 600
    assert at("2h", now) == at("2hour", now) == now - 7200
    assert at("1d", now) == at("1DAY", now) == now - 86400
    assert at("500ms", now) == now - 0.5
    assert at("09:30", now) == dt.datetime(2026, 3, 4, 9, 30).timestamp()
    assert at("09:30:15", now) == dt.datetime(2026, 3, 4, 9, 30, 15).timestamp()
    assert at("2026-03-01", now) == dt.datetime(2026, 3, 1).timestamp()
    assert at("2026-03-01T10:20", now) == dt.datetime(2026, 3, 1, 10, 20).timestamp()
    assert at("03/01/26", now) == at("03/01/2026", now) == dt.datetime(2026, 3, 1).timestamp()
    assert at("03/01/26 10:20:30", now) == dt.datetime(2026, 3, 1, 10, 20, 30).timestamp()
    assert at("02Dec03", now) == dt.datetime(2003, 12, 2).timestamp()
    assert at("02Dec03 10:20", now) == dt.datetime(2003, 12, 2, 10, 20).timestamp()
    assert at("Mar 01 10:20:30", now) == dt.datetime(2026, 3, 1, 10, 20, 30).timestamp()
    assert at("03/01/26 10:20:30.25", now) == dt.datetime(2026, 3, 1, 10, 20, 30, 250000).timestamp()
    for bad in ("yesterday", "25:00", "10x", "", "0s", "1767323045", "1.5h"):
        with pytest.raises(ValueError, match="illegal time format -- "):
            at(bad, now)
    with pytest.raises(ValueError, match="time delta precedes UTC time origin"):
        at("100000000d", now)


def test_fmdump_dates_drop_the_fraction_for_old_records():
    now = dt.datetime(2026, 3, 4, 12, 0, 0).timestamp()
    assert fmdump.date_of(now - 3600 + 0.25, now) == "Mar 04 11:00:00.2500"
    assert fmdump.date_of(now - 200 * 86400, now) == "Aug 16 2025 12:00:00"
    assert fmdump.year_of(now + 0.5) == "Mar 04 2026 12:00:00.500000000"


def test_nvlists_print_and_select_as_on_illumos():
    e = {"id": 27, "class": "ereport.io.disk.error", "time": 1_000_000_000.5, "resource": "dev:///dev/sdx",
         "node": "n1", "source": "inject", "payload": {"sector": 12, "ok": False, "where": {"bay": "3"}}}
    nvl = nvlist.ereport(e)
    lines = list(nvlist.render(nvl))
    assert lines[:5] == ["nvlist version: 0", "\tclass = ereport.io.disk.error", "\tena = 0x1b",
                         "\tdetector = (embedded nvlist)", "\tnvlist version: 0"]
    assert "\t\tdevice-path = /dev/sdx" in lines and "\t(end detector)" in lines
    assert "\tsector = 12" in lines and "\tok = 0" in lines and "\t__tod = 0x3b9aca00 0x1dcd6500" in lines
    sel = nvlist.Selector
    assert sel("detector.device-path=.*/sdx$")(nvl) and not sel("detector.device-path=sdy")(nvl)
    assert sel("class=ereport.*.error")(nvl) and sel("ena=0x1b")(nvl) and sel("ena=033")(nvl)
    assert sel("where.bay=3")(nvl) and sel("detector")(nvl) and not sel("nothere")(nvl)
    assert sel("ok=false")(nvl) and not sel("ok=true")(nvl)
    with pytest.raises(ValueError, match="unexpected regular expression"):
        sel("class=(")


def test_fminject_values():
    assert fminject.payload(["a=1", "b=1.5", "c=true", "d=text", "e=[1,2]", 'f={"x":1}', "g=", "h=1e3"]) == \
        {"a": 1, "b": 1.5, "c": True, "d": "text", "e": [1, 2], "f": {"x": 1}, "g": "", "h": 1000.0}
    with pytest.raises(SystemExit) as ei:
        fminject.payload(["novalue"])
    assert ei.value.code == 2


def test_fminject_takes_options_after_the_class():
    args = fminject.arguments(["ereport.a.b", "-r", "db", "x=1", "-n", "2", "y=z"])
    assert (args.cls, args.resource, args.n, args.pairs) == ("ereport.a.b", "db", 2, ["x=1", "y=z"])


@pytest.mark.parametrize(("data", "reason"), [
    (b'{"class": "ereport.a.b"}\n\xff\xfe{"class": "ereport.a.b"}\n', ":2: not UTF-8"),
    (b'{"class": "ereport.a.b"}\n\n' + b'[' * 100_000 + b']' * 100_000 + b'\n', ":3: not JSON: nested too deeply"),
])
def test_fminject_refuses_a_file_it_cannot_read_naming_the_line(tmp_path, capsys, data, reason):
    path = tmp_path / "e.jsonl"
    path.write_bytes(data)
    with pytest.raises(SystemExit) as ei:
        fminject.read_lines(str(path))
    assert ei.value.code == 2
    assert capsys.readouterr().err.startswith(f"fminject: {path}{reason}")


def _case(detail="a process (pid 7) died on SIGKILL (9)"):
    kb, _ = load_knowledge()
    c = Case.new("svc-flapping", "fault.svc.flapping", "SVC-8000-3Q", "major", "node1", "degrade")
    c.suspects = [Suspect("fault.svc.flapping", "svc:/site/db:default", 100)]
    c.impacted = ["svc:/site/app:default"]
    c.detail = detail
    c.window, c.fires_at, c.ereport_count = "30m", 3, 3
    c.apply(CaseEv.SOLVE, "solved")
    return case_view(c, kb, lambda f, s: ["faulty", "unusable"] if s else ["unusable"])


def test_fmadm_layout_is_fmds():
    view = _case()
    (rec,) = faulty.catalog([view], group=False)
    lines = [*faulty.summary_header(False), faulty.event_line(rec),
             *faulty.record_lines(rec, full=False, max_fault=0, cache_ids=False)]
    assert lines[0] == lines[2] == faulty.RULE
    assert lines[1] == "TIME            EVENT-ID                              MSG-ID         SEVERITY"
    assert lines[3][16:] == f"{view['uuid']}  SVC-8000-3Q    Major     "
    text = "\n".join(lines)
    for want in ("Host        : node1", "Fault class : fault.svc.flapping",
                 "Affects     : svc:/site/db:default\n                  faulted and taken out of service\n"
                 "              svc:/site/app:default\n",
                 "                  out of service, but associated components no longer faulty",
                 "Problem in  : svc:/site/db:default\n                  faulted and taken out of service",
                 "\nDescription : svc:/site/db:default keeps failing"):
        assert want in text, want
    assert "Failures counted: 3;" in " ".join(text.split())
    assert all(len(line) <= 80 or " " not in line[14:] for line in lines)
    assert "Action      :" in text and "Response    :" in text and "Impact      :" in text


#: what a service's own log line may carry into a case (a log pattern's ereport): a screen clear, a title, a fake line
HOSTILE = "FATAL \x1b[2J\x1b]0;pwned\x07 \u202eowned\r\nfake line"
SHOWN = "FATAL \\x1b[2J\\x1b]0;pwned\\x07 \\u202eowned\\r\\nfake line"


def test_text_from_a_service_reaches_the_terminal_only_as_visible_escapes():
    view = _case(detail=HOSTILE)
    (rec,) = faulty.catalog([view], group=False)
    text = "\n".join(faulty.record_lines(rec, full=False, max_fault=0, cache_ids=False))
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text and "fake line" in text
    assert " ".join(text.split()).count(" ".join(f"Last: {SHOWN}.".split())) == 1
    e = {"id": 1, "class": "ereport.app.fatal", "time": 1_000_000_000.0, "resource": "svc:/a/b:default",
         "source": "restarter", "payload": {"line": HOSTILE, "lines": [HOSTILE], "where": {"what": HOSTILE}}}
    lines = list(nvlist.render(nvlist.ereport(e)))
    assert f"\tline = {SHOWN}" in lines and f"\tlines = {SHOWN}" in lines and f"\t\twhat = {SHOWN}" in lines
    assert not any(ch in "".join(lines) for ch in "\x1b\r\u202e")
    rec = {"class": "fault.svc.flapping", "time": 1_000_000_000.0, "msgid": "SVC-8000-3Q", "severity": "major",
           "uuid": view["uuid"], "node": "node1", "rule": "svc-flapping"}
    message = "\n".join(fmdump._message(rec, view))
    assert f"Last: {SHOWN}." in message and "\x1b" not in message and "\nfake line" not in message


def test_fmadm_wraps_as_print_line_does():
    words = "word " * 40
    lines = faulty.print_line("Description : ", words.strip())
    assert lines[0] == "" and lines[1].startswith("Description : word word")
    assert all(len(x) <= 80 for x in lines) and all(x.startswith(" " * 14) for x in lines[2:])
    assert faulty.print_line("Impact      : ", "one\ntwo") == ["", "Impact      : one", "              two"]


def test_fmadm_groups_alike_cases_and_limits_names():
    a, b, c = _case(), _case(), _case()
    b["time_epoch"] += 10
    c["time_epoch"] += 20
    assert len(faulty.catalog([a, b, c], group=False)) == 3
    (rec,) = faulty.catalog([a, b, c], group=True)
    lines = list(faulty.record_lines(rec, full=False, max_fault=0, cache_ids=False))
    assert lines[0].endswith(b["uuid"]) and lines[1].endswith(c["uuid"])
    lines = list(faulty.record_lines(rec, full=False, max_fault=1, cache_ids=False))
    assert lines[:2] == ["... 2 more entries suppressed", ""]  # the first EVENT-ID line counts: 1 + 2
    lines = list(faulty.record_lines(rec, full=False, max_fault=2, cache_ids=False))
    assert lines[0].endswith(b["uuid"]) and lines[1].endswith(c["uuid"])  # hiding one would say as much
    assert list(faulty.asru_lines([rec])) == [f"{'svc:/site/db:default':<69} faulted"]


def test_fmstat_time_units():
    assert [fmstat.time2str(n) for n in (0, 5, 3_000, 2_000_000, 7 * 10**9, 120 * 10**9, 7200 * 10**9)] == \
        ["0ns", "5ns", "3us", "2ms", "7s", "2m", "2h"]


def test_fleet_without_a_broker_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "fault.cli.fmadm", "--root", str(tmp_path), "faulty", "--fleet"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("fmadm: no MQTT broker: give --mqtt URL or --config FILE")


def test_commands_without_a_daemon_say_so(tmp_path):
    for mod in ("fmadm", "fmdump", "fmstat"):
        args = ["faulty"] if mod == "fmadm" else []
        r = subprocess.run([sys.executable, "-m", f"fault.cli.{mod}", "--root", str(tmp_path), *args],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "svcmgrd is not running" in r.stderr


def test_bad_usage_exits_2(tmp_path):
    for argv in (["fmadm", "nonsense"], ["fmadm", "repair"], ["fmdump", "--last", "x"], ["fmdump", "-t", "whenever"],
                 ["fmadm"], ["fmstat", "-s"], ["fminject"]):
        r = subprocess.run([sys.executable, "-m", f"fault.cli.{argv[0]}", "--root", str(tmp_path), *argv[1:]],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, (argv, r.stderr)


def test_commands_import_only_the_client_and_the_standard_library():
    heavy = ("networkx", "jinja2", "aiomqtt", "prometheus_client", "sqlite3", "fault.diagnosis", "fault.daemon",
             "svcmgr.engine", "asyncio")
    code = ("import sys\nimport fault.cli.fmadm, fault.cli.fmdump, fault.cli.fmstat, fault.cli.fminject\n"
            f"print([m for m in sys.modules if m.split('.')[0] in {heavy!r} or m in {heavy!r}])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert r.stdout.strip() == "[]"


def test_fmadm_faulty_f_prints_each_units_article_as_print_fru_does():
    kb, _ = load_knowledge()
    c = Case.new("disk-errors", "fault.io.disk.degraded", "DISK-8000-3E", "major", "node1", "none")
    c.suspects = [Suspect("fault.io.disk.degraded", "dev:///dev/sdx", 100)]
    c.window, c.fires_at, c.ereport_count = "10m", 5, 5
    c.apply(CaseEv.SOLVE, "solved")
    view = case_view(c, kb, lambda f, s: ["faulty"] if s else [])
    records = faulty.catalog([view], group=False)
    lines = list(faulty.fru_lines(records, summary=False))
    assert lines[:3] == ["-" * 78, "dev:///dev/sdx faulty", f"{c.uuid} 1 suspects in this FRU total certainty 100%"]
    assert lines[3] == "" and lines[4].startswith("Description : dev:///dev/sdx reports I/O errors. Errors counted: 5")
    assert [x[:14] for x in lines if x[:1] not in ("", " ")][3:] == \
        ["Description : ", "Response    : ", "Impact      : ", "Action      : "]
    assert list(faulty.fru_lines(records, summary=True)) == lines[1:3]  # -s: the unit lines only
