"""Prometheus metrics: every series the daemon exposes, declared in this one module.

Instance facts (state, restarts, starts, time in state, last start time) are read
from the engine at scrape time; counters (ereports, fault cases, MQTT link, VRRP
state) are kept from bus events by a synchronous listener, and start durations
from the engine's start timings (``svcmgr.timings``) as each start comes online. One prefix
(``svcmgr_``), base units, ``_total`` on counters, and labels drawn only from
bounded sets: FMRIs, states, event classes (capped), case classes and
severities, VRRP instance names. Never pids, UUIDs or error text.

``/metrics`` is served by ``svcmgr.metrics_http`` on the event loop at
``[metrics] listen`` (default 127.0.0.1:9464; ``""`` turns it off). What the bus
feeds is kept in plain counts, and prometheus-client (its registry, the
exposition and the process collector) is loaded at the first scrape: the
component is built during the boot, between its bursts of starts, and the
library's import (20-35 ms) would hold back the next burst.

    svcmgr_build_info{version,python,node}                 1
    svcmgr_instance_state{fmri,state}                      1 for the current state, 0 for the others
    svcmgr_instance_state_seconds{fmri}                    seconds in the current state
    svcmgr_instance_restarts_total{fmri}                   automatic restarts (since the daemon started)
    svcmgr_instance_starts_total{fmri}                     successful starts (since the daemon started)
    svcmgr_instance_start_time_seconds{fmri}               when the instance last came online (Unix time)
    svcmgr_instance_start_duration_seconds{fmri}           histogram: start method spawned to ready
    svcmgr_instance_dependency_wait_seconds{fmri}          histogram: queued to dependencies met
    svcmgr_bus_events_total                                events published on the bus
    svcmgr_ereports_total{class}                           ereports by class
    svcmgr_fault_cases_open{class,severity}                open fault cases
    svcmgr_mqtt_connected                                  1 while the bridge holds a broker connection
    svcmgr_mqtt_outbox_messages                            messages waiting for the broker
    svcmgr_mqtt_outbox_dropped_messages_total              messages dropped past the outbox bound
    svcmgr_mqtt_sent_messages_total                        messages the broker acknowledged
    svcmgr_mqtt_telemetry_messages_total{result}           telemetry accepted / rejected
    svcmgr_vrrp_state{instance,state}                      1 for the current VRRP state, 0 for the others
    svcmgr_vrrp_priority{instance}                         advertised priority
    svcmgr_lb_server_state{frontend,server,state}          1 for the admin state HAProxy was told (ready, drain, maint)
    svcmgr_lb_drains_total{frontend,server,result}         planned stops drained ("drained"; "timeout": some left)
    svcmgr_process_*                                       the daemon's CPU, memory, file descriptors
"""

from __future__ import annotations

import bisect
import itertools
import logging
import platform
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from svcmgr import __version__
from svcmgr.eventclasses import (
    CASE_CLOSED,
    CASE_CLOSED_STATES,
    CASE_OPEN,
    EREPORT,
    LB_SERVER,
    LB_SERVER_DRAINED,
    LIST,
    MQTT_DOWN,
    MQTT_REJECTED,
    MQTT_UP,
    SVC_STATE,
    VRRP_STATE,
    state_class,
)
from svcmgr.events import Event
from svcmgr.metrics_config import DEFAULT_LISTEN, MetricsConfig, read_config, section
from svcmgr.mqtt_config import section as mqtt_section
from svcmgr.outbox import statistics
from svcmgr.states import State

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import HistogramMetricFamily, Metric

    from svcmgr.component import Context

__all__ = ["DEFAULT_LISTEN", "Metrics", "MetricsConfig", "create", "read_config"]

log = logging.getLogger("svcmgr.metrics")

STATES = tuple(s.value for s in State)
VRRP_STATES = ("init", "backup", "master", "fault", "stop")
LB_STATES = ("ready", "drain", "maint")
#: At most this many load-balanced servers get series (each frontend's backends).
MAX_LB_SERVERS = 512
START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
#: At most this many distinct ereport classes get their own series; the rest count as "other".
MAX_CLASSES = 200
MAX_VRRP_INSTANCES = 64
_VRRP_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_LABEL_RE = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}\Z")


def create(ctx: Context) -> Any:
    """The metrics component, or None when ``listen`` is empty."""
    cfg = section(ctx.config)
    if not cfg.listen:
        return None
    from svcmgr.metrics_http import MetricsServer  # the HTTP side only where an endpoint is configured

    return MetricsServer(ctx, cfg, Metrics(ctx), section)


