"""Bad input of every kind is refused with the source, the field and the reason; the daemon keeps going."""

import json
import os
import urllib.error
import urllib.request

import pytest

from fault_helpers import (
    cases,
    errlog,
    fault_config,
    fm,
    free_port,
    rss_kb,
    rules_dir,
    wait_until,
    webhook_config,
    webhook_secret,
)

GOOD = """
[[rule]]
name = "disk"
match = ["ereport.io.disk.error"]
serd = { n = 0, t = "1m" }
fault = "fault.io.disk.degraded"
msgid = "DISK-8000-3E"
"""
BAD = """
[[rule]]
name = "broken"
match = ["ereport.io.*"]
serd = { n = 2, t = "soon" }
fault = "fault.io.disk.degraded"
msgid = "DISK-8000-3E"
colour = "red"
"""


def test_malformed_rule_files_are_refused_naming_file_rule_and_reason(daemon):
    rules = rules_dir(daemon, {"a-good.toml": GOOD, "b-bad.toml": BAD, "c-syntax.toml": "[[rule]\n",
                               "d-msgid.toml": GOOD.replace('"disk"', '"other"').replace("DISK-8000-3E",
                                                                                          "DISK-8000-99")})
    daemon.start("--config", fault_config(daemon, f'[fault]\nbuiltin_rules = false\nrules = ["{rules}"]\n'))
    r = fm(daemon, "fmadm", "config")
    assert r.returncode == 1
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == ["disk"]
    err = r.stderr
    assert f"{rules}/b-bad.toml: rule[broken].serd.t: cannot parse duration 'soon'" in err
    assert f"{rules}/b-bad.toml: rule[broken].colour: unknown field" in err
    assert f"{rules}/c-syntax.toml: TOML syntax error" in err
    assert f"{rules}/d-msgid.toml: rule[other].msgid: DISK-8000-99 has no article in the knowledge base" in err
    assert "rule[broken].serd.t" in daemon.log_text()
    # the good rule works
    fm(daemon, "fminject", "-r", "dev:///dev/sda", "ereport.io.disk.error", check=True)
    wait_until(lambda: cases(daemon), 10)


def _post(port, body: bytes, secret: str):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {secret}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", "body is not JSON"),
    (b'{"version": "4", "status": "firing"}', "alerts: is required"),
    (b'{"version": "2", "status": "firing", "alerts": []}', "version: expected \"4\""),
    (b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {}}]}',
     "alerts[0].labels.alertname: is required"),
    (b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "A"}, '
     b'"startsAt": "noon"}]}', "alerts[0].startsAt: 'noon' is not an RFC 3339 time"),
])
def test_malformed_webhook_bodies_get_400_with_the_reason_and_are_counted(daemon, body, reason):
    port = free_port()
    daemon.start("--config", webhook_config(daemon, port))
    wait_until(lambda: daemon.call("fm.stat")["webhook"], 10)
    secret = webhook_secret(daemon).read_text().strip()
    code, reply = wait_until(lambda: _try(port, body, secret), 10)
    assert code == 400 and reason in reply["error"]
    st = daemon.call("fm.stat")["sources"]["alertmanager"]
    assert st["webhook_rejected"] == 1 and st["webhook_alerts"] == 0
    assert errlog(daemon, "ereport.prometheus.*") == []
    ok = b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "Up"}}]}'
    assert _post(port, ok, secret) == (200, {"status": "ok", "accepted": 1})
    assert "webhook request refused (400)" in daemon.log_text()


def _try(port, body, secret):
    try:
        return _post(port, body, secret)
    except (ConnectionError, urllib.error.URLError):
        return None


def test_non_loopback_webhook_address_is_refused(daemon):
    path = fault_config(daemon, '[fault]\nwebhook = "0.0.0.0:9999"\nerrlog_max = 5\nkmsg = 7\n')
    daemon.start("--config", path, wait=False)
    assert daemon.proc.wait(20) == 2
    out = daemon.log_text()
    assert f"{path}: fault.webhook: '0.0.0.0:9999': the receiver listens on loopback addresses only" in out
    assert f"{path}: fault.errlog_max: 5 is out of range" in out
    assert f"{path}: fault.kmsg: expected a string" in out
    daemon.proc = None


