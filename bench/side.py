"""Issue 13's side targets inside ``python -m bench``: fault diagnosis in process, and the MQTT bridge.

Each is measured by its own script (``bench/fault_diagnosis.py``, ``bench/mqtt_bridge.py``), run
once per harness run and per svcmgr under test (the current one and, with ``--compare``, the one
at the earlier revision) in a child process: with that svcmgr's interpreter (its venv has aiomqtt,
the harness' own venv does not) and the revision's packages first on ``PYTHONPATH``. The rates come
back as JSON and land in the results under ``diagnosis/...`` and ``mqtt/...``, beside their bound
or peer measured in the same child: the error log without diagnosis, and one bare aiomqtt client
publishing at QoS 1 with the same window through the same broker to the same subscriber.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from typing import Any

from bench.tools import REPO, Svcmgr

__all__ = ["BARE_MQTT", "DIAGNOSIS_BOUND", "applies", "run_side"]

#: the peer of the MQTT rows: one aiomqtt client, QoS 1, the bridge's window, the same broker and subscriber
BARE_MQTT = "aiomqtt, one bare client (QoS 1)"
#: the bound of the diagnosis row: the same pipeline without diagnosis (validation and the SQLite error log)
DIAGNOSIS_BOUND = "bound: validate + error log, no diagnosis"
MQTT_WINDOW = 100  # the bridge's default send window (svcmgr.mqtt_config)


def applies(t: object) -> bool:
    """One entry per svcmgr revision: the in-process figures do not depend on the contract mode."""
    return isinstance(t, Svcmgr) and t.cgroup


def run_side(t: Svcmgr, scenarios: tuple[str, ...], quick: bool, res: Any, log: Any) -> None:
    """Run the diagnosis and MQTT scripts against ``t``'s svcmgr; add their rates to ``res``."""
    if "diagnosis" in scenarios:
        n = 20_000 if quick else 100_000
        got = _script(t, ["fault_diagnosis.py", "--n", str(n), "--runs", "1", "--scenarios", "pipeline,own,log"],
                      "diagnosis/pipeline", res, log)
        if got is not None:
            res.add("diagnosis/pipeline", t.name, got["pipeline"])
            res.add("diagnosis/exits", t.name, got["own"])
            if t.source is None:
                res.add("diagnosis/pipeline", DIAGNOSIS_BOUND, got["log"])
            log(f"{t.name:20s} diagnosis: full pipeline {got['pipeline'][0]:9,.0f}/s, service exits alone "
                f"{got['own'][0]:9,.0f}/s")
    if "mqtt" in scenarios:
        if shutil.which("mosquitto") is None:
            res.fail("mqtt/out", t.name, "mosquitto is not installed")
            return
        n = 5_000 if quick else 20_000
        got = _script(t, ["mqtt_bridge.py", "--events", str(n), "--runs", "1", "--window", str(MQTT_WINDOW)],
                      "mqtt/out", res, log)
        if got is not None:
            rates = got[str(MQTT_WINDOW)]
            res.add("mqtt/out", t.name, rates["out"])
            res.add("mqtt/out", BARE_MQTT, rates["raw"])
            res.add("mqtt/round", t.name, rates["round"])
            log(f"{t.name:20s} mqtt: out {rates['out'][0]:8,.0f} ev/s, round trip {rates['round'][0]:8,.0f} ev/s, "
                f"bare client {rates['raw'][0]:8,.0f} msg/s")


def _script(t: Svcmgr, argv: list[str], key: str, res: Any, log: Any) -> dict[str, Any] | None:
    """Run ``bench/<argv[0]>`` with ``t``'s interpreter and packages; its JSON, or None (the failure recorded)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if t.source:
        env["PYTHONPATH"] = t.source
    fd, out = tempfile.mkstemp(prefix="svcbench-", suffix=".json")
    os.close(fd)
    cmd = [os.path.join(t.bindir, "python"), os.path.join(REPO, "bench", argv[0]), *argv[1:], "--json", out]
    try:
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            why = (p.stderr.strip().splitlines() or [f"exit status {p.returncode}"])[-1]
            res.fail(key, t.name, why)
            log(f"{t.name:20s} {argv[0]}: FAILED: {why}")
            return None
        with open(out) as f:
            return json.load(f)
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        res.fail(key, t.name, f"{type(e).__name__}: {e}")
        log(f"{t.name:20s} {argv[0]}: FAILED: {e}")
        return None
    finally:
        os.unlink(out)
