"""The sender's hold on paho (``svcmgr.mqtt_pipeline``): its own acknowledgements wake it and go no further,
aiomqtt's still reach aiomqtt, and a publish paho refuses ends the session. The whole path runs against
a real mosquitto in tests/integration/export/test_mqtt_bridge.py and test_mqtt_outage.py."""

from __future__ import annotations

import asyncio
import collections

import aiomqtt
import pytest

from svcmgr.mqtt_pipeline import Pipeline


async def test_the_senders_acknowledgements_wake_it_and_the_others_reach_aiomqtt():
    client = aiomqtt.Client("127.0.0.1", 1)
    theirs: list[int] = []
    client._client.on_publish = lambda c, u, mid, *rest: theirs.append(mid)  # stands for aiomqtt's own
    wake = asyncio.Event()
    pipe = Pipeline(client, wake)
    pipe.mine.update({5, 6})
    pipe.paho.on_publish(pipe.paho, None, 5, None, None)
    assert wake.is_set() and theirs == [] and pipe.mine == {6}
    wake.clear()
    pipe.paho.on_publish(pipe.paho, None, 9, None, None)  # aiomqtt's publish (status, goodbye)
    assert theirs == [9] and not wake.is_set() and pipe.mine == {6}


async def test_a_publish_paho_refuses_ends_the_session_with_nothing_in_flight():
    pipe = Pipeline(aiomqtt.Client("127.0.0.1", 1), asyncio.Event())  # never connected
    ready = collections.deque([(1, "svcmgr/n/a/b", b"{}", 1, False), (2, "svcmgr/n/a/b", b"{}", 1, False)])
    window: collections.deque = collections.deque()
    with pytest.raises(aiomqtt.MqttCodeError):
        pipe.publish(ready, window, 10)
    assert not window and not pipe.mine and [r[0] for r in ready] == [2]