class PerInstanceHistogram:
    """A histogram with an ``fmri`` label, kept as plain counts and exposed at scrape time.

    prometheus_client's ``Histogram`` makes, for each new label value, a child with a locked
    value per bucket: about 0.25 ms at an instance's first start and several KiB per
    instance, for series that only this loop writes. The exposition is the same."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...] = START_BUCKETS) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = buckets
        #: fmri -> [count in each bucket (not cumulative) ..., count above the last, sum]
        self.rows: dict[str, list[float]] = {}

    def observe(self, fmri: str, value: float) -> None:
        row = self.rows.get(fmri)
        if row is None:
            row = self.rows[fmri] = [0] * (len(self.bounds) + 1) + [0.0]
        row[bisect.bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def remove(self, fmri: str) -> None:
        self.rows.pop(fmri, None)

    def family(self) -> HistogramMetricFamily:
        # imported here, at a scrape: prometheus-client is loaded at the first (see the module's docstring)
        from prometheus_client.core import HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        le = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        fam = HistogramMetricFamily(self.name, self.documentation, labels=["fmri"])
        for fmri in sorted(self.rows):
            row = self.rows[fmri]
            cumulative = list(itertools.accumulate(row[:-1]))
            fam.add_metric([fmri], list(zip(le, cumulative, strict=True)), row[-1])
        return fam


class PerLabelCounter:
    """A counter with labels, kept as plain counts and exposed at scrape time: what prometheus_client's
    ``Counter`` with labels exposes (created series off), without loading the library to count."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        #: label values -> count, in the order first counted (as the library's children are)
        self.rows: dict[tuple[str, ...], float] = {}

    def touch(self, *values: str) -> None:
        """Expose this series at 0 before its first count."""
        self.rows.setdefault(values, 0.0)

    def inc(self, *values: str) -> None:
        self.rows[values] = self.rows.get(values, 0.0) + 1.0

    def collect(self) -> Iterator[Metric]:
        # imported here, at a scrape: prometheus-client is loaded at the first (see the module's docstring)
        from prometheus_client.core import CounterMetricFamily

        fam = CounterMetricFamily(self.name, self.documentation, labels=list(self.labels))
        for values, n in self.rows.items():
            fam.add_metric(list(values), n)
        yield fam


