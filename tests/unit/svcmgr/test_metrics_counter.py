"""``PerLabelCounter`` exposes the same series as prometheus_client's ``Counter`` with labels does."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from svcmgr.metrics import PerLabelCounter


def test_same_exposition_as_the_library_counter():
    disable_created_metrics()
    ref_reg, mine_reg = CollectorRegistry(auto_describe=True), CollectorRegistry(auto_describe=True)
    cases = [
        ("svcmgr_x", "by class", ("class",), [], [("a.b",), ("c",), ("a.b",), ("a.b",)]),
        ("svcmgr_y", "by result", ("result",), [("accepted",), ("rejected",)], [("rejected",)]),
        ("svcmgr_z", "never counted", ("frontend", "server", "result"), [], []),
        ("svcmgr_w", "three labels", ("frontend", "server", "result"), [],
         [("web", "b", "drained"), ("web", "a", "timeout"), ("web", "b", "drained")]),
    ]
    for name, doc, labels, touched, counted in cases:
        ref = Counter(name, doc, list(labels), registry=ref_reg)
        mine = PerLabelCounter(name, doc, labels)
        mine_reg.register(mine)
        for values in touched:
            ref.labels(*values)
            mine.touch(*values)
        for values in counted:
            ref.labels(*values).inc()
            mine.inc(*values)
    assert generate_latest(mine_reg) == generate_latest(ref_reg)
    assert generate_openmetrics(mine_reg) == generate_openmetrics(ref_reg)
