"""The dashboard's decisions without a daemon: configuration rules, logins and sessions, the checks of
every request (Host, same origin, CSRF, methods), the drawing check, event resume, and every page
rendered from operation replies shaped as the daemon's (the browser tests run the real thing)."""

from __future__ import annotations

import os
import pwd
import tempfile
import types
from pathlib import Path
from typing import Any

import pytest

from svcmgr.api import Api, ApiError
from svcmgr.bus import Bus
from svcmgr.config import load_config
from svcmgr.events import Event
from svcmgr.httpd import HttpError, Request
from svcmgr.schema import FieldErrors
from svcmgr.web import actions as act
from svcmgr.web.auth import ANONYMOUS, Sessions, authenticate
from svcmgr.web.config import WebConfig
from svcmgr.web.server import COOKIE, Dashboard
from svcmgr.web.stream import Hub
from svcmgr.web.svgcheck import SvgRefused, check_svg

SECRET = "s3cret-s3cret-s3cret"
FMRI = "svc:/site/app:default"
UUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def _config(tmp: Path, web: str, users: str | None = None, mode: int = 0o600) -> Any:
    text = "[web]\n" + web
    if users is not None:
        cred = tmp / "users"
        cred.write_text(users)
        cred.chmod(mode)
        text += f'\ncredentials = "{cred}"\n'
    p = tmp / "node.toml"
    p.write_text(text)
    return load_config(str(p))


@pytest.mark.parametrize(("web", "users", "mode", "words"), [
    ('listen = "192.0.2.1:9465"', None, 0o600, "needs credentials there"),
    ('listen = "192.0.2.1:9465"', f"root:{SECRET}\n", 0o600, "needs cert_file and key_file"),
    ('listen = "127.0.0.1:9465"\nactions = true', None, 0o600, "actions need credentials"),
    ('listen = "127.0.0.1:9465"', f"root:{SECRET}\n", 0o644, "a secret must be 0600"),
    ('listen = "127.0.0.1:9465"', "root:short\n", 0o600, "at least 16 printable"),
    ('listen = "127.0.0.1:9465"', f"no-such-user-here:{SECRET}\n", 0o600, "not a local account"),
    ('listen = "127.0.0.1:9465"', f"root {SECRET}\n", 0o600, "expected user:secret"),
    ('listen = "127.0.0.1:9465"\nanonymous = false', None, 0o600, "needs credentials"),
    ('listen = "nonsense"', None, 0o600, "expected host:port"),
    ('listen = "127.0.0.1:9465"\nfrobnicate = 1', None, 0o600, "unknown field"),
])
def test_bad_web_configuration_names_the_field_and_why(tmp_path, web, users, mode, words):
    with pytest.raises(FieldErrors) as e:
        _config(tmp_path, web, users, mode)
    assert words in str(e.value) and "web." in str(e.value)


def test_good_configuration_off_by_default_and_loopback_read_only(tmp_path):
    assert load_config(None).section("web") is None
    cfg = _config(tmp_path, 'listen = "127.0.0.1:9465"').section("web")
    assert (cfg.host, cfg.port, cfg.actions, cfg.anonymous, cfg.users) == ("127.0.0.1", 9465, False, True, {})
    cfg = _config(tmp_path, 'listen = "127.0.0.1:9465"\nactions = true',
                  f"# operators\nroot:{SECRET}\n\nnobody:{SECRET}x\n").section("web")
    assert cfg.actions and cfg.users == {"root": SECRET.encode(), "nobody": (SECRET + "x").encode()}


def test_login_is_checked_in_constant_time_and_gives_the_accounts_own_rights():
    users = {"root": SECRET.encode(), "nobody": b"another-secret-123"}
    assert authenticate(users, "root", "wrong-secret-wrong") is None
    assert authenticate(users, "ghost", SECRET) is None
    root = authenticate(users, "root", SECRET)
    assert root is not None and root.privileged and root.uid == 0
    nobody = authenticate(users, "nobody", "another-secret-123")
    assert nobody is not None and not nobody.privileged and nobody.uid == pwd.getpwnam("nobody").pw_uid
    assert not ANONYMOUS.privileged and ANONYMOUS.uid == -1 and not ANONYMOUS.groups


def test_sessions_expire_when_idle_or_old_and_are_bounded():
    now = [0.0]
    s = Sessions(idle=10, longest=25, clock=lambda: now[0])
    a = s.create("root", ANONYMOUS)
    now[0] = 9
    assert s.get(a.id) is a
    now[0] = 18
    assert s.get(a.id) is a
    now[0] = 26  # used within the idle time, but older than the longest
    assert s.get(a.id) is None
    b = s.create("root", ANONYMOUS)
    now[0] = 37
    assert s.get(b.id) is None and s.get("") is None and s.get("x" * 500) is None
    for _ in range(300):
        s.create("root", ANONYMOUS)
    assert len(s) == 256


