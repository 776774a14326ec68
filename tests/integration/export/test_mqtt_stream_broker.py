"""The bridge's publishing connection (``svcmgr.mqtt_stream``) against a real mosquitto: what it
publishes arrives at a real subscriber in order (within each QoS), retained and QoS 0 as sent, every QoS 1 publish
acknowledged; a wrong password is refused with the broker's reason."""

from __future__ import annotations

import asyncio
import json

import pytest

from svcmgr.mqtt_stream import Stream, StreamError

from export_helpers import wait_for


async def test_a_real_broker_passes_every_publish_on_in_order_and_acknowledges_each(mosquitto, subscriber):
    broker = mosquitto()
    sub = subscriber(broker.port, ["svcmgr/n1/#"])
    s = await Stream.open("127.0.0.1", broker.port, client_id="svcmgr-n1-out", timeout=10)
    reading = asyncio.create_task(s.run())
    n = 2000
    for i in range(n):
        s.publish(f"svcmgr/n1/ev/{i % 7}", json.dumps({"i": i}).encode(), 0 if i % 10 == 9 else 1, False)
        if i % 100 == 99:
            s.flush()
    s.publish("svcmgr/n1/state/web", b'{"state": "online"}', 1, True)
    s.flush()
    for _ in range(1000):
        if s.acked == s.sent:
            break
        await asyncio.sleep(0.01)
    assert s.sent == n - n // 10 + 1 and s.acked == s.sent
    await asyncio.to_thread(wait_for, lambda: len(sub.snapshot()) >= n + 1, 20, "every message")
    got = sub.snapshot()
    seen = [json.loads(p)["i"] for t, p, _ in got if "/ev/" in t]
    # in order within each QoS (MQTT orders no further: mosquitto passes QoS 0 on past QoS 1 still queued)
    assert [i for i in seen if i % 10 != 9] == [i for i in range(n) if i % 10 != 9]
    assert [i for i in seen if i % 10 == 9] == [i for i in range(n) if i % 10 == 9]
    assert ("svcmgr/n1/state/web", b'{"state": "online"}', False) in got  # live: not marked retained
    reading.cancel()
    await s.close()
    late = subscriber(broker.port, ["svcmgr/n1/state/#"])
    await asyncio.to_thread(late.wait, lambda x: x.snapshot(), 10, "the retained state")
    assert late.snapshot() == [("svcmgr/n1/state/web", b'{"state": "online"}', True)]


async def test_a_wrong_password_is_refused_with_the_broker_reason(mosquitto, tmp_path):
    def setup(folder):
        (folder / "pw").write_text("")
        return f"password_file {folder / 'pw'}\n"

    broker = mosquitto(anonymous=False, setup=setup)
    with pytest.raises(StreamError, match=r"refused the publishing connection: (not authorized|bad user name)"):
        await Stream.open("127.0.0.1", broker.port, client_id="c", username="u", password="wrong", timeout=10)
