"""The dashboard in a real headless Chromium, on the demo stack: the table, live updates after a kill -9,
the graph, the instance, faults and fleet pages, actions on and off, and hostile names shown as text.

One daemon (the demo's manifests plus two of this module's) and one browser serve the whole
module, so the tests run in file order. Screenshots go to .pytest_cache/web-shots/
(``SVCMGR_WEB_SHOTS`` to change): docs/dashboard.md shows the best of them.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest

from svctest import REPO, wait_until
from web_helpers import HOSTILE, NOBODY_SECRET, ROOT_SECRET, free_port, http, write_config

pytestmark = [pytest.mark.timeout(180), pytest.mark.xdist_group("demo-ports")]  # one worker: the demo's fixed ports

APP = "svc:/site/app:default"
HTML_SVC = "svc:/site/html:default"
DELEGATED = "svc:/site/delegated:default"


@pytest.fixture(scope="module")
def node(module_daemon, browser):
    d = module_daemon
    port = free_port()
    d.web_port = port
    d.url = f"http://127.0.0.1:{port}"
    d.web_config = lambda actions: write_config(d.root, port, actions=actions,
                                                users={"root": ROOT_SECRET, "nobody": NOBODY_SECRET})
    cfg = d.web_config(True)
    script = d.root / "html.sh"
    script.write_text(f"printf '%s\\n' '{HOSTILE}'\nexec sleep 1000\n")
    d.manifest("html.toml", f"""
        name = "site/html"
        description = '{HOSTILE}'
        duration = "child"
        [methods.start]
        exec = ["sh", "{script}"]
        """)
    d.manifest("delegated.toml", """
        name = "site/delegated"
        description = "a service delegated to nobody"
        duration = "child"
        [methods.start]
        exec = ["sleep", "1000"]
        [authorizations.action]
        users = ["nobody"]
        """)
    d.start("--config", str(cfg), "--metrics", "", "--manifests", str(REPO / "manifests" / "examples"))
    for f in (APP, "svc:/site/web:default", "svc:/milestone/demo:default", HTML_SVC, DELEGATED):
        d.wait_state(f, "online", timeout=30)
    return d


def _login(browser, node, user: str, secret: str, back: str = "/") -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{node.url}/login?back={quote(back)}")
    browser.driver.find_element(By.NAME, "user").send_keys(user)
    browser.driver.find_element(By.NAME, "secret").send_keys(secret)
    browser.driver.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_until(lambda: "/login" not in browser.driver.current_url, 10,
               what=f"the login to finish ({browser.js('return document.body.innerText')[:300]!r})")


def _logout(browser, node) -> None:
    browser.driver.delete_all_cookies()


def _row_state(browser, fmri: str) -> str | None:
    return browser.js("const r = document.querySelector(`tr[data-fmri='${arguments[0]}'] .c-state .state`);"
                      "return r ? r.textContent : null;", fmri)


def test_table_lists_the_demo_instances_with_their_states(node, browser):
    browser.get(node.url + "/")
    browser.wait_live()
    items = node.instances()
    rows = {f: desc for f, desc in browser.js(
        "return Array.from(document.querySelectorAll('table.instances tbody tr'), "
        "r => [r.dataset.fmri, r.querySelector('.c-desc').textContent])")}
    assert rows == {f: it["desc"] for f, it in items.items()}
    for f, it in items.items():
        assert _row_state(browser, f) == it["state"] + ("*" if it["nstate"] else "")
    assert "svc:/site/notes:default" in rows  # the SMF XML service of the demo too
    browser.shot("overview")


def test_a_kill9_shows_in_the_page_without_a_reload_within_a_second_and_comes_back(node, browser):
    browser.get(node.url + "/")
    browser.wait_live()
    # Everything the row's state cell shows, as it changes; and a mark a reload would wipe.
    browser.js("""
        window.__seen = []; window.__kept = 'no reload';
        const watch = () => { const c = document.querySelector(`tr[data-fmri='${arguments[0]}'] .c-state .state`);
                              if (c) window.__seen.push([Date.now(), c.textContent]); };
        new MutationObserver(watch).observe(document.body, {subtree: true, childList: true, characterData: true});
    """, APP)
    (old,) = node.pids(APP)
    restarts = node.info(APP)["restarts"]
    killed = browser.js("return Date.now()")
    os.kill(old, signal.SIGKILL)
    seen = wait_until(lambda: [s for s in browser.js("return window.__seen") if not s[1].startswith("online")],
                      5, what="the row to leave online")
    latency = (seen[0][0] - killed) / 1000
    assert latency < 1.0, f"the page showed {seen[0][1]} only {latency:.2f}s after the kill"
    wait_until(lambda: _row_state(browser, APP) == "online" and
               browser.js("return document.querySelector(`tr[data-fmri='${arguments[0]}'] .c-restarts`)"
                          ".textContent", APP) == str(restarts + 1), 15, what="the row back online")
    assert browser.js("return window.__kept") == "no reload"
    assert node.pids(APP) and node.pids(APP)[0] != old
    feed = browser.js("return document.getElementById('feed').textContent")
    assert f"{APP} online" in feed and APP in feed
    print(f"kill -9 to the page showing it: {latency * 1000:.0f} ms")


@pytest.mark.parametrize("layout", ["graphviz", "builtin"])
def test_the_graph_page_draws_every_instance_and_edge(node, browser, layout):
    browser.get(f"{node.url}/graph?layout={layout}")
    browser.wait_live()

    def same() -> bool:
        drawn = browser.js("return Array.from(document.querySelectorAll('#graph g.node'), "
                           "g => [g.dataset.fmri, g.dataset.state])")
        return {f: s for f, s in drawn} == {n["fmri"]: n["state"] for n in model["nodes"]} and len(drawn)

    model = node.call("graph")
    wait_until(lambda: same() or (model.update(node.call("graph")) and False), 5,
               what="the page to draw the daemon's graph")
    edges = sorted(tuple(x) for x in browser.attrs("#graph g.edge", "data-from", "data-to"))
    assert edges == sorted((e["from"], e["to"]) for e in model["edges"])
    assert browser.js("return document.querySelectorAll('#graph script, #graph foreignObject').length") == 0
    browser.shot(f"graph-{layout}")


def test_the_graph_turns_red_and_back(node, browser):
    browser.get(f"{node.url}/graph?layout=builtin")
    browser.wait_live()
    node.cli("svcadm", "mark", "maintenance", "svc:/site/web:default", check=True)
    def web() -> list[str]:
        return browser.js("const g = document.querySelector(\"#graph g.node[data-fmri='svc:/site/web:default']\");"
                          "return g ? [g.dataset.state, getComputedStyle(g.querySelector('rect')).fill] : [];")

    wait_until(lambda: web()[:1] == ["maintenance"], 5, what="web in red")
    assert web()[1] == "rgb(241, 148, 138)"  # the maintenance colour of svcmgr.draw.style
    browser.shot("graph-maintenance")
    node.cli("svcadm", "clear", "svc:/site/web:default", check=True)
    wait_until(lambda: web() == ["online", "rgb(168, 219, 168)"], 15, what="web back online, green")


def test_html_in_a_description_and_a_log_line_is_shown_as_text(node, browser):
    browser.get(node.url + "/")
    browser.wait_live()
    assert browser.texts(f"tr[data-fmri='{HTML_SVC}'] .c-desc") == [HOSTILE]
    assert browser.js("return [document.getElementById('pwn'), document.getElementById('bold')]") == [None, None]
    assert browser.js("return document.title") != "1"
    _login(browser, node, "root", ROOT_SECRET, f"/instance?fmri={quote(HTML_SVC)}")
    log = wait_until(lambda: browser.texts("pre.logtail"), 10, what="the log tail")[0]
    assert HOSTILE in log
    assert browser.js("return document.querySelectorAll('main img, main b, main script').length") == 0
    _logout(browser, node)


def test_the_instance_page_shows_svcs_l_dependencies_both_ways_and_the_log_only_to_readers(node, browser):
    browser.get(f"{node.url}/instance?fmri={quote(APP)}")
    browser.wait_live()
    text = browser.js("return document.getElementById('main').innerText")
    show = node.call("show", fmri=APP)
    for word in ("svc:/site/db:default", "svc:/site/migrate:default", "svc:/site/web:default",
                 "svc:/milestone/demo:default", show["logfile"], "Last start"):
        assert word in text
    assert not browser.texts("pre.logtail")  # anonymous: no log
    assert "shown to root and the users" in text
    assert not browser.texts("form.act")  # anonymous: no buttons
    browser.shot("instance-anonymous")


def test_faults_page_shows_the_case_its_article_and_impacted_services(node, browser):
    node.call("fm.inject", ereports=[{"class": "ereport.kernel.oom", "resource": APP,
                                      "payload": {"pid": 1, "process": "app"}}])
    (case,) = wait_until(lambda: [c for c in node.call("fm.faulty") if c["class"] == "fault.svc.oom"], 10,
                         what="the OOM case")
    browser.get(node.url + "/faults")
    browser.wait_live()
    (art,) = browser.texts(f"article.case[data-uuid='{case['uuid']}']")
    assert case["title"] in art and case["msgid"] in art and case["action"] in art
    assert APP in art
    browser.shot("faults")


def test_an_action_button_works_as_the_logged_in_user_with_that_users_rights(node, browser):

    _login(browser, node, "nobody", NOBODY_SECRET, f"/instance?fmri={quote(DELEGATED)}")
    before = node.info(DELEGATED)["stime_epoch"]
    assert browser.texts("form.act:has(button[data-action=restart]) code") == [f"svcadm restart {DELEGATED}"]
    browser.click("button[data-action=restart]")
    done = wait_until(lambda: browser.texts(".flash-done"), 10, what="the action's result")
    assert f"svcadm restart {DELEGATED}: done" in done[0]
    wait_until(lambda: node.info(DELEGATED)["stime_epoch"] > before and node.state(DELEGATED) == "online", 10)
    # nobody holds no right on the application: the same button is refused by the same authz as svcadm
    browser.get(f"{node.url}/instance?fmri={quote(APP)}")
    app_before = node.info(APP)["stime_epoch"]
    browser.click("button[data-action=restart]")
    err = wait_until(lambda: browser.texts(".flash-error"), 10, what="the refusal")[0]
    assert "permission denied" in err and "uid 65534" in err
    assert node.info(APP)["stime_epoch"] == app_before
    browser.shot("instance-refused")
    _logout(browser, node)
    _login(browser, node, "root", ROOT_SECRET, f"/instance?fmri={quote(APP)}")
    browser.shot("instance-root")
    _logout(browser, node)


def test_cross_origin_posts_and_actions_by_get_are_refused(node, browser):
    before = node.info(APP)["stime_epoch"]
    port = node.web_port
    form = f"action=restart&target={quote(APP)}&csrf=x&back=/".encode()
    ctype = {"Content-Type": "application/x-www-form-urlencoded"}
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1"}, {}):
        status, _, body = http(port, "POST", "/action", {**ctype, **headers}, form)
        assert status == 403, (headers, body)
    status, h, body = http(port, "GET", f"/action?action=restart&target={quote(APP)}")
    assert status == 405 and h["allow"] == "POST"
    # another site in a real browser (same host, other port: a cookie of SameSite=Strict still goes
    # along), with a form that posts to the dashboard on load
    _login(browser, node, "root", ROOT_SECRET)
    page = (f'<form id=f method=post action="{node.url}/action"><input name=action value=restart>'
            f'<input name=target value="{APP}"><input name=csrf value=guess></form>'
            '<script>document.getElementById("f").submit()</script>').encode()

    class Evil(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *a: object) -> None:
            pass

    evil = ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{evil.server_address[1]}/")
        wait_until(lambda: browser.driver.current_url.startswith(node.url), 10, what="the forged post")
        assert "refused: a same-site request" in browser.texts("#error")[0]
    finally:
        evil.shutdown()
    time.sleep(0.3)
    assert node.info(APP)["stime_epoch"] == before
    _logout(browser, node)


def test_with_actions_off_the_buttons_are_absent_and_a_post_is_refused(node, browser):

    node.web_config(False)
    node.call("reload")
    _login(browser, node, "root", ROOT_SECRET, f"/instance?fmri={quote(APP)}")
    assert browser.texts("table.long") and not browser.texts("form.act")
    assert "(read-only)" in browser.texts("header .who")[0]
    # a forged form from the page itself, with the session's own token: still refused
    browser.js("""
        const f = document.createElement('form'); f.method = 'post'; f.action = '/action';
        for (const [k, v] of [['action', 'restart'], ['target', arguments[0]],
                              ['csrf', document.querySelector("form.inline input[name=csrf]").value]]) {
            const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }
        document.body.appendChild(f); f.submit();""", APP)
    err = wait_until(lambda: browser.texts("#error"), 10, what="the refusal")[0]
    assert "actions are off" in err
    assert browser.texts("main h1") == ["403"]
    node.web_config(True)
    node.call("reload")
    _logout(browser, node)
