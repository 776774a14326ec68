"""The dashboard component: routes, the security of every request, and the pages' rendering.

Every request passes, in order: the Host check (a name this dashboard answers to: no DNS
rebinding), the viewer (a session cookie, else the anonymous reader when allowed, else the
login page), the method (pages are GET, actions POST only), and for every POST the
same-origin check (``Sec-Fetch-Site`` and ``Origin`` must name this origin; a POST carrying
neither is refused) and, for actions, the session's CSRF token. Every response carries a
strict Content-Security-Policy (no inline script, Trusted Types required), ``nosniff``,
``frame-ancestors 'none'`` and ``no-store``. Pages are jinja2 templates with autoescaping:
every name, description and log line is text, never markup.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import jinja2

from svcmgr.api import ApiError, Caller
from svcmgr.httpd import HttpError, HttpServer, Request, Response
from svcmgr.web import actions as act
from svcmgr.web.auth import ANONYMOUS, Session, Sessions, authenticate, csrf_ok
from svcmgr.web.config import WebConfig, section
from svcmgr.web.stream import Hub
from svcmgr.web.views import Views, hhmmss

if TYPE_CHECKING:
    from svcmgr.component import Context
    from svcmgr.config import DaemonConfig

__all__ = ["Dashboard"]

log = logging.getLogger("svcmgr.web")

MAX_BODY = 16 * 1024
COOKIE = "svcmgr_session"
#: sent by app.js's live refresh of a page (an XMLHttpRequest, not a navigation)
REFRESH_HEADER = "x-svcmgr-refresh"
LOGIN_DELAY = 0.5
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; require-trusted-types-for 'script'; "
       "trusted-types 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make a form post's Origin "null"
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
PAGES = {"/": "overview", "/instance": "instance", "/graph": "graph", "/faults": "faults", "/vips": "vips",
         "/fleet": "fleet", "/node": "node"}
NAV = [("/", "Instances"), ("/graph", "Graph"), ("/faults", "Faults"), ("/vips", "Virtual IPs"),
       ("/fleet", "Fleet")]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("svcmgr.web", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.globals["hhmmss"] = hhmmss
    return env


def _static() -> dict[str, bytes]:
    base = resources.files("svcmgr.web") / "static"
    return {name: (base / name).read_bytes() for name in STATIC}


class Dashboard:
    """Serves the dashboard on ``[web] listen``."""

    name = "web"

    def __init__(self, ctx: Context, cfg: WebConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.sessions = Sessions(cfg.session_idle, cfg.session_max)
        self.views = Views(ctx.api, ctx.config.section("mqtt"))
        self.env = _environment()
        self.static = _static()
        self.hub: Hub | None = None
        self.http = HttpServer("web", self._handle, max_connections=cfg.max_connections, max_body=MAX_BODY,
                               ssl_context=self._ssl())
        self.counters = {"pages": 0, "actions": 0, "refused": 0, "logins": 0, "failed_logins": 0}

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.cfg.tls:
            return None
        c = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        c.minimum_version = ssl.TLSVersion.TLSv1_2
        c.load_cert_chain(self.cfg.cert_file, self.cfg.key_file)
        return c

    # ------------------------------------------------------------ component
    def setup(self) -> None:
        self.hub = Hub(self.ctx.bus, self.cfg.max_streams)
        self.ctx.api.register("web", self._op_status)

    async def run(self) -> None:
        assert self.hub is not None
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.hub.run(), name="web-hub")
            try:
                log.info("web: dashboard on %s://%s (actions %s)", "https" if self.cfg.tls else "http",
                         self.cfg.listen, "on" if self.cfg.actions else "off")
                await self.http.serve(self.cfg.host, self.cfg.port)
            except OSError as e:
                log.error("web: cannot listen on %s: %s; the dashboard is off", self.cfg.listen, e.strerror or e)
                raise asyncio.CancelledError from None

    def reconfigure(self, config: DaemonConfig) -> None:
        cfg = section(config)
        if (cfg.listen, cfg.cert_file, cfg.key_file) != (self.cfg.listen, self.cfg.cert_file, self.cfg.key_file):
            log.warning("web: a new listen address or certificate applies after a daemon restart")
        self.sessions.forget_users(set(cfg.users))
        self.cfg = WebConfig(**{**cfg.__dict__, "listen": self.cfg.listen, "host": self.cfg.host,
                                "port": self.cfg.port, "cert_file": self.cfg.cert_file,
                                "key_file": self.cfg.key_file, "max_connections": self.cfg.max_connections})
        self.sessions.idle, self.sessions.longest = cfg.session_idle, cfg.session_max

    def statistics(self) -> dict[str, Any]:
        addr = self.http.address
        return {"listen": self.cfg.listen, "address": f"{addr[0]}:{addr[1]}" if addr else None,
                "tls": self.cfg.tls, "actions": self.cfg.actions, "anonymous": self.cfg.anonymous,
                "users": len(self.cfg.users), "sessions": len(self.sessions), "http": dict(self.http.counters),
                "connections": self.http.active, "streams": self.hub.statistics() if self.hub else {},
                **self.counters}

    async def _op_status(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{}`` -> where the dashboard listens, its sessions, streams and counters."""
        return self.statistics()

    # ------------------------------------------------------------ request checks
    def _origin(self, req: Request) -> str:
        return f"{'https' if self.cfg.tls else 'http'}://{req.header('host')}"

    def _host_ok(self, host: str) -> bool:
        port = self.cfg.port
        names = {"localhost", "127.0.0.1", "[::1]", self.cfg.host if ":" not in self.cfg.host else f"[{self.cfg.host}]"}
        allowed = {f"{n}:{port}" for n in names} | {f"{h}:{port}" for h in self.cfg.hosts if ":" not in h} | \
            {h for h in self.cfg.hosts if ":" in h}
        if (self.cfg.tls and port == 443) or (not self.cfg.tls and port == 80):
            allowed |= names | set(self.cfg.hosts)
        return host.lower() in allowed

    def _same_origin(self, req: Request) -> None:
        """Refuse a POST that a browser did not send from one of this dashboard's own pages."""
        site = req.header("sec-fetch-site")
        origin = req.header("origin")
        if site and site != "same-origin":
            raise HttpError(403, f"refused: a {site} request (Sec-Fetch-Site) may not act here")
        if origin and origin != self._origin(req):
            raise HttpError(403, "refused: the request comes from another origin (Origin)")
        if not site and not origin:
            raise HttpError(403, "refused: a POST must come from a dashboard page (no Origin or Sec-Fetch-Site)")

    def _viewer(self, req: Request) -> tuple[Session | None, Caller | None]:
        s = self.sessions.get(req.cookie(COOKIE))
        if s is not None:
            return s, s.caller
        return None, ANONYMOUS if self.cfg.anonymous else None

    # ------------------------------------------------------------ dispatch
    async def _handle(self, req: Request, writer: asyncio.StreamWriter) -> Response | None:
        if not self._host_ok(req.header("host")):
            self.counters["refused"] += 1
            return self._secure(Response.text(421, "this dashboard does not answer to that Host name "
                                                   "(add it to [web] hosts)\n"))
        try:
            resp = await self._route(req, writer)
        except HttpError as e:
            if e.status in (403, 405):
                self.counters["refused"] += 1
            resp = self._page_error(req, e.status, e.message, e.headers)
        return None if resp is None else self._secure(resp)

    def _secure(self, resp: Response) -> Response:
        resp.headers = {**SECURITY_HEADERS, "Cache-Control": "no-store", **resp.headers}
        return resp

    async def _route(self, req: Request, writer: asyncio.StreamWriter) -> Response | None:
        path = req.path
        if path.startswith("/static/"):
            return self._get_static(req, path[len("/static/"):])
        if path == "/login":
            return await self._login(req)
        if path == "/logout":
            return self._logout(req)
        if path == "/action":
            if req.method != "POST":
                raise HttpError(405, "actions are taken by POST from a dashboard page, never by a link",
                                {"Allow": "POST"})
            return await self._action(req)
        session, caller = self._viewer(req)
        if path == "/events":
            self._only_get(req)
            if caller is None:
                raise HttpError(401, "log in first")
            assert self.hub is not None
            last = req.header("last-event-id") or (req.query.get("last") or [""])[0]
            await self.hub.serve(writer, last[:20], {**SECURITY_HEADERS})
            return None
        page = PAGES.get(path)
        if page is None:
            raise HttpError(404, f"no page {path[:100]}")
        self._only_get(req)
        if caller is None:
            return Response(303, b"", {"Location": "/login?" + urlencode({"back": req.target[:500]})})
        self.counters["pages"] += 1
        data = await getattr(self, f"_page_{page}")(req, caller)
        return self._render(page, req, session, data)

    @staticmethod
    def _only_get(req: Request) -> None:
        if req.method not in ("GET", "HEAD"):
            raise HttpError(405, "pages are read with GET", {"Allow": "GET, HEAD"})

    def _get_static(self, req: Request, name: str) -> Response:
        self._only_get(req)
        if name not in self.static:
            raise HttpError(404, "no such file")
        return Response(200, self.static[name], {"Content-Type": STATIC[name], "Cache-Control": "no-cache"})

    # ------------------------------------------------------------ rendering
    def _render(self, page: str, req: Request, session: Session | None, data: dict[str, Any],
                status: int = 200) -> Response:
        # the flash is outside <main>: a page's live refresh (app.js, marked by REFRESH_HEADER) swaps in
        # <main> only, and must leave the flash to the page the browser is on its way to after an action
        refresh = req.header(REFRESH_HEADER) == "1"
        flash = list(session.flash) if session and not refresh else []
        if session and not refresh:
            session.flash.clear()
        hub = self.hub
        body = self.env.get_template(f"{page}.html").render(
            page=page, data=data, nav=NAV, node=self.ctx.node, user=session.user if session else None,
            csrf=session.csrf if session else "", actions=self.cfg.actions and session is not None,
            can_login=bool(self.cfg.users), flash=flash, back=req.target[:500], path=req.path,
            last_id=hub.next_id - 1 if hub else 0,
            feed=list(hub.ring)[-15:] if hub else [],
            act=act, to_json=lambda v: json.dumps(v, indent=1, default=str))
        return Response(status, body.encode(), {"Content-Type": "text/html; charset=utf-8"})

    def _page_error(self, req: Request, status: int, message: str, headers: dict[str, str]) -> Response:
        session, _ = self._viewer(req)
        if req.path.startswith(("/static/", "/events")):
            return Response.text(status, message + "\n", **headers)
        resp = self._render("error", req, session, {"status": status, "message": message}, status)
        resp.headers.update(headers)
        return resp

    async def _api(self, coro: Any) -> Any:
        try:
            return await coro
        except ApiError as e:
            raise HttpError(404 if "no instance" in str(e) or e.code == 2 else 403, str(e)) from None

    # ------------------------------------------------------------ pages
    async def _page_overview(self, req: Request, caller: Caller) -> dict[str, Any]:
        return await self.views.overview(caller)

    async def _page_instance(self, req: Request, caller: Caller) -> dict[str, Any]:
        fmri = (req.query.get("fmri") or [""])[0]
        if not fmri:
            raise HttpError(400, "which instance? /instance?fmri=svc:/...")
        return await self._api(self.views.instance(caller, fmri[:1000]))

    async def _page_graph(self, req: Request, caller: Caller) -> dict[str, Any]:
        layout = (req.query.get("layout") or ["graphviz"])[0]
        return {**await self.views.graph(caller, graphviz=layout != "builtin"), "layout": layout}

    async def _page_faults(self, req: Request, caller: Caller) -> dict[str, Any]:
        return await self.views.cases(caller)

    async def _page_vips(self, req: Request, caller: Caller) -> dict[str, Any]:
        return await self.views.vrrp(caller)

    async def _page_fleet(self, req: Request, caller: Caller) -> dict[str, Any]:
        return await self.views.fleet()

    async def _page_node(self, req: Request, caller: Caller) -> dict[str, Any]:
        name = (req.query.get("name") or [""])[0][:64]
        data = await self.views.fleet(name)
        return {**data, "name": name}

    # ------------------------------------------------------------ login, actions
    async def _login(self, req: Request) -> Response:
        back = (req.query.get("back") or ["/"])[0]
        session, _ = self._viewer(req)
        if req.method in ("GET", "HEAD"):
            return self._render("login", req, session, {"back": _local(back), "error": ""})
        if req.method != "POST":
            raise HttpError(405, "log in with the form", {"Allow": "GET, POST"})
        self._same_origin(req)
        form = req.form()
        back = _local(form.get("back", "/"))
        caller = authenticate(self.cfg.users, form.get("user", "")[:64], form.get("secret", "")[:4096])
        if caller is None:
            self.counters["failed_logins"] += 1
            await asyncio.sleep(LOGIN_DELAY)
            log.warning("web: failed login for %r from %s", form.get("user", "")[:64], req.peer)
            resp = self._render("login", req, None, {"back": back, "error": "wrong user name or secret"}, 401)
            return resp
        if session is not None:
            self.sessions.drop(session.id)
        s = self.sessions.create(form["user"], caller)
        self.counters["logins"] += 1
        log.info("web: %s logged in from %s", s.user, req.peer)
        secure = "; Secure" if self.cfg.tls else ""
        return Response(303, b"", {"Location": back,
                                   "Set-Cookie": f"{COOKIE}={s.id}; Path=/; HttpOnly; SameSite=Strict{secure}"})

    def _logout(self, req: Request) -> Response:
        if req.method != "POST":
            raise HttpError(405, "log out with the button", {"Allow": "POST"})
        self._same_origin(req)
        session, _ = self._viewer(req)
        if session is not None:
            if not csrf_ok(session, req.form().get("csrf", "")):
                raise HttpError(403, "refused: this form is stale or forged (CSRF token)")
            self.sessions.drop(session.id)
        return Response(303, b"", {"Location": "/", "Set-Cookie": f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; "
                                                                  "SameSite=Strict"})

    async def _action(self, req: Request) -> Response:
        self._same_origin(req)
        if not self.cfg.actions:
            raise HttpError(403, "actions are off on this dashboard ([web] actions = false): it is read-only")
        session, _ = self._viewer(req)
        if session is None:
            raise HttpError(403, "log in to act")
        form = req.form()
        if not csrf_ok(session, form.get("csrf", "")):
            raise HttpError(403, "refused: this form is stale or forged (CSRF token)")
        a = act.ACTIONS.get(form.get("action", ""))
        if a is None:
            raise HttpError(400, f"no action {form.get('action', '')[:40]!r}")
        try:
            target = a.check(form.get("target", ""))
        except act.ActionError as e:
            raise HttpError(400, str(e)) from None
        line = a.command_line(target)
        self.counters["actions"] += 1
        try:
            result = await self.ctx.api.call(session.caller, a.op, **a.request(target))
        except ApiError as e:
            log.warning("web: %s refused for %s: %s", line, session.user, e)
            session.flash.append(("error", f"{line}: {e}"))
        else:
            log.info("web: %s by %s", line, session.user)
            skipped = result.get("skipped") if isinstance(result, dict) else None
            session.flash.append(("done", f"{line}: done" + (f" (skipped: {', '.join(skipped)})" if skipped else "")))
        return Response(303, b"", {"Location": _local(form.get("back", "/"))})


def _local(target: str) -> str:
    """A redirect target on this dashboard only (a path, never another host)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or any(ord(c) < 0x20 for c in target):
        return "/"
    return target[:500]

