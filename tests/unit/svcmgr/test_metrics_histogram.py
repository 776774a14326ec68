"""``PerInstanceHistogram`` exposes the same series as prometheus_client's ``Histogram`` with an ``fmri`` label does."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics
from prometheus_client.exposition import generate_latest

from svcmgr.metrics import START_BUCKETS, PerInstanceHistogram


class _Only:
    def __init__(self, h: PerInstanceHistogram) -> None:
        self.h = h

    def collect(self):  # type: ignore[no-untyped-def]
        yield self.h.family()


def test_same_exposition_as_the_library_histogram():
    disable_created_metrics()
    rnd = random.Random(13)
    ref_reg, mine_reg = CollectorRegistry(), CollectorRegistry()
    ref = Histogram("svcmgr_x_seconds", "doc", ["fmri"], buckets=START_BUCKETS, registry=ref_reg)
    mine = PerInstanceHistogram("svcmgr_x_seconds", "doc")
    mine_reg.register(_Only(mine))
    fmris = [f"svc:/t/s{i}:default" for i in range(7)]
    values = [0.0, 0.05, 0.1, 300.0, 301.0, *START_BUCKETS] + [rnd.expovariate(0.3) for _ in range(300)]
    for v in values:
        f = rnd.choice(fmris)
        ref.labels(f).observe(v)
        mine.observe(f, v)
    ref.remove(fmris[0])
    mine.remove(fmris[0])
    # the same series with the same values; only their order within the family may differ
    mine_text, ref_text = generate_latest(mine_reg).decode(), generate_latest(ref_reg).decode()
    assert sorted(mine_text.splitlines()) == sorted(ref_text.splitlines())
    assert mine_text.splitlines()[:2] == ref_text.splitlines()[:2]