class Metrics:
    """The registry: counters fed by bus events, and a collector reading the engine at scrape time."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._registry: CollectorRegistry | None = None
        self.ereports = PerLabelCounter("svcmgr_ereports", "Ereports seen on the bus, by class.", ("class",))
        self.start_duration = PerInstanceHistogram(
            "svcmgr_instance_start_duration_seconds", "Time from the start method to readiness, per instance.")
        self.dependency_wait = PerInstanceHistogram(
            "svcmgr_instance_dependency_wait_seconds",
            "Time an instance waited for its dependencies before its start began, per instance.")
        self.telemetry = PerLabelCounter("svcmgr_mqtt_telemetry_messages", "MQTT telemetry messages, by result.",
                                         ("result",))
        self.classes: set[str] = set()
        self.seen_online: dict[str, int | None] = {}
        self.cases: dict[str, tuple[str, str]] = {}
        self.vrrp: dict[str, tuple[str, float | None]] = {}
        self.mqtt_connected = False
        self.vrrp_ignored = 0
        self.lb: dict[tuple[str, str], str] = {}
        self.lb_drains = PerLabelCounter("svcmgr_lb_drains", "Planned stops drained before their stop method, by "
                                         "result.", ("frontend", "server", "result"))
        # The last start an earlier daemon saw come online is not observed again; this daemon's own starts
        # are (the component is built once the first services are started: the bus gives it their events).
        this_boot = ctx.timings.boot.id
        for inst in ctx.services.instances():
            seen = [r.online for r in ctx.timings.records([inst.fmri]) if r.online is not None and r.boot != this_boot]
            self.seen_online[inst.fmri] = seen[-1] if seen else None
        if mqtt_section(ctx.config) is not None:
            for result in ("accepted", "rejected"):
                self.telemetry.touch(result)

    @property
    def registry(self) -> CollectorRegistry:
        """The registry the endpoint exposes, made at the first scrape: the counters, the daemon's process
        (``svcmgr_process_*``) and what this collector reads at scrape time, in that order."""
        if self._registry is None:
            # imported here, at the first scrape: the library is not needed to count (see the module's docstring)
            from prometheus_client import CollectorRegistry, ProcessCollector, disable_created_metrics

            disable_created_metrics()  # no *_created series: they double the exposition and nobody alerts on them
            r = CollectorRegistry(auto_describe=True)
            r.register(self.ereports)
            r.register(self.telemetry)
            ProcessCollector(namespace="svcmgr", registry=r)
            r.register(self)
            r.register(self.lb_drains)
            self._registry = r
        return self._registry

    def setup(self) -> None:
        self.ctx.bus.listen(self.on_event)

    # ------------------------------------------------------------ from the bus (synchronous, cheap)
    def on_event(self, ev: Event) -> None:
        cls = ev.cls
        try:
            if cls.startswith(SVC_STATE + "."):
                self._on_state(ev)
            elif cls.startswith(EREPORT + "."):
                self._count_ereport(cls)
                if ev.data.get("source") == "mqtt":
                    self.telemetry.inc("accepted")
            elif cls.startswith(LIST + "."):
                self._on_case(ev)
            elif cls.startswith(VRRP_STATE + "."):
                self._on_vrrp(ev)
            elif cls.startswith(LB_SERVER + "."):
                self._on_lb(ev)
            elif cls == MQTT_UP:
                self.mqtt_connected = True
            elif cls == MQTT_DOWN:
                self.mqtt_connected = False
            elif cls == MQTT_REJECTED:
                self.telemetry.inc("rejected")
        except Exception:
            log.exception("metrics: cannot account for event %s", cls)

    def _count_ereport(self, cls: str) -> None:
        if cls not in self.classes:
            if len(self.classes) >= MAX_CLASSES:
                cls = "other"
            else:
                self.classes.add(cls)
        self.ereports.inc(cls)

    def _on_state(self, ev: Event) -> None:
        f = ev.resource
        if ev.cls == state_class("deleted"):
            self.seen_online.pop(f, None)
            for h in (self.start_duration, self.dependency_wait):
                h.remove(f)
            return
        last = self.ctx.timings.last(f, online=True)
        if last is None or last.online is None or last.online == self.seen_online.get(f):
            return
        self.seen_online[f] = last.online
        took = last.durations(last.online)
        if took["method"] is not None:
            self.start_duration.observe(f, took["method"])
        if took["wait"] is not None:
            self.dependency_wait.observe(f, took["wait"])

    def _on_case(self, ev: Event) -> None:
        d = ev.data
        uuid = d.get("uuid")
        if not isinstance(uuid, str) or not uuid:
            return
        closed = ev.cls in CASE_CLOSED or d.get("state") in CASE_CLOSED_STATES
        if closed:
            self.cases.pop(uuid, None)
            return
        if ev.cls not in CASE_OPEN:
            return
        self.cases[uuid] = (_label(d.get("class"), "unknown"), _label(d.get("severity"), "unknown").lower())

    def _on_vrrp(self, ev: Event) -> None:
        d = ev.data
        name = d.get("instance")
        state = str(d.get("state") or ev.cls.rsplit(".", 1)[-1]).lower()
        if not isinstance(name, str) or not _VRRP_NAME_RE.match(name) or state not in VRRP_STATES:
            self.vrrp_ignored += 1
            return
        if name not in self.vrrp and len(self.vrrp) >= MAX_VRRP_INSTANCES:
            self.vrrp_ignored += 1
            return
        prio = d.get("priority")
        ok = isinstance(prio, int | float) and not isinstance(prio, bool)
        self.vrrp[name] = (state, float(prio) if ok else None)

    def _on_lb(self, ev: Event) -> None:
        d = ev.data
        fe, srv = d.get("frontend"), d.get("server")
        if not isinstance(fe, str) or not isinstance(srv, str) or not _LABEL_RE.match(fe) or not _LABEL_RE.match(srv):
            return
        if (fe, srv) not in self.lb and len(self.lb) >= MAX_LB_SERVERS:
            return
        if ev.cls == LB_SERVER_DRAINED:
            self.lb_drains.inc(fe, srv, "timeout" if d.get("connections_left") else "drained")
        elif d.get("state") in LB_STATES:
            self.lb[(fe, srv)] = d["state"]

    # ------------------------------------------------------------ at scrape time
    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        # imported here, at a scrape: prometheus-client is loaded at the first (see the module's docstring)
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        ctx = self.ctx
        info = GaugeMetricFamily("svcmgr_build_info", "Build and node of this daemon (always 1).",
                                 labels=["version", "python", "node"])
        info.add_metric([__version__, platform.python_version(), ctx.node], 1)
        yield info
        now = time.time()
        state = GaugeMetricFamily("svcmgr_instance_state", "1 for the state the instance is in, 0 for the others.",
                                  labels=["fmri", "state"])
        since = GaugeMetricFamily("svcmgr_instance_state_seconds", "Seconds the instance has been in its state.",
                                  labels=["fmri"])
        restarts = CounterMetricFamily("svcmgr_instance_restarts", "Automatic restarts since the daemon started.",
                                       labels=["fmri"])
        starts = CounterMetricFamily("svcmgr_instance_starts", "Successful starts since the daemon started.",
                                     labels=["fmri"])
        started = GaugeMetricFamily("svcmgr_instance_start_time_seconds",
                                    "When the instance last came online, in seconds since the epoch.",
                                    labels=["fmri"])
        timings = ctx.timings
        for inst in sorted(ctx.services.instances(), key=lambda i: i.fmri):
            f = inst.fmri
            cur = inst.state.value
            for s in STATES:
                state.add_metric([f, s], 1.0 if s == cur else 0.0)
            since.add_metric([f], max(0.0, now - inst.stime))
            restarts.add_metric([f], inst.restarts)
            starts.add_metric([f], inst.starts)
            last = timings.last(f, online=True)
            at = timings.wall(last, "online") if last is not None else None
            if at is not None:
                started.add_metric([f], at)
        yield state
        yield self.start_duration.family()
        yield self.dependency_wait.family()
        yield since
        yield restarts
        yield starts
        yield started
        yield CounterMetricFamily("svcmgr_bus_events", "Events published on the bus.", value=ctx.bus.published)
        cases = GaugeMetricFamily("svcmgr_fault_cases_open", "Open fault cases, by fault class and severity.",
                                  labels=["class", "severity"])
        counts: dict[tuple[str, str], int] = {}
        for key in self.cases.values():
            counts[key] = counts.get(key, 0) + 1
        for (cls, sev), n in sorted(counts.items()):
            cases.add_metric([cls, sev], n)
        yield cases
        yield from self._collect_mqtt()
        if self.vrrp:
            vs = GaugeMetricFamily("svcmgr_vrrp_state", "1 for the VRRP state of the instance, 0 for the others.",
                                   labels=["instance", "state"])
            vp = GaugeMetricFamily("svcmgr_vrrp_priority", "Advertised VRRP priority.", labels=["instance"])
            for name, (cur, prio) in sorted(self.vrrp.items()):
                for s in VRRP_STATES:
                    vs.add_metric([name, s], 1.0 if s == cur else 0.0)
                if prio is not None:
                    vp.add_metric([name], prio)
            yield vs
            yield vp
        if self.lb:
            ls = GaugeMetricFamily("svcmgr_lb_server_state", "1 for the admin state HAProxy was told for the server "
                                   "(its svcmgr instance's state), 0 for the others.",
                                   labels=["frontend", "server", "state"])
            for (fe, srv), cur in sorted(self.lb.items()):
                for s in LB_STATES:
                    ls.add_metric([fe, srv, s], 1.0 if s == cur else 0.0)
            yield ls

    def _collect_mqtt(self) -> Iterator[Metric]:
        if mqtt_section(self.ctx.config) is None:
            return
        # imported here, at a scrape: prometheus-client is loaded at the first (see the module's docstring)
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = statistics(self.ctx.db)
        yield GaugeMetricFamily("svcmgr_mqtt_connected", "1 while the MQTT bridge holds a broker connection.",
                                value=1.0 if self.mqtt_connected else 0.0)
        yield GaugeMetricFamily("svcmgr_mqtt_outbox_messages", "Messages waiting in the outbox for the broker.",
                                value=stats.depth)
        yield CounterMetricFamily("svcmgr_mqtt_outbox_dropped_messages",
                                  "Messages dropped because the outbox was full.", value=stats.dropped)
        yield CounterMetricFamily("svcmgr_mqtt_sent_messages", "Messages the broker acknowledged.",
                                  value=stats.sent)


def _label(v: object, default: str) -> str:
    return v if isinstance(v, str) and _LABEL_RE.match(v) else default
