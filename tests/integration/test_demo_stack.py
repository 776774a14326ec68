"""The demo stack of manifests/examples comes up in order, survives a kill -9 of a process, stops cleanly."""

import os
import signal
import urllib.request

import pytest

from svctest import REPO, wait_until

pytestmark = pytest.mark.xdist_group("demo-ports")  # make test runs modules in parallel: this group runs on one worker


def test_demo_stack_comes_online_in_order(daemon):
    daemon.start("--manifests", str(REPO / "manifests" / "examples"))
    for f in ("svc:/site/db:default", "svc:/site/migrate:default", "svc:/site/app:default",
              "svc:/site/web:default", "svc:/milestone/demo:default"):
        daemon.wait_state(f, "online", timeout=20)
    items = daemon.instances()
    # The app waited for both the database and the migration; the web front for the app.
    assert items["svc:/site/app:default"]["stime_epoch"] >= items["svc:/site/migrate:default"]["stime_epoch"]
    assert items["svc:/site/web:default"]["stime_epoch"] >= items["svc:/site/app:default"]["stime_epoch"]
    with urllib.request.urlopen("http://127.0.0.1:17081/", timeout=5) as r:
        assert b"schema 3" in r.read()
    out = daemon.cli("svcs", "-a", check=True).stdout.splitlines()
    assert out[0].split() == ["STATE", "STIME", "FMRI"]
    # five TOML services and the SMF XML one (notes.xml)
    assert len(out) == 7 and all(line.split()[0] == "online" for line in out[1:])


def test_kill9_of_demo_process_is_restarted_and_visible_in_svcs_p(daemon):
    daemon.start("--manifests", str(REPO / "manifests" / "examples"))
    daemon.wait_state("svc:/site/web:default", "online", timeout=20)
    (old,) = daemon.pids("svc:/site/app:default")
    os.kill(old, signal.SIGKILL)
    new = wait_until(lambda: [p for p in daemon.pids("svc:/site/app:default") if p != old], 10)
    daemon.wait_state("svc:/site/app:default", "online")
    out = daemon.cli("svcs", "-p", "app", check=True).stdout
    assert str(new[0]) in out and str(old) not in out
    assert "died on Killed (9)" in daemon.log("svc:/site/app:default")
