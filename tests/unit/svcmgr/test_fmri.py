"""FMRI parsing, normal form and SMF-style abbreviations."""

import fnmatch
import time

import pytest

from svcmgr.fmri import FMRI, MAX_GLOB, FmriError, PathFMRI, match, name_test, parse, parse_any


@pytest.mark.parametrize("text", ["svc:/site/app:default", "svc://localhost/site/app:default",
                                  "/site/app:default", "site/app:default"])
def test_spellings_of_one_instance(text):
    assert parse(text) == FMRI("site/app", "default")
    assert str(parse(text)) == "svc:/site/app:default"


def test_service_without_instance():
    f = parse("svc:/network/http")
    assert f.instance is None and str(f) == "svc:/network/http"
    assert f.with_instance("apache").log_name == "network-http:apache"


@pytest.mark.parametrize("bad", ["", "svc:", "svc://otherhost/a:b", "site/app:", "site//app", "1site/app",
                                 "site/app:de fault", "site/app\n:x", "svc:site/app"])
def test_malformed_fmris_are_refused(bad):
    with pytest.raises(FmriError):
        parse(bad)


def test_instance_required():
    with pytest.raises(FmriError, match="instance is required"):
        parse("site/app", instance_required=True)


def test_path_dependencies():
    assert parse_any("file://localhost/etc/hosts") == PathFMRI("/etc/hosts")
    assert str(parse_any("file:///etc/hosts")) == "file://localhost/etc/hosts"
    with pytest.raises(FmriError):
        parse_any("file://elsewhere/etc/hosts")


CANDS = [parse(x) for x in ("svc:/network/http:apache", "svc:/network/http:nginx", "svc:/site/http:default",
                            "svc:/site/app:default", "svc:/milestone/multi-user:default")]


def test_abbreviations_match_trailing_segments():
    assert [str(m) for m in match("app", CANDS)] == ["svc:/site/app:default"]
    assert len(match("http", CANDS)) == 3  # ambiguous: the caller lists the candidates
    assert [str(m) for m in match("network/http:nginx", CANDS)] == ["svc:/network/http:nginx"]
    assert [str(m) for m in match("http:default", CANDS)] == ["svc:/site/http:default"]
    assert match("svc:/http", CANDS) == []  # a full FMRI must match exactly
    assert len(match("svc:/network/*", CANDS)) == 2
    assert match("tp", CANDS) == []  # segments, not substrings


def test_services_and_instances_match_together():
    cands = [parse("svc:/site/app"), parse("svc:/site/app:default")]
    assert [str(m) for m in match("app", cands)] == ["svc:/site/app", "svc:/site/app:default"]


def test_a_glob_longer_than_max_glob_matches_nothing_at_once():
    assert len(match("*" * (MAX_GLOB - 4) + "app*", CANDS)) == 1  # 256 characters
    t0 = time.monotonic()
    assert match("*" * (MAX_GLOB - 3) + "app*", CANDS) == [] and match("[" * 100_000, CANDS) == []
    assert time.monotonic() - t0 < 0.1  # fnmatch took minutes for the second


def test_name_test_reads_patterns_as_fnmatchcase_and_each_name_once():
    """fm.dump's class filter: the same answer as fnmatchcase for every pattern, at the cost of one lookup per
    different name (1,000 patterns over 100,000 records asked fnmatchcase 100 million times: a minute)."""
    patterns = ["ereport.svc.*", "ereport.io.disk.error", "fault.[!a]pp.?", "x*y*z", "[", "a[b"]
    names = ["ereport.svc.exit.signal", "ereport.io.disk.error", "ereport.io.disk.errors", "fault.bpp.x",
             "fault.app.x", "xAyBz", "xz", "[", "a[b", "ab", "EREPORT.SVC.X"]
    test = name_test(patterns)
    assert [test(n) for n in names] == [any(fnmatch.fnmatchcase(n, p) for p in patterns) for n in names]
    assert not name_test([])("anything")
    many = name_test([f"ereport.x{i}" for i in range(500)] + [f"e[x]{i}*" for i in range(499)] + ["ereport.t.*"])
    t = time.monotonic()
    assert all(many("ereport.t.flood") for _ in range(100_000)) and not many("ereport.u")
    assert time.monotonic() - t < 5  # a minute for fnmatchcase of each pattern