def test_drawings_with_script_links_or_foreign_elements_are_refused():
    ok = '<svg xmlns="http://www.w3.org/2000/svg"><g class="node"><title>svc:/a:b</title><rect/></g></svg>'
    out = check_svg('<?xml version="1.0"?>\n<!-- c --><!DOCTYPE svg>' + ok, {"svc:/a:b": "online"})
    assert out.startswith("<svg") and 'data-state="online"' in out and "<!--" not in out
    for bad in ('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
                '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
                '<svg xmlns="http://www.w3.org/2000/svg"><foreignObject/></svg>',
                '<svg xmlns="http://www.w3.org/2000/svg" xmlns:x="http://www.w3.org/1999/xlink">'
                '<a x:href="javascript:alert(1)"/></svg>',
                '<svg xmlns="http://www.w3.org/2000/svg"><rect style="fill:red"/></svg>',
                '<!DOCTYPE x [<!ENTITY a "b">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>',
                '<html/>', "<svg"):
        with pytest.raises(SvgRefused):
            check_svg(bad)


def test_event_stream_resumes_from_its_ring_or_says_reset():
    bus = Bus("n")
    hub = Hub(bus, 4)
    for i in range(5):
        hub.publish(Event("svc.state.online", f"svc:/s/x{i}:default", {"reason": "<b>x</b>"}))
    hub.publish(Event("ereport.svc.exit.signal", FMRI, {"line": "secret log line"}))  # not for pages
    assert hub.next_id == 6
    assert [m.id for m in hub.backlog("3")] == [4, 5]
    assert hub.backlog("5") == [] and hub.backlog("") == []
    assert hub.backlog("99") is None and hub.backlog("abc") is None
    hub.ring.clear()
    assert hub.backlog("2") is None
    assert all("secret" not in str(m.data) for m in hub.ring)


def test_actions_check_their_target_and_show_the_command_line():
    a = act.ACTIONS["restart"]
    assert a.request(a.check(FMRI)) == {"fmris": [FMRI]}
    assert a.command_line(FMRI) == f"svcadm restart {FMRI}"
    assert act.ACTIONS["mark-maintenance"].request(FMRI) == {"fmris": [FMRI], "state": "maintenance"}
    assert act.ACTIONS["repair"].request(UUID) == {"target": UUID, "verdict": "repair"}
    for bad in ("svc:/a b", "; rm -rf /", "svc:/site/app"):
        with pytest.raises(act.ActionError):
            a.check(bad)
    with pytest.raises(act.ActionError):
        act.ACTIONS["repair"].check(FMRI)


# ---------------------------------------------------------------- the server, with canned operations
ITEM = {"fmri": FMRI, "state": "maintenance", "nstate": None, "stime": None, "stime_epoch": 1.7e9, "svc": "site/app",
        "inst": "default", "desc": "<i>app</i>", "ctid": 3, "enabled": True, "temporary": False, "pids": [],
        "reason": "x", "restarts": 2}


def _api(calls: list[tuple[Any, str, dict[str, Any]]]) -> Api:
    api = Api("/nonexistent")

    def op(name: str, reply: Any) -> None:
        async def handler(caller: Any, req: dict[str, Any]) -> Any:
            calls.append((caller, name, req))
            if isinstance(reply, Exception):
                raise reply
            return reply(req) if callable(reply) else reply
        api.register(name, handler)

    explain = {**ITEM, "reason": "Restarting too quickly.", "impact": ["svc:/site/web:default"], "log_tail": []}
    op("list", [ITEM])
    op("explain", [explain])
    op("show", {**ITEM, "name": "", "restarter": "svc:/system/svc/restarter:default", "duration": "contract",
                "logfile": "/x.log", "status": "", "starts": 3, "restarts": 2, "last_exit": "exit 1", "marks": {},
                "manifest": "/m.toml", "readiness": "tcp", "health": None,
                "dependencies": [{"name": "db", "grouping": "require_all", "restart_on": "error",
                                  "fmris": ["svc:/site/db:default"], "states": {"svc:/site/db:default": "online"}}],
                "dependents": [{"fmri": "svc:/site/web:default", "name": "app", "grouping": "require_all"}]})
    op("log", lambda req: {"fmri": FMRI, "path": "/x.log", "tail": ["<script>x</script>"], "allowed": True})
    op("timings", {"starts": [{"status": "online", "wait": 0.1, "start": 0.2, "method": 0.15, "reason": None}]})
    op("graph", {"nodes": [{"fmri": FMRI, "state": "maintenance", "kind": "service"},
                           {"fmri": "svc:/site/db:default", "state": "online", "kind": "service"}],
                 "edges": [{"from": FMRI, "to": "svc:/site/db:default", "grouping": "require_all",
                            "restart_on": "error", "value": "met"}], "cycles": []})
    op("fm.faulty", [{"uuid": UUID, "title": "Processes die", "time": "t", "msgid": "SVC-8000-1", "severity": "Major",
                      "class": "fault.svc.flapping", "state": "solved", "description": "d", "response": "r",
                      "impact": "i", "action": "a",
                      "affected": [{"fmri": FMRI, "role": "suspect", "fault": "f", "certainty": 100, "now": "x"},
                                   {"fmri": "svc:/site/web:default", "role": "impacted", "now": "offline"}]}])
    router = {"name": "web", "interface": "eth0", "router_id": 51, "addresses": ["192.0.2.10/24"], "state": "MASTER",
              "configured_priority": 150, "effective_priority": 100, "peers": ["multicast"], "last_transition": "t",
              "follows": [{"fmri": FMRI, "weight": 0, "healthy": False, "state": "maintenance"}]}
    op("vrrp.show", {"available": True, "service": "svc:/network/vrrp:default", "service_state": "online",
                     "routers": [router]})
    op("restart", lambda req: {"fmris": req["fmris"], "skipped": []})
    op("disable", ApiError("permission denied: nope", 1))
    return api