def _secret_file(text: str, mode: int):
    def make(daemon):
        (daemon.root / "s").write_text(text)
        os.chmod(daemon.root / "s", mode)
    return make


@pytest.mark.parametrize(("setup", "words"), [
    (None, "fault.webhook: needs webhook_credential: a file of mode 0600"),
    (_secret_file("x" * 32, 0o644), "has mode 0644"),
    (_secret_file("short", 0o600), "a secret needs at least 16"),
    (lambda d: os.symlink(webhook_secret(d), d.root / "s"), "is a symbolic link"),
])
def test_a_webhook_without_a_good_credential_stops_the_start(daemon, setup, words):
    text = '[fault]\nwebhook = "127.0.0.1:9999"\n'
    if setup is not None:
        setup(daemon)
        text += f'webhook_credential = "{daemon.root / "s"}"\n'
    path = fault_config(daemon, text)
    daemon.start("--config", path, wait=False)
    assert daemon.proc.wait(20) == 2
    assert words in daemon.log_text()
    daemon.proc = None


def test_unknown_and_malformed_classes(daemon):
    daemon.start()
    r = fm(daemon, "fminject", "fault.svc.flapping")
    assert r.returncode == 2 and "class: 'fault.svc.flapping' is not an ereport class" in r.stderr
    r = fm(daemon, "fminject", "-r", "not an fmri", "ereport.x.y")
    assert r.returncode == 2 and "resource" in r.stderr
    r = fm(daemon, "fminject", "-r", "nosuchservice", "ereport.x.y")
    assert r.returncode == 2 and "ereports[0]: resource: nosuchservice: no service or instance matches" in r.stderr
    r = fm(daemon, "fminject", "ereport.nobody.cares", "x=1")
    assert r.returncode == 0 and "no rule consumes ereport.nobody.cares" in r.stderr
    wait_until(lambda: errlog(daemon, "ereport.nobody.cares"), 10)
    assert daemon.call("fm.stat")["diagnosis"]["unmatched"] == 1
    assert cases(daemon, everything=True) == []
    r = fm(daemon, "fminject", "ereport.x.y", "novalue")
    assert r.returncode == 2 and "expected key=value" in r.stderr


def test_bad_requests_and_ereports_on_the_bus(daemon):
    daemon.start()
    from svcmgr.client import ClientError

    with pytest.raises(ClientError, match="must be one of repair, acquit, replace") as ei:
        daemon.call("fm.verdict", target="x", verdict="forgive")
    assert ei.value.code == 2
    with pytest.raises(ClientError, match="no such case"):
        daemon.call("fm.verdict", target="0123abcd-0000", verdict="repair")
    with pytest.raises(ClientError, match=r"ereports\[1\]: node: 'bad node' is not a node name"):
        daemon.call("fm.inject", ereports=[{"class": "ereport.a.b"}, {"class": "ereport.a.b", "node": "bad node"}])
    with pytest.raises(ClientError, match=r"ereports\[0\]: colour: unknown field"):
        daemon.call("fm.inject", ereports=[{"class": "ereport.a.b", "colour": 1}])
    with pytest.raises(ClientError, match="at most 10000"):
        daemon.call("fm.inject", ereports=[{"class": "ereport.a.b"}] * 10001)
    for key, value, words in (("after", 10**30, "an error log id"), ("since", 10**400, "a finite number"),
                              ("until", float("nan"), "a finite number"), ("since", -10**30, None)):
        if words is None:  # a time before any entry, beyond 64 bits: a time all the same
            assert isinstance(daemon.call("fm.dump", errlog=True, **{key: value})["entries"], list)
            continue
        for log in (True, False):
            with pytest.raises(ClientError, match=f"fm.dump: '{key}' must be {words}") as ei:
                daemon.call("fm.dump", errlog=log, **{key: value})
            assert ei.value.code == 2
    assert "Traceback" not in daemon.log_text()
    r = fm(daemon, "fmdump", "-t", "last tuesday")
    assert r.returncode == 2 and r.stderr == "fmdump: illegal time format -- last tuesday\n"
    assert errlog(daemon, "ereport.a.b") == []  # nothing of a refused request was posted


