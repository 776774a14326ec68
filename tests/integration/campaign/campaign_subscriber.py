"""A recording MQTT subscriber, run as its own process (in the campaign's network namespace).

``campaign_subscriber.py HOST PORT FILTER OUT``: a persistent session (the broker keeps its
QoS 1 messages while it is away, and across the broker's restarts, which keep their state),
reconnecting at once; each event's JSON payload (not retained pictures) is appended to OUT,
one line each, in arrival order. OUT is created once subscribed.
"""

from __future__ import annotations

import json
import sys

import paho.mqtt.client as mqtt


def main() -> None:
    host, port, topic, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    sink = open(out + ".part", "a")  # noqa: SIM115 - for the process's life

    def on_connect(client, userdata, flags, rc, props=None):
        client.subscribe(topic, qos=1)

    def on_subscribe(client, userdata, mid, rcs, props=None):
        import os

        if not os.path.exists(out):
            os.rename(out + ".part", out)

    def on_message(client, userdata, m):
        if m.retain or not m.payload:
            return
        try:
            data = json.loads(m.payload)
        except ValueError:
            return
        if isinstance(data, dict) and "seq" in data:
            sink.write(json.dumps({"seq": data["seq"], "class": data.get("class")}) + "\n")
            sink.flush()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="chaos-subscriber", clean_session=False)
    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    c.reconnect_delay_set(0.05, 0.5)
    while True:
        try:
            c.connect(host, port, keepalive=5)
            break
        except OSError:
            import time

            time.sleep(0.1)
    c.loop_forever(retry_first_connection=True)


if __name__ == "__main__":
    main()
