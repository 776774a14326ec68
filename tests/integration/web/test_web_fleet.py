"""The fleet page reads every node's retained picture from a real mosquitto; each node one click away."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

import aiomqtt
import pytest

from svctest import wait_until
from web_helpers import HOSTILE, free_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "export"))
from export_helpers import Broker  # the broker of the MQTT tests, reused

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def broker():
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed (Debian package mosquitto)")
    folder = Path(tempfile.mkdtemp(prefix="svcmgr-mq-", dir="/tmp"))
    b = Broker(folder, free_port()).start()
    yield b
    b.stop()
    shutil.rmtree(folder, ignore_errors=True)


def _retain(b: Broker, topic: str, payload: dict) -> None:
    async def publish() -> None:
        async with aiomqtt.Client("127.0.0.1", b.port) as c:
            await c.publish(topic, json.dumps(payload).encode(), qos=1, retain=True)

    asyncio.run(publish())


def test_fleet_lists_every_node_and_each_node_page_is_one_click_away(daemon, broker, browser):
    port = free_port()
    cfg = daemon.root / "node.toml"
    cfg.write_text(f'[node]\nname = "alpha"\n[mqtt]\nurl = "{broker.url}"\n[web]\nlisten = "127.0.0.1:{port}"\n')
    daemon.manifest("one.toml", """
        name = "site/one"
        duration = "child"
        [methods.start]
        exec = ["sleep", "1000"]
        """)
    daemon.start("--config", str(cfg), "--metrics", "")
    daemon.wait_state("svc:/site/one:default", "online")
    # another node, as its bridge would have left it on the broker (a hostile reason included)
    _retain(broker, "svcmgr/beta/status", {"node": "beta", "status": "offline", "time": 1.7e9})
    _retain(broker, "svcmgr/beta/state/site/two/default",
            {"fmri": "svc:/site/two:default", "node": "beta", "state": "maintenance", "reason": HOSTILE,
             "stime": 1.7e9, "enabled": True})
    url = f"http://127.0.0.1:{port}"

    def nodes() -> list[str]:
        browser.get(url + "/fleet")
        return [n for n, in browser.attrs("table.fleet tbody tr", "data-node")]

    wait_until(lambda: nodes() == ["alpha", "beta"], 15, what="both nodes on the fleet page")
    browser.shot("fleet")
    browser.click("tr[data-node=beta] a")
    wait_until(lambda: browser.texts("main h1") == ["Node beta"], 10, what="beta's page")
    assert browser.attrs("table.instances tbody tr", "data-fmri", "data-state") == \
        [["svc:/site/two:default", "maintenance"]]
    assert HOSTILE in browser.texts("table.instances tbody tr")[0]
    assert browser.js("return document.querySelectorAll('main img, main b, main script').length") == 0
    assert "offline" in browser.texts("main")[0]
    browser.shot("fleet-node")
