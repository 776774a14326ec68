"""How the MQTT bridge's sender drives paho's client under aiomqtt: a window of publishes, no future per message.

The bridge (``svcmgr.mqtt``) publishes its outbox from a window of QoS 1 messages; this
is the part that talks to paho: one ``publish`` per row, each acknowledgement seen
by its message id, and the sender woken when one of its own arrives.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import aiomqtt

from svcmgr.outbox import Row

__all__ = ["Pipeline"]


class Pipeline:
    """The sender's way through paho's client under an aiomqtt client (one per connection: the client is made for one).

    aiomqtt keeps paho's client in ``Client._client`` (it declined to make it public: aiomqtt issue
    #191); only paho's public API is used on it. The sender calls ``publish`` once per row, up to its
    window, and sees each acknowledgement by its message id leaving ``mine`` (in order: MQTT 3.1.1,
    4.6): no asyncio future, task or timer per message, which is most of what aiomqtt's ``publish``
    costs, and no question to paho's ``MQTTMessageInfo`` (a lock taken per message). paho's
    ``on_publish`` is wrapped: an acknowledgement of one of the sender's messages wakes the sender;
    aiomqtt's own callback runs for the others, so its ``publish`` (status, goodbye) works as before,
    and it is not asked about each of the sender's (it answers with a KeyError raised and suppressed,
    a microsecond an event). paho writes each burst of publishes from aiomqtt's writer callback, in
    the loop turn after it was queued, as before."""

    def __init__(self, client: aiomqtt.Client, wake: asyncio.Event) -> None:
        self.client = client
        self.paho = paho = client._client  # aiomqtt private attribute: see above
        self.mine: set[int] = set()  # message ids of the sender's publishes not yet acknowledged
        theirs, mine = paho.on_publish, self.mine

        def on_publish(client: Any, userdata: Any, mid: int, *rest: Any) -> None:
            if mid in mine:
                mine.discard(mid)
                wake.set()
            elif theirs is not None:
                theirs(client, userdata, mid, *rest)

        paho.on_publish = on_publish

    def publish(self, ready: collections.deque[Row], window: collections.deque[tuple[int, int]], room: int) -> int:
        """Publish up to ``room`` rows from ``ready`` into ``window`` as (seq, message id); the last seq
        published (0 if none). A row is acknowledged once its message id has left ``mine``.
        A publish paho refuses (the connection is gone) raises ``MqttCodeError``: the session ends."""
        paho, mine = self.paho, self.mine
        last = 0
        for _ in range(min(room, len(ready))):
            seq, topic, payload, qos, retain = ready.popleft()
            info = paho.publish(topic, payload, qos, retain)
            if info.rc != 0:  # MQTT_ERR_SUCCESS
                raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
            mid = info.mid
            mine.add(mid)
            window.append((seq, mid))
            last = seq
        return last
