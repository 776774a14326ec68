"""Injected disk errors trip a SERD rule at exactly the (N+1)th event within T, and not when spread out."""

from fault_helpers import cases, fault_config, fm, rules_dir, settle, wait_until

RULE = """
[[rule]]
name = "disk-burst"
match = ["ereport.io.disk.error"]
resources = ["dev"]
serd = { n = 3, t = "2s" }
fault = "fault.io.disk.degraded"
msgid = "DISK-8000-3E"
"""


def _received(daemon, rule):
    return next(r["received"] for r in daemon.call("fm.stat")["rules"] if r["rule"] == rule)


def test_disk_error_burst_trips_serd_at_exactly_n_plus_1(daemon):
    rules = rules_dir(daemon, {"disk.toml": RULE})
    daemon.start("--config", fault_config(daemon, f'[fault]\nbuiltin_rules = false\nrules = ["{rules}"]\n'))
    seen = []
    for i in range(1, 6):
        # both ways of naming the resource: -r, and resource= among the payload pairs
        if i % 2:
            argv = ["-r", "dev:///dev/sdx", "ereport.io.disk.error", f"sector={i}"]
        else:
            argv = ["ereport.io.disk.error", "resource=dev:///dev/sdx", f"sector={i}"]
        r = fm(daemon, "fminject", *argv, check=True)
        assert "warning" not in r.stderr
        wait_until(lambda i=i: _received(daemon, "disk-burst") == i, 10, what=f"ereport {i} diagnosed")
        seen.append(len(cases(daemon)))
    # N = 3: the 4th error within 2 s makes the fault; the 5th joins the same case
    assert seen == [0, 0, 0, 1, 1]
    (case,) = cases(daemon)
    assert case["class"] == "fault.io.disk.degraded" and case["suspects"][0]["resource"] == "dev:///dev/sdx"
    assert case["ereport_count"] == 5
    engines = daemon.call("fm.stat", engines=True)["engines"]
    assert [(e["resource"], e["fired"], e["count"]) for e in engines] == [("dev:///dev/sdx", True, 4)]
    text = fm(daemon, "fmstat", "-s", "-m", "disk-burst", check=True).stdout.splitlines()
    assert text[0].split() == ["NAME", ">N", "T", "CNT", "DELTA", "STAT"]
    assert text[1].split()[:4] == ["dev:///dev/sdx", ">3", "2s", "4"] and text[1].endswith(" fire")
    table = fm(daemon, "fmstat", check=True).stdout.splitlines()
    assert table[0].split() == ["module", "ev_recv", "ev_acpt", "wait", "svc_t", "%w", "%b", "open", "solve",
                                "memsz", "bufsz"]
    row = next(line.split() for line in table if line.startswith("disk-burst "))
    assert row[1:3] == ["5", "5"] and row[8] == "1"


def test_the_same_errors_spread_beyond_t_never_trip_it(daemon):
    rules = rules_dir(daemon, {"disk.toml": RULE})
    daemon.start("--config", fault_config(daemon, f'[fault]\nbuiltin_rules = false\nrules = ["{rules}"]\n'))
    for i in range(1, 7):
        fm(daemon, "fminject", "-r", "dev:///dev/sdy", "ereport.io.disk.error", f"sector={i}", check=True)
        wait_until(lambda i=i: _received(daemon, "disk-burst") == i, 10)
        settle(0.75)  # four events never fit in 2 s
    assert cases(daemon, everything=True) == [] or all(c["state"] == "open" for c in cases(daemon, everything=True))
    assert cases(daemon) == []
    (eng,) = daemon.call("fm.stat", engines=True)["engines"]
    assert not eng["fired"] and eng["count"] <= 3
