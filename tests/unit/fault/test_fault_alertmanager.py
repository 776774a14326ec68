"""Alertmanager's webhook body becomes ereports; every kind of malformed body is refused with the field."""

import asyncio
import base64
import json

import pytest

from fault.sources.alertmanager import WebhookError, WebhookReceiver, alerts_from_body

# The example of Alertmanager's documentation (webhook_config), version 4.
BODY = {
    "version": "4",
    "groupKey": "{}:{alertname=\"HighLatency\"}",
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "svcmgr",
    "groupLabels": {"alertname": "HighLatency"},
    "commonLabels": {"alertname": "HighLatency", "severity": "warning"},
    "commonAnnotations": {"summary": "p99 above 500ms"},
    "externalURL": "http://127.0.0.1:9093",
    "alerts": [
        {"status": "firing", "labels": {"alertname": "HighLatency", "instance": "web1:9100", "severity": "warning"},
         "annotations": {"summary": "p99 above 500ms"}, "startsAt": "2026-01-02T03:04:05.123456789Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph", "fingerprint": "a1b2c3"},
        {"status": "firing", "labels": {"alertname": "DiskFull", "fmri": "svc:/site/db:default"},
         "annotations": {}, "startsAt": "2026-01-02T03:04:05+01:00", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "", "fingerprint": "d4e5"},
    ],
}


def test_each_alert_becomes_an_ereport():
    got = alerts_from_body(json.dumps(BODY).encode(), node="n1")
    (c1, r1, p1, t1), (c2, r2, p2, t2) = got
    assert c1 == "ereport.prometheus.HighLatency" and r1 == "alert:///HighLatency/web1:9100"
    assert p1["summary"] == "HighLatency: p99 above 500ms" and p1["labels"]["severity"] == "warning"
    assert p1["status"] == "firing" and p1["fingerprint"] == "a1b2c3"
    assert t1 == pytest.approx(1767323045.123456, abs=1e-3)
    assert c2 == "ereport.prometheus.DiskFull" and r2 == "svc:/site/db:default"
    assert t2 == pytest.approx(1767319445.0) and p2["summary"] == "DiskFull"


def _with(**changes):
    body = json.loads(json.dumps(BODY))
    for path, value in changes.items():
        obj = body
        keys = path.split("__")
        for k in keys[:-1]:
            obj = obj[int(k)] if k.isdigit() else obj[k]
        last = int(keys[-1]) if keys[-1].isdigit() else keys[-1]
        if value is KeyError:
            del obj[last]
        else:
            obj[last] = value
    return json.dumps(body).encode()


@pytest.mark.parametrize(("body", "text"), [
    (b"{not json", "body is not JSON"),
    (b"[]", "expected a JSON object"),
    (_with(version="3"), "version: expected \"4\""),
    (_with(version=KeyError), "version: expected \"4\""),
    (_with(status="burning"), "status: expected firing or resolved"),
    (_with(alerts=KeyError), "alerts: is required"),
    (_with(alerts={"a": 1}), "alerts: is required"),
    (_with(alerts=[{"status": "firing"}] * 1001), "at most 1000"),
    (_with(alerts__0__labels__alertname=KeyError), "alerts[0].labels.alertname: is required"),
    (_with(alerts__1__labels={"alertname": 5}), "alerts[1].labels.alertname: expected a string"),
    (_with(alerts__0__status="pending"), "alerts[0].status: expected firing or resolved"),
    (_with(alerts__0__startsAt="yesterday"), "alerts[0].startsAt: 'yesterday' is not an RFC 3339 time"),
    (_with(alerts__0__startsAt="2026-01-02T03:04:05"), "has no time zone"),
    (_with(alerts__1__labels__fmri="svc:/bad name"), "alerts[1].labels.fmri: "),
    (_with(alerts__0="x"), "alerts[0]: expected an object"),
    (_with(commonLabels=[1]), "commonLabels: expected an object"),
    (_with(truncatedAlerts=-1), "truncatedAlerts: expected a count"),
    (_with(alerts__0__annotations__summary="x" * 20000), "alerts[0]: is "),
])
def test_malformed_bodies_are_refused_naming_the_field(body, text):
    with pytest.raises(WebhookError) as ei:
        alerts_from_body(body)
    assert text in str(ei.value)