def test_a_bad_line_after_the_first_batch_names_its_line_and_nothing_is_posted(daemon, tmp_path):
    daemon.start()
    lines = tmp_path / "many.jsonl"
    good = json.dumps({"class": "ereport.test.many", "payload": {"i": 1}}) + "\n"
    lines.write_text(good * 5001 + "\n" + json.dumps({"class": "fault.test.many"}) + "\n" + good)
    r = fm(daemon, "fminject", "-f", str(lines), timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith(f"fminject: {lines}:5003: class: 'fault.test.many' is not an ereport class"), r.stderr
    assert errlog(daemon, "ereport.test.many") == []  # all or nothing, as one request is
    lines.write_text(good * 5001)
    assert fm(daemon, "fminject", "-f", str(lines), check=True).stdout == "fminject: posted 5001 ereports\n"
    wait_until(lambda: len(errlog(daemon, "ereport.test.many")) == 5001, 30)


FLOOD = 100_000


def test_a_flood_of_100k_ereports_keeps_memory_and_the_log_bounded(daemon, tmp_path):
    daemon.start("--config", fault_config(daemon, "[fault]\nerrlog_max = 10000\n"))
    pid = daemon.pid
    lines = tmp_path / "flood.jsonl"
    with lines.open("w") as f:
        for i in range(FLOOD):
            f.write(json.dumps({"class": "ereport.io.disk.error", "resource": f"dev:///dev/sd{'abcd'[i % 4]}",
                                "payload": {"sector": i}}) + "\n")
    # a first, small flood lets the daemon reach its working size
    fm(daemon, "fminject", "-q", "-n", "5000", "-r", "dev:///dev/sdq", "ereport.io.disk.error", check=True)
    wait_until(lambda: daemon.call("fm.stat")["diagnosis"]["processed"] == 5000, 60)
    base = rss_kb(pid)
    fm(daemon, "fminject", "-f", str(lines), check=True, timeout=300)

    def done():
        st = daemon.call("fm.stat")
        return st if st["diagnosis"]["processed"] + st["bus"]["dropped"] >= 5000 + FLOOD \
            and st["errlog"]["pending"] == 0 else None

    st = wait_until(done, 120, what="the flood to be processed")
    grown = rss_kb(pid) - base
    e = st["errlog"]
    assert e["received"] == 5000 + FLOOD - st["bus"]["dropped"]
    assert len(errlog(daemon)) <= 10000
    assert e["dropped"] >= e["received"] - 10000
    newest = errlog(daemon)[-1]
    assert newest["payload"]["sector"] == FLOOD - 1  # the oldest went, the newest stayed
    print(f"flood: rss base {base} kB, grown {grown} kB, bus dropped {st['bus']['dropped']}, errlog {e}")
    assert grown < 64 * 1024, f"the daemon grew by {grown} kB"
    # four disks, four cases: the flood did not become 100k cases
    assert sorted(c["suspects"][0]["resource"] for c in cases(daemon)) == \
        [f"dev:///dev/sd{x}" for x in "abcdq"]
    assert daemon.call("ping")["pid"] == pid
    text = fm(daemon, "fmstat", "-a", check=True).stdout
    dropped = next(line.split() for line in text.splitlines() if line.split()[0] == "errlog.dropped")
    assert int(dropped[1]) == e["dropped"] and "(bound 10000)" in text


def test_rules_are_reloaded_on_sighup_and_a_bad_new_file_is_refused(daemon):
    rules = rules_dir(daemon, {"a.toml": GOOD})
    daemon.start("--config", fault_config(daemon, f'[fault]\nbuiltin_rules = false\nrules = ["{rules}"]\n'))
    assert [r["name"] for r in daemon.call("fm.rules")["rules"]] == ["disk"]
    (rules / "b.toml").write_text(GOOD.replace('"disk"', '"disk2"'))
    (rules / "c.toml").write_text(BAD)
    daemon.call("reload")
    got = daemon.call("fm.rules")
    assert [r["name"] for r in got["rules"]] == ["disk", "disk2"]
    assert any("c.toml: rule[broken].serd.t" in e for e in got["errors"])
    fm(daemon, "fminject", "-r", "dev:///dev/sdc", "ereport.io.disk.error", check=True)
    (case,) = wait_until(lambda: cases(daemon), 10)
    assert case["rule"] == "disk"
