"""A manifest's log pattern turns a service's own log lines into ereports; a site rule and article diagnose them."""

from fault_helpers import cases, child_service, errlog, fault_config, fm, rules_dir, wait_until

APP = "svc:/site/app:default"


def test_log_pattern_ereports_diagnosed_with_a_site_rule_and_article(daemon):
    kb = daemon.root / "kb"
    kb.mkdir()
    (kb / "SITE.toml").write_text("\n".join([
        "[SITE-8000-1D]",
        'title = "The application cannot reach its database in time"',
        'description = "{suspect} logged {count} database timeouts; {fires_at} within {window} are a fault. '
        'Last: {detail}"',
        'response = "The service is marked degraded."',
        'impact = "Requests fail."',
        'action = "Check the database connection pool of {suspect}."', ""]))
    rules = rules_dir(daemon, {"site.toml": """
        [[rule]]
        name = "app-db-timeouts"
        match = ["ereport.app.db.timeout"]
        resources = ["svc"]
        serd = { n = 2, t = "1m" }
        fault = "fault.app.db.slow"
        severity = "minor"
        msgid = "SITE-8000-1D"
        response = "degrade"
        """})
    cfg = fault_config(daemon, f'[fault]\nrules = ["{rules}"]\nknowledge = ["{kb}"]\n')
    script = ("import sys, time\nfor i in range(3):\n    time.sleep(0.3)\n"
              "    print(f'ERROR database timeout after {i + 5}s', flush=True)\ntime.sleep(100000)\n")
    daemon.manifest("app.toml", child_service("site/app", script, extra="""
        [[log.patterns]]
        match = "ERROR database timeout"
        class = "ereport.app.db.timeout"
        """))
    daemon.start("--config", cfg)
    (case,) = wait_until(lambda: cases(daemon), 20, what="the log pattern case")
    assert case["class"] == "fault.app.db.slow" and case["msgid"] == "SITE-8000-1D"
    assert case["title"] == "The application cannot reach its database in time"
    assert "svc:/site/app:default logged 3 database timeouts; 3 within 1m are a fault" in case["description"]
    assert "ERROR database timeout after 7s" in case["description"]
    entries = errlog(daemon, "ereport.app.db.timeout")
    assert len(entries) == 3 and {e["source"] for e in entries} == {"log"}
    daemon.wait_state(APP, "degraded")
    assert "app-db-timeouts" in fm(daemon, "fmadm", "config", check=True).stdout
