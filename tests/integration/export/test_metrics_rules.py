"""The shipped alert rules: valid for Prometheus, and each one unit-tested with the real promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

RULES_DIR = Path(__file__).resolve().parents[3] / "manifests" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
TESTS = RULES_DIR / "alerts_test.yml"
REQUIRED = {"SvcmgrServiceMaintenance", "SvcmgrServiceFlapping", "SvcmgrFaultCaseOpen", "SvcmgrDaemonDown",
            "SvcmgrMqttOutboxGrowing"}


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    return path


def alert_names(text: str) -> list[str]:
    return re.findall(r"^\s*-\s*alert:\s*(\S+)\s*$", text, re.M)


def test_rules_pass_promtool_check(promtool):
    r = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(alert_names(RULES.read_text()))} rules found" in r.stdout


def test_rules_pass_their_unit_tests(promtool):
    r = subprocess.run([promtool, "test", "rules", str(TESTS)], capture_output=True, text=True, timeout=60,
                       cwd=RULES_DIR)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_every_alert_has_a_firing_test():
    names = alert_names(RULES.read_text())
    assert set(names) >= REQUIRED, f"missing alerts: {REQUIRED - set(names)}"
    tests = TESTS.read_text()
    for name in names:
        # at least one evaluation of this alert expects it to fire (a non-empty exp_alerts)
        pattern = rf"alertname:\s*{name}\s*\n\s*exp_alerts:\s*\n\s*-\s*exp_labels:"
        assert re.search(pattern, tests), f"{name}: no test expects it to fire"


def test_a_broken_rule_file_is_refused(promtool, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(RULES.read_text().replace("svcmgr_instance_state{state=\"maintenance\"} == 1",
                                             "svcmgr_instance_state{state=\"maintenance\" == 1"))
    r = subprocess.run([promtool, "check", "rules", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "SvcmgrServiceMaintenance" in (r.stdout + r.stderr)


def test_documented_alertmanager_receiver_passes_amtool(tmp_path):
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not installed (Debian package prometheus-alertmanager)")
    doc = (RULES_DIR.parent.parent / "docs" / "metrics.md").read_text()
    m = re.search(r"## Alertmanager receiver.*?```yaml\n(.*?)```", doc, re.S)
    assert m, "docs/metrics.md lost its receiver snippet"
    conf = tmp_path / "alertmanager.yml"
    conf.write_text(m.group(1))
    r = subprocess.run([amtool, "check-config", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 receivers" in r.stdout
    # the route keeps svcmgr's own cases away from the fault manager's webhook
    r = subprocess.run([amtool, "config", "routes", "test", "--config.file", str(conf), "origin=svcmgr-fault"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "operators", r.stdout + r.stderr
    r = subprocess.run([amtool, "config", "routes", "test", "--config.file", str(conf),
                        "alertname=NodeDiskFull", "fmri=svc:/site/db:default"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "svcmgr-fault", r.stdout + r.stderr
