"""Alertmanager's webhook as a source of ereports: a small HTTP receiver on a loopback address.

Alertmanager POSTs its own JSON (``"version": "4"``: ``receiver``, ``status``,
``alerts`` (each with ``status``, ``labels``, ``annotations``, ``startsAt``,
``endsAt``, ``fingerprint``, ...), ``groupLabels``, ``commonLabels``,
``commonAnnotations``, ``externalURL``, ``groupKey``, ``truncatedAlerts``) to any
path. Each alert becomes ``ereport.prometheus.<alertname>`` on the resource named
by its ``fmri`` label, else ``alert:///<alertname>[/<instance>]``; its payload keeps
the labels, annotations, status and times. A body that is not such a document is
refused whole with ``400`` and a JSON ``{"error": ...}`` naming the field, and
counted; nothing of it is posted.

Only Alertmanager may post: each request must carry the node's secret (the file named by
``[fault] webhook_credential``), as ``Authorization: Bearer SECRET`` (Alertmanager's
``http_config.authorization``) or as the password of Basic authentication
(``http_config.basic_auth``; the user name is not checked), compared in constant time;
else ``401``. A request with an ``Origin`` header (a browser, made to post by a web page)
is refused with ``403``, and a body that is not ``application/json`` with ``415``, before
any of it is read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import hmac
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from fault.events import EreportError, check_resource, validate

__all__ = ["WebhookError", "WebhookReceiver", "alerts_from_body"]

log = logging.getLogger("fault.alertmanager")

MAX_BODY = 1 << 20
MAX_ALERTS = 1000
_WORD_BAD = re.compile(r"[^A-Za-z0-9_-]")
_RES_BAD = re.compile(r"[^A-Za-z0-9_.:+@%=-]")
_FRACTION = re.compile(r"(\.\d{1,6})\d*")
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required", 413: "Content Too Large",
            415: "Unsupported Media Type", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}

Emit = Callable[[str, str, dict[str, Any], float], None]


class WebhookError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


def _time(value: Any, field: str) -> float | None:
    """Seconds from Alertmanager's RFC 3339 times; None for Go's zero time (0001-01-01...)."""
    if not isinstance(value, str):
        raise WebhookError(field, f"expected an RFC 3339 time, got {type(value).__name__}")
    if value.startswith("0001-01-01"):
        return None
    text = _FRACTION.sub(r"\1", value.replace("Z", "+00:00").replace("z", "+00:00"))
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise WebhookError(field, f"{value[:40]!r} is not an RFC 3339 time") from None
    if t.tzinfo is None:
        raise WebhookError(field, f"{value[:40]!r} has no time zone")
    return t.timestamp()


def _strmap(v: Any, field: str, *, required: bool = False) -> dict[str, str]:
    if v is None and not required:
        return {}
    if not isinstance(v, dict):
        raise WebhookError(field, f"expected an object of strings, got {type(v).__name__}")
    for k, x in v.items():
        if not isinstance(x, str):
            raise WebhookError(f"{field}.{k}", f"expected a string, got {type(x).__name__}")
    return v


def alerts_from_body(body: bytes, *, node: str = "") -> list[tuple[str, str, dict[str, Any], float]]:
    """(class, resource, payload, time) for each alert of a webhook body; raises WebhookError."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise WebhookError("", f"body is not JSON: {e}") from None
    except RecursionError:
        raise WebhookError("", "body nests too deeply") from None
    if not isinstance(doc, dict):
        raise WebhookError("", "expected a JSON object (Alertmanager's webhook document)")
    version = doc.get("version")
    if version != "4":
        raise WebhookError("version", f"expected \"4\" (Alertmanager's webhook format), got {version!r}")
    status = doc.get("status")
    if status not in ("firing", "resolved"):
        raise WebhookError("status", f"expected firing or resolved, got {status!r}")
    alerts = doc.get("alerts")
    if not isinstance(alerts, list):
        raise WebhookError("alerts", "is required: a list of alerts")
    if len(alerts) > MAX_ALERTS:
        raise WebhookError("alerts", f"{len(alerts)} alerts in one body; at most {MAX_ALERTS}")
    for key in ("receiver", "externalURL", "groupKey"):
        if key in doc and not isinstance(doc[key], str):
            raise WebhookError(key, f"expected a string, got {type(doc[key]).__name__}")
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        _strmap(doc.get(key), key)
    trunc = doc.get("truncatedAlerts", 0)
    if isinstance(trunc, bool) or not isinstance(trunc, int) or trunc < 0:
        raise WebhookError("truncatedAlerts", f"expected a count, got {trunc!r}")
    out = []
    for i, a in enumerate(alerts):
        where = f"alerts[{i}]"
        if not isinstance(a, dict):
            raise WebhookError(where, "expected an object")
        st = a.get("status")
        if st not in ("firing", "resolved"):
            raise WebhookError(f"{where}.status", f"expected firing or resolved, got {st!r}")
        labels = _strmap(a.get("labels"), f"{where}.labels", required=True)
        name = labels.get("alertname", "")
        if not name:
            raise WebhookError(f"{where}.labels.alertname", "is required")
        annotations = _strmap(a.get("annotations"), f"{where}.annotations")
        starts = _time(a.get("startsAt"), f"{where}.startsAt") if "startsAt" in a else None
        ends = _time(a.get("endsAt"), f"{where}.endsAt") if "endsAt" in a else None
        for key in ("fingerprint", "generatorURL"):
            if key in a and not isinstance(a[key], str):
                raise WebhookError(f"{where}.{key}", f"expected a string, got {type(a[key]).__name__}")
        word = _WORD_BAD.sub("_", name)[:64]
        cls = f"ereport.prometheus.{word}"
        if "fmri" in labels:
            try:
                resource = check_resource(labels["fmri"])
            except EreportError as e:
                raise WebhookError(f"{where}.labels.fmri", e.message) from None
        else:
            resource = f"alert:///{word}"
            inst = labels.get("instance")
            if inst:
                resource += "/" + _RES_BAD.sub("_", inst)[:200]
        summary = annotations.get("summary") or annotations.get("description") or ""
        payload: dict[str, Any] = {
            "status": st, "alertname": name, "labels": labels, "annotations": annotations,
            "summary": f"{name}: {summary}" if summary else name,
            "fingerprint": a.get("fingerprint", ""), "startsAt": a.get("startsAt", ""),
            "endsAt": a.get("endsAt", ""), "generatorURL": a.get("generatorURL", ""),
            "receiver": doc.get("receiver", ""), "groupKey": doc.get("groupKey", ""),
            "externalURL": doc.get("externalURL", ""), "source": "alertmanager"}
        when = (ends if st == "resolved" else starts) or starts
        try:
            e = validate(cls, time_=when, resource=resource, payload=payload, source="", default_node=node)
        except EreportError as err:
            if err.field == "time":
                e = validate(cls, resource=resource, payload=payload, source="", default_node=node)
            else:
                raise WebhookError(where if err.field == "payload" else f"{where}.{err.field}",
                                   err.message) from None
        out.append((e.cls, e.resource, payload, e.time))
    return out