@pytest.fixture
def dash():
    calls: list[tuple[Any, str, dict[str, Any]]] = []
    tmp = Path(tempfile.mkdtemp())
    cfg = WebConfig(listen="127.0.0.1:9465", host="127.0.0.1", port=9465, actions=True, anonymous=True,
                    credentials=str(tmp / "u"), users={"root": SECRET.encode()})
    ctx = types.SimpleNamespace(node="n1", api=_api(calls), bus=Bus("n1"),
                                config=types.SimpleNamespace(section=lambda name: None))
    d = Dashboard(ctx, cfg)
    d.setup()
    d.calls = calls
    yield d
    os.rmdir(tmp)


def _req(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Request:
    from urllib.parse import parse_qs, urlsplit

    u = urlsplit(path)
    h = {"host": "127.0.0.1:9465", **{k.lower(): v for k, v in (headers or {}).items()}}
    return Request(method, path, u.path, parse_qs(u.query), h, body, "127.0.0.1")


async def _get(d: Dashboard, path: str, **headers: str) -> tuple[int, dict[str, str], str]:
    r = await d._handle(_req("GET", path, headers), None)
    return r.status, r.headers, r.body.decode()


@pytest.mark.parametrize("path", ["/", f"/instance?fmri={FMRI}", "/graph", "/graph?layout=builtin", "/faults",
                                  "/vips", "/fleet", "/node?name=n2", "/login"])
async def test_every_page_renders_with_strict_headers_and_escaped_text(dash, path):
    status, headers, body = await _get(dash, path)
    assert status == 200, body
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store"
    assert "<i>app</i>" not in body and "<script>x" not in body and "<script " not in body.replace(
        '<script src="/static/app.js" defer></script>', "")
    assert "<form method=\"post\" action=\"/action\"" not in body  # anonymous: no buttons
    if path.startswith("/instance"):
        assert "&lt;script&gt;x&lt;/script&gt;" in body  # the log tail, as text
    if path == "/vips":
        assert "this node (n1)" in body and "192.0.2.10/24" in body


async def test_requests_for_another_host_name_are_refused(dash):
    status, _, body = await _get(dash, "/", Host="evil.example:9465")
    assert status == 421 and "Host" in body
    assert (await _get(dash, "/", Host="localhost:9465"))[0] == 200


async def _login(dash: Dashboard) -> tuple[str, str]:
    form = f"user=root&secret={SECRET}&back=/".encode()
    r = await dash._handle(_req("POST", "/login", {"Origin": "http://127.0.0.1:9465",
                                                   "Content-Type": "application/x-www-form-urlencoded"}, form), None)
    assert r.status == 303
    sid = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]
    return sid, dash.sessions.get(sid).csrf