async def _post(port, body: bytes, method="POST", headers=None):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} /alerts HTTP/1.1\r\nHost: x\r\n"
    for k, v in (headers if headers is not None else {"Content-Length": str(len(body))}).items():
        head += f"{k}: {v}\r\n"
    w.write(head.encode() + b"\r\n" + body)
    await w.drain()
    data = await r.read()
    w.close()
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1])


SECRET = b"0123456789abcdef-the-secret"
AUTH = {"Authorization": "Bearer " + SECRET.decode(), "Content-Type": "application/json"}


def _headers(body: bytes, **extra: str) -> dict[str, str]:
    return {**AUTH, "Content-Length": str(len(body)), **extra}


async def test_the_receiver_answers_with_the_reason_and_counts(unused_tcp_port):
    got = []
    rx = WebhookReceiver("127.0.0.1", unused_tcp_port, lambda c, r, p, t: got.append(c), secret=SECRET)
    task = asyncio.create_task(rx.run())
    good = json.dumps(BODY).encode()
    try:
        await asyncio.wait_for(rx.ready.wait(), 5)
        assert await _post(unused_tcp_port, good, headers=_headers(good)) == (200, {"status": "ok", "accepted": 2})
        bad = _with(version="3")
        code, body = await _post(unused_tcp_port, bad, headers=_headers(bad))
        assert code == 400 and "version" in body["error"]
        assert (await _post(unused_tcp_port, b"", method="GET", headers=_headers(b"")))[0] == 405
        assert (await _post(unused_tcp_port, b"{}", headers=AUTH))[0] == 411
        assert (await _post(unused_tcp_port, b"", headers=_headers(b"", **{"Content-Length": str(2 << 20)})))[0] == 413
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert got == ["ereport.prometheus.HighLatency", "ereport.prometheus.DiskFull"]
    assert rx.counters["alerts"] == 2 and rx.counters["rejected"] == 4


async def test_only_the_secret_opens_the_door(unused_tcp_port):
    got = []
    rx = WebhookReceiver("127.0.0.1", unused_tcp_port, lambda c, r, p, t: got.append(c), secret=SECRET)
    task = asyncio.create_task(rx.run())
    good = json.dumps(BODY).encode()
    basic = base64.b64encode(b"alertmanager:" + SECRET).decode()
    wrong_basic = base64.b64encode(SECRET + b":x").decode()
    try:
        await asyncio.wait_for(rx.ready.wait(), 5)
        refusals = [
            ({"Content-Length": str(len(good)), "Content-Type": "application/json"}, 401),
            (_headers(good, Authorization="Bearer " + SECRET.decode()[:-1]), 401),
            (_headers(good, Authorization="Bearer " + SECRET.decode() + "x"), 401),
            (_headers(good, Authorization="Basic " + wrong_basic), 401),
            (_headers(good, Authorization="Basic !!!"), 401),
            (_headers(good, Authorization=SECRET.decode()), 401),
            (_headers(good, Origin="http://evil.example"), 403),
            (_headers(good, **{"Content-Type": "text/plain"}), 415),
        ]
        for headers, code in refusals:
            assert (await _post(unused_tcp_port, good, headers=headers))[0] == code, headers
        assert got == []
        assert (await _post(unused_tcp_port, good, headers=_headers(good, Authorization="Basic " + basic)))[0] == 200
        deep = b'{"version": "4", "alerts": ' + b"[" * 100000 + b"]" * 100000 + b"}"
        code, body = await _post(unused_tcp_port, deep, headers=_headers(deep))
        assert code == 400 and "nests too deeply" in body["error"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(got) == 2 and rx.counters["unauthorized"] == 6


def test_a_receiver_without_a_secret_cannot_be_made():
    with pytest.raises(ValueError, match="needs a secret"):
        WebhookReceiver("127.0.0.1", 1, lambda c, r, p, t: None, secret=b"")