class WebhookReceiver:
    """HTTP/1.1, one request per connection, bounded in size, time and connections."""

    def __init__(self, host: str, port: int, emit: Emit, *, secret: bytes, node: str = "", max_conns: int = 32,
                 timeout: float = 10.0) -> None:
        if not secret:
            raise ValueError("the webhook receiver needs a secret")
        #: what a request must carry (``authorized``); may be replaced while running (SIGHUP)
        self.secret = secret
        self.host = host
        self.port = port
        self.emit = emit
        self.node = node
        self.max_conns = max_conns
        self.timeout = timeout
        self.active = 0
        self.counters = {"requests": 0, "alerts": 0, "rejected": 0, "refused": 0, "unauthorized": 0}
        self.last_error = ""
        self.ready = asyncio.Event()

    async def run(self) -> None:
        server = await asyncio.start_server(self._serve, self.host, self.port, limit=65536)
        self.ready.set()
        log.info("Alertmanager webhook receiver on http://%s:%d/", self.host, self.port)
        async with server:
            await server.serve_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.active >= self.max_conns:
                self.counters["refused"] += 1
                await self._reply(writer, 503, {"error": "too many connections"})
                return
            self.active += 1
            try:
                async with asyncio.timeout(self.timeout):
                    code, body = await self._handle(reader)
            except TimeoutError:
                code, body = 408, {"error": f"request not received within {self.timeout:g}s"}
            finally:
                self.active -= 1
            if code >= 400:
                self.counters["rejected"] += 1
                self.last_error = body.get("error", "")
                log.warning("webhook request refused (%d): %s", code, self.last_error)
            await self._reply(writer, code, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _reply(self, writer: asyncio.StreamWriter, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode() + b"\n"
        head = (f"HTTP/1.1 {code} {_REASONS.get(code, 'Error')}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n")
        if code == 405:
            head += "Allow: POST\r\n"
        if code == 401:
            head += 'WWW-Authenticate: Bearer realm="svcmgr"\r\n'
        writer.write(head.encode() + b"\r\n" + data)
        await writer.drain()

    def authorized(self, header: str) -> bool:
        """Whether an Authorization header carries the secret (Bearer, or Basic's password)."""
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            given = value.encode("latin-1", "replace")
        elif scheme.lower() == "basic":
            try:
                given = base64.b64decode(value, validate=True).partition(b":")[2]
            except (binascii.Error, ValueError):
                return False
        else:
            return False
        return hmac.compare_digest(given, self.secret)

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        try:
            line = await reader.readline()
        except (ValueError, asyncio.LimitOverrunError):
            return 431, {"error": "request line too long"}
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return 400, {"error": "not an HTTP/1.x request"}
        method, _path, _ = parts
        headers: dict[str, str] = {}
        for _ in range(101):
            try:
                h = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                return 431, {"error": "header line too long"}
            if h in (b"\r\n", b"\n", b""):
                break
            name, sep, value = h.decode("latin-1").partition(":")
            if not sep:
                return 400, {"error": f"malformed header line {h[:60]!r}"}
            headers[name.strip().lower()] = value.strip()
        else:
            return 431, {"error": "more than 100 header lines"}
        self.counters["requests"] += 1
        if method != "POST":
            return 405, {"error": f"{method} is not supported: Alertmanager POSTs alerts here"}
        if "origin" in headers:
            return 403, {"error": "a browser (Origin header) may not post alerts"}
        if not self.authorized(headers.get("authorization", "")):
            self.counters["unauthorized"] += 1
            return 401, {"error": "missing or wrong credential (Authorization: Bearer, or Basic auth, with the "
                                  "secret of [fault] webhook_credential)"}
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return 415, {"error": "the body must be application/json (Alertmanager's webhook)"}
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return 411, {"error": "chunked bodies are not supported; send Content-Length"}
        length = headers.get("content-length", "")
        if not length.isdigit():
            return 411, {"error": "Content-Length is required"}
        n = int(length)
        if n > MAX_BODY:
            return 413, {"error": f"body of {n} bytes is larger than {MAX_BODY}"}
        body = await reader.readexactly(n)
        try:
            alerts = alerts_from_body(body, node=self.node)
        except WebhookError as e:
            return 400, {"error": str(e)}
        for cls, resource, payload, when in alerts:
            self.emit(cls, resource, payload, when)
        self.counters["alerts"] += len(alerts)
        return 200, {"status": "ok", "accepted": len(alerts)}
