"""While the bus keeps, a late subscription or listener is first given what was published, in order, bounded."""

from __future__ import annotations

from svcmgr.bus import Bus


def _drain(sub) -> list[str]:
    return [ev.resource for ev in iter(sub.get_nowait, None)]


def test_late_joiners_get_what_was_kept_then_what_follows():
    bus = Bus("n")
    bus.emit("svc.state.online", "before-keeping")
    bus.keep(100)
    for r in ("a", "b"):
        bus.emit("svc.state.online", r)
    bus.emit("ereport.svc.exit.signal", "c")
    heard: list[str] = []
    bus.listen(lambda ev: heard.append(ev.resource))
    sub = bus.subscribe("svc.state")
    assert heard == ["a", "b", "c"]
    assert _drain(sub) == ["a", "b"]
    bus.stop_keeping()
    bus.emit("svc.state.online", "d")
    assert heard == ["a", "b", "c", "d"]
    assert _drain(sub) == ["d"]
    assert _drain(bus.subscribe()) == []  # nothing kept any more
    assert bus.missed == 0


def test_the_record_is_bounded_and_its_loss_counted():
    bus = Bus("n")
    bus.keep(3)
    for i in range(5):
        bus.emit("svc.state.online", str(i))
    assert bus.missed == 2
    assert _drain(bus.subscribe()) == ["2", "3", "4"]


def test_a_late_subscription_keeps_its_own_bound():
    bus = Bus("n")
    bus.keep(100)
    for i in range(5):
        bus.emit("svc.state.online", str(i))
    sub = bus.subscribe("svc", maxlen=2)
    assert _drain(sub) == ["3", "4"]
    assert sub.statistics().dropped == 3


def test_what_a_late_listener_publishes_reaches_it_once():
    bus = Bus("n")
    bus.keep(100)
    bus.emit("ereport.svc.exit.signal", "x")
    heard: list[str] = []

    def listener(ev) -> None:
        heard.append(ev.cls)
        if ev.cls.startswith("ereport."):
            bus.emit("list.suspect", ev.resource)

    bus.listen(listener)
    assert heard == ["ereport.svc.exit.signal", "list.suspect"]
    assert [ev.cls for ev in iter(bus.subscribe().get_nowait, None)] == ["ereport.svc.exit.signal", "list.suspect"]
