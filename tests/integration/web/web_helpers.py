"""Helpers of the dashboard tests: a node configuration with a dashboard, raw HTTP, a headless Chromium.

The browser is Debian's ``chromium`` driven by Debian's ``chromium-driver`` through selenium,
never a downloaded build (``SE_OFFLINE`` keeps Selenium Manager from fetching anything).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import textwrap
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from svctest import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = Path(os.environ.get("SVCMGR_WEB_SHOTS", REPO / ".pytest_cache" / "web-shots"))
ROOT_SECRET = "root-secret-0123456789abcdef"
NOBODY_SECRET = "nobody-secret-0123456789abcdef"
#: an HTML description and log line: the pages must show them as text
HOSTILE = '<img src=x id=pwn onerror="document.title=1"><b id=bold>bold</b></td><script>alert(1)</script>'


def why_no_browser() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (Debian chromium and chromium-driver; scripts/install-debian-deps)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(root: Path, port: int, *, actions: bool, users: dict[str, str] | None = None,
                 extra: str = "") -> Path:
    cred = root / "web.users"
    cred.write_text("".join(f"{u}:{s}\n" for u, s in (users or {}).items()))
    cred.chmod(0o600)
    cfg = root / "node.toml"
    lines = [f'listen = "127.0.0.1:{port}"', f"actions = {'true' if actions else 'false'}"]
    if users:
        lines.append(f'credentials = "{cred}"')
    cfg.write_text("[node]\nname = \"webnode\"\n[web]\n" + "\n".join(lines) + "\n" + textwrap.dedent(extra))
    return cfg


def http(port: int, method: str, path: str, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> tuple[int, dict[str, str], str]:
    """One raw request (no browser): status, headers (lower-case names), body text."""
    c = HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=body, headers={"Host": f"127.0.0.1:{port}", **(headers or {})})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode(errors="replace")
    finally:
        c.close()


class Browser:
    """One headless Chromium, with helpers to wait on the page and save screenshots."""

    def __init__(self) -> None:
        os.environ.setdefault("SE_OFFLINE", "true")
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="svcmgr-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--hide-scrollbars", "--window-size=1400,900", f"--user-data-dir={self.profile}"):
            opts.add_argument(a)
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.driver.set_page_load_timeout(20)

    def get(self, url: str) -> None:
        self.driver.get(url)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def css(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def texts(self, selector: str) -> list[str]:
        """The text of every element a selector finds now (read in the page: no stale references while
        the page swaps in fresh content)."""
        return self.js("return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText)", selector)

    def attrs(self, selector: str, *names: str) -> list[list[str | None]]:
        return self.js("return Array.from(document.querySelectorAll(arguments[0]), "
                       "e => arguments[1].map(n => e.getAttribute(n)))", selector, list(names))

    def click(self, selector: str, tries: int = 20) -> None:
        """Click what a selector finds, again if the page swapped it out under us."""
        from selenium.common.exceptions import StaleElementReferenceException

        for _ in range(tries):
            try:
                self.css(selector)[0].click()
                return
            except (StaleElementReferenceException, IndexError):
                time.sleep(0.1)
        raise AssertionError(f"nothing to click at {selector}")

    def wait_live(self, timeout: float = 10) -> None:
        from svctest import wait_until

        wait_until(lambda: self.js("const l = document.getElementById('live'); return l && l.textContent") == "live",
                   timeout, what=f"the page's live stream ({self.driver.current_url}: "
                                 f"{self.js('return document.body.innerText')[:300]!r})")

    def shot(self, name: str, *, full: bool = True) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        if full:
            h = self.js("return Math.max(document.body.scrollHeight, 900)")
            self.driver.set_window_size(1400, min(int(h) + 20, 3000))
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1400, 900)
        return path

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
