"""A real Alertmanager posts its webhook to the daemon: each alert becomes an ereport and a case."""

import datetime as dt

from fault_helpers import cases, errlog, fm, free_port, wait_until, webhook_config, webhook_secret


def _start(daemon, alertmanager):
    port = free_port()
    daemon.start("--config", webhook_config(daemon, port))
    return alertmanager(f"http://127.0.0.1:{port}/alertmanager", webhook_secret(daemon))


def test_amtool_alert_becomes_an_ereport_and_a_case(daemon, alertmanager):
    am = _start(daemon, alertmanager)
    am.add("HighLatency", "instance=web1:9100", "severity=warning", "--annotation=summary=p99 above 500ms")
    (e,) = wait_until(lambda: errlog(daemon, "ereport.prometheus.*"), 20, what="the webhook to arrive")
    assert e["class"] == "ereport.prometheus.HighLatency"
    assert e["resource"] == "alert:///HighLatency/web1:9100" and e["source"] == "alertmanager"
    p = e["payload"]
    assert p["status"] == "firing" and p["labels"]["severity"] == "warning"
    assert p["annotations"]["summary"] == "p99 above 500ms" and p["receiver"] == "svcmgr"
    assert p["fingerprint"] and p["groupKey"]
    (case,) = wait_until(lambda: cases(daemon), 10)
    assert case["class"] == "alert.prometheus.firing" and case["msgid"] == "PROM-8000-1A"
    assert "HighLatency: p99 above 500ms" in case["description"]
    st = daemon.call("fm.stat")["sources"]["alertmanager"]
    assert st["received"] == 1 and st["webhook_alerts"] == 1 and st["webhook_rejected"] == 0
    dump = fm(daemon, "fmdump", "-e", "-V", "-c", "ereport.prometheus.*", check=True).stdout
    assert "\tclass = ereport.prometheus.HighLatency\n" in dump and "\tsource = alertmanager\n" in dump


def test_an_alert_that_ends_resolves_its_case(daemon, alertmanager):
    am = _start(daemon, alertmanager)
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    am.add("DiskFull", "fmri=svc:/site/db:default", f"--end={end}", "--annotation=summary=disk full")
    (case,) = wait_until(lambda: cases(daemon), 20, what="the firing alert's case")
    assert case["suspects"][0]["resource"] == "svc:/site/db:default"
    wait_until(lambda: cases(daemon) == [], 30, what="Alertmanager to report the alert resolved")
    (closed,) = cases(daemon, everything=True)
    assert closed["uuid"] == case["uuid"] and closed["state"] == "resolved"
    assert "its source reports the condition over" in " ".join(h["text"] for h in closed["history"])
    statuses = [e["payload"]["status"] for e in errlog(daemon, "ereport.prometheus.DiskFull")]
    assert statuses[0] == "firing" and statuses[-1] == "resolved"
