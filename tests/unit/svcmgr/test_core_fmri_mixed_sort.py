"""Regression: matching a pattern against services and instances together sorted None against str,
so ``svccfg delete site/b`` failed with an internal error."""

from __future__ import annotations

from svcmgr import fmri


def test_match_sorts_services_and_instances_together():
    cands = [fmri.parse("svc:/site/b:default"), fmri.parse("svc:/site/b"), fmri.parse("svc:/site/a:default")]
    assert [str(f) for f in fmri.match("site/b", cands)] == ["svc:/site/b", "svc:/site/b:default"]
    assert [str(f) for f in fmri.match("site/*", cands)] == ["svc:/site/a:default", "svc:/site/b",
                                                             "svc:/site/b:default"]