async def test_an_action_needs_post_same_origin_a_session_and_its_token(dash):
    sid, csrf = await _login(dash)
    cookie = {"Cookie": f"{COOKIE}={sid}", "Content-Type": "application/x-www-form-urlencoded"}
    form = f"action=restart&target={FMRI}&back=/x&csrf=".encode()

    async def post(headers: dict[str, str], body: bytes) -> Any:
        return await dash._handle(_req("POST", "/action", headers, body), None)

    assert (await dash._handle(_req("GET", f"/action?action=restart&target={FMRI}", cookie), None)).status == 405
    assert (await post({**cookie, "Origin": "http://evil.example"}, form + csrf.encode())).status == 403
    assert (await post({**cookie, "Sec-Fetch-Site": "cross-site"}, form + csrf.encode())).status == 403
    assert (await post(cookie, form + csrf.encode())).status == 403  # neither header: not from a page
    same = {**cookie, "Origin": "http://127.0.0.1:9465", "Sec-Fetch-Site": "same-origin"}
    assert (await post(same, form + b"wrong")).status == 403
    assert (await post({k: v for k, v in same.items() if k != "Cookie"}, form + csrf.encode())).status == 403
    assert not [c for c in dash.calls if c[1] == "restart"]
    r = await post(same, form + csrf.encode())
    assert r.status == 303 and r.headers["Location"] == "/x"
    (caller, _, req) = next(c for c in dash.calls if c[1] == "restart")
    assert caller.uid == 0 and req["fmris"] == [FMRI]
    assert dash.sessions.get(sid).flash == [("done", f"svcadm restart {FMRI}: done")]
    # a refusal by the operation is the user's message, with the command line
    r = await post(same, f"action=disable&target={FMRI}&back=//evil.example&csrf={csrf}".encode())
    assert r.headers["Location"] == "/"
    assert dash.sessions.get(sid).flash[-1] == ("error", f"svcadm disable {FMRI}: permission denied: nope")
    _status, _, body = await _get(dash, f"/instance?fmri={FMRI}", Cookie=f"{COOKIE}={sid}")
    assert f"<code class=\"cmd\">svcadm clear {FMRI}</code>" in body and 'name="csrf"' in body


async def test_a_live_refresh_leaves_the_actions_result_to_the_page_the_browser_goes_to(dash):
    # the action's state events make the old page refresh its <main> while the browser follows the
    # redirect: that refresh must not take the flash (it is outside <main>, and would be lost)
    sid, csrf = await _login(dash)
    same = {"Cookie": f"{COOKIE}={sid}", "Content-Type": "application/x-www-form-urlencoded",
            "Origin": "http://127.0.0.1:9465", "Sec-Fetch-Site": "same-origin"}
    r = await dash._handle(_req("POST", "/action", same, f"action=restart&target={FMRI}&back=/&csrf={csrf}".encode()),
                           None)
    assert r.status == 303
    line = f"svcadm restart {FMRI}: done"
    _, _, body = await _get(dash, "/", Cookie=f"{COOKIE}={sid}", **{"X-Svcmgr-Refresh": "1"})
    assert line not in body and dash.sessions.get(sid).flash == [("done", line)]
    _, _, body = await _get(dash, "/", Cookie=f"{COOKIE}={sid}")
    assert f'<p class="flash flash-done">{line}</p>' in body and dash.sessions.get(sid).flash == []


async def test_with_actions_off_there_is_no_button_and_no_action(dash):
    sid, csrf = await _login(dash)
    dash.cfg = WebConfig(**{**dash.cfg.__dict__, "actions": False})
    _status, _, body = await _get(dash, f"/instance?fmri={FMRI}", Cookie=f"{COOKIE}={sid}")
    assert "data-action" not in body and "(read-only)" in body
    r = await dash._handle(_req("POST", "/action", {"Cookie": f"{COOKIE}={sid}", "Origin": "http://127.0.0.1:9465",
                                                    "Content-Type": "application/x-www-form-urlencoded"},
                                f"action=restart&target={FMRI}&csrf={csrf}".encode()), None)
    assert r.status == 403 and b"actions are off" in r.body


async def test_a_wrong_secret_is_refused_slowly_and_pages_need_a_login_without_anonymous(dash):
    form = b"user=root&secret=guess-guess-guess&back=/"
    r = await dash._handle(_req("POST", "/login", {"Origin": "http://127.0.0.1:9465",
                                                   "Content-Type": "application/x-www-form-urlencoded"}, form), None)
    assert r.status == 401 and "Set-Cookie" not in r.headers and dash.counters["failed_logins"] == 1
    dash.cfg = WebConfig(**{**dash.cfg.__dict__, "anonymous": False})
    status, headers, _ = await _get(dash, "/graph")
    assert status == 303 and headers["Location"].startswith("/login?back=")


def test_request_forms_are_strict():
    r = _req("POST", "/action", {"Content-Type": "text/plain"}, b"a=1")
    with pytest.raises(HttpError):
        r.form()
    r = _req("POST", "/action", {"Content-Type": "application/x-www-form-urlencoded"}, b"a=1&a=2")
    with pytest.raises(HttpError):
        r.form()
