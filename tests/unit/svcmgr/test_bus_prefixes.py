"""A subscription takes the events whose class is one of its prefixes or lies under one (a dot after it)."""

from __future__ import annotations

from svcmgr.bus import Bus


def test_prefixes_match_whole_words_only():
    bus = Bus("n")
    sub = bus.subscribe("svc.state", "ereport.svc.exit")
    everything = bus.subscribe()
    for cls in ("svc.state", "svc.state.online", "svc.stateful", "svc", "ereport.svc.exit.signal",
                "ereport.svc.exits", "ereport.svc", "list.suspect"):
        bus.emit(cls, "r")
    got = []
    while (ev := sub.get_nowait()) is not None:
        got.append(ev.cls)
    assert got == ["svc.state", "svc.state.online", "ereport.svc.exit.signal"]
    assert sum(1 for _ in iter(everything.get_nowait, None)) == 8
