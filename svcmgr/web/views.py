"""What each dashboard page shows, read through the control socket's operations as the viewer.

Every read goes through ``Api.call`` with the viewer's caller, so a page shows exactly what
``svcs``, ``fmadm`` or ``vrrpadm`` run by that user would: log tails only to those allowed
to read them, protected values hidden. Nothing here touches the engine. Operations of a
component that is not running (no fault manager, no keepalived) give an empty section with
the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiomqtt

from svcmgr import fmri as fmri_mod
from svcmgr import mqtt_topics as wire
from svcmgr.api import Api, ApiError, Caller
from svcmgr.draw.layout import graph_svg
from svcmgr.retained import read_retained
from svcmgr.web.svgcheck import SvgRefused, check_svg

__all__ = ["Views"]

log = logging.getLogger("svcmgr.web")

LOG_LINES = 40
FLEET_TTL = 2.0
FLEET_TIMEOUT = 3.0


def hhmmss(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


class Views:
    """The data of each page, for one caller at a time."""

    def __init__(self, api: Api, mqtt: Any = None) -> None:
        self.api = api
        self.mqtt = mqtt
        self._svg: tuple[str, str] = ("", "")
        self._svg_lock = asyncio.Lock()
        self._fleet: tuple[float, dict[str, bytes], bool] | None = None
        self._fleet_lock = asyncio.Lock()

    async def _try(self, caller: Caller, op: str, **args: Any) -> tuple[Any, str | None]:
        """(result, None), or (None, why) when the operation is refused or its component is absent."""
        try:
            return await self.api.call(caller, op, **args), None
        except ApiError as e:
            if e.code == 2 and "unknown operation" in str(e):
                return None, f"{op.split('.')[0]} is not running in this daemon"
            return None, str(e)

    # ------------------------------------------------------------ instances
    async def overview(self, caller: Caller) -> dict[str, Any]:
        items = await self.api.call(caller, "list")
        troubled = {x["fmri"]: x for x in await self.api.call(caller, "explain")}
        rows = []
        for it in sorted(items, key=lambda x: x["fmri"]):
            x = troubled.get(it["fmri"])
            rows.append({**it, "since": hhmmss(it.get("stime_epoch")), "why": x["reason"] if x else "",
                         "impact": x["impact"] if x else []})
        counts: dict[str, int] = {}
        for it in items:
            counts[it["state"]] = counts.get(it["state"], 0) + 1
        trouble = [r for r in rows if r["why"]]
        return {"rows": rows, "counts": sorted(counts.items()), "trouble": trouble}

    async def instance(self, caller: Caller, fmri: str) -> dict[str, Any]:
        show = await self.api.call(caller, "show", fmri=fmri)
        f = show["fmri"]
        (why,) = await self.api.call(caller, "explain", fmris=[f])
        timings, _ = await self._try(caller, "timings", fmris=[f], last=True)
        logv = await self.api.call(caller, "log", fmri=f, lines=LOG_LINES)
        starts = (timings or {}).get("starts", [])
        return {"show": show, "since": hhmmss(show.get("stime_epoch")), "why": why, "log": logv,
                "timing": starts[-1] if starts else None}

    # ------------------------------------------------------------ graph
    async def graph(self, caller: Caller, *, graphviz: bool = True) -> dict[str, Any]:
        model = await self.api.call(caller, "graph")
        key = repr((graphviz, model))
        async with self._svg_lock:
            if self._svg[0] != key:
                states = {str(n["fmri"]): str(n.get("state") or "") for n in model["nodes"]}
                svg = await asyncio.to_thread(graph_svg, model, graphviz=graphviz)
                try:
                    svg = check_svg(svg, states)
                except SvgRefused as e:
                    log.warning("web: the graph drawing was refused (%s); using the built-in layout", e)
                    svg = check_svg(graph_svg(model, graphviz=False), states)
                self._svg = (key, svg)
            svg = self._svg[1]
        return {"svg": svg, "nodes": len(model["nodes"]), "edges": len(model["edges"]),
                "cycles": model.get("cycles", [])}

    # ------------------------------------------------------------ faults, VIPs, balancers
    async def cases(self, caller: Caller) -> dict[str, Any]:
        cases, why = await self._try(caller, "fm.faulty")
        return {"cases": cases or [], "unavailable": why}

    async def vrrp(self, caller: Caller) -> dict[str, Any]:
        v, why = await self._try(caller, "vrrp.show")
        lb, lb_why = await self._try(caller, "lb.show")
        if v is not None and not v.get("available"):
            why = v.get("reason") or "VRRP is not available"
        if lb is not None and not lb.get("available"):
            lb_why = lb.get("reason") or "load balancing is not available"
        return {"vrrp": v or {}, "unavailable": why, "lb": lb or {}, "lb_unavailable": lb_why}

    # ------------------------------------------------------------ fleet
    async def _retained(self) -> tuple[dict[str, bytes], bool]:
        async with self._fleet_lock:
            now = time.monotonic()
            if self._fleet is None or now - self._fleet[0] > FLEET_TTL:
                got, complete = await read_retained(self.mqtt, [f"{wire.PREFIX}/+/state/#",
                                                                f"{wire.PREFIX}/+/cases/+",
                                                                f"{wire.PREFIX}/+/status"],
                                                    timeout=FLEET_TIMEOUT)
                self._fleet = (now, got, complete)
            return self._fleet[1], self._fleet[2]

    async def fleet(self, node: str | None = None) -> dict[str, Any]:
        if self.mqtt is None or not getattr(self.mqtt, "url", ""):
            return {"unavailable": "no MQTT broker is configured ([mqtt] url): the fleet is what the "
                                   "nodes retain on the broker", "nodes": []}
        try:
            retained, complete = await self._retained()
        except (aiomqtt.MqttError, OSError, TimeoutError) as e:
            return {"unavailable": f"cannot read the broker {self.mqtt.broker}: {e}", "nodes": []}
        nodes: dict[str, dict[str, Any]] = {}

        def entry(n: str) -> dict[str, Any]:
            return nodes.setdefault(n, {"name": n, "status": "unknown", "since": "-", "instances": [], "cases": [],
                                        "counts": {}})

        for topic, payload in retained.items():
            parsed = wire.parse_retained_topic(topic)
            d = wire.decode_state(payload) if parsed else None
            if not parsed or d is None:
                continue
            n, kind = parsed[0], parsed[1]
            if node is not None and n != node:
                continue
            e = entry(n)
            if kind == "status":
                e["status"] = str(d.get("status") or "unknown")
                e["since"] = hhmmss(d.get("time") if isinstance(d.get("time"), int | float) else None)
            elif kind == "state" and isinstance(d.get("fmri"), str) and isinstance(d.get("state"), str):
                try:
                    f = str(fmri_mod.parse(d["fmri"], instance_required=True))
                except fmri_mod.FmriError:
                    continue
                st = d.get("stime")
                e["instances"].append({"fmri": f, "state": d["state"],
                                       "nstate": d.get("next_state") if isinstance(d.get("next_state"), str)
                                       else None,
                                       "since": hhmmss(st if isinstance(st, int | float) else None),
                                       "reason": str(d.get("reason") or "")[:300]})
                e["counts"][d["state"]] = e["counts"].get(d["state"], 0) + 1
            elif kind == "cases" and isinstance(d.get("uuid"), str):
                e["cases"].append({"uuid": d["uuid"], "msgid": str(d.get("msgid") or "-"),
                                   "class": str(d.get("class") or "-"), "severity": str(d.get("severity") or "-"),
                                   "state": str(d.get("state") or "-")})
        for e in nodes.values():
            e["instances"].sort(key=lambda x: x["fmri"])
            e["counts"] = sorted(e["counts"].items())
        return {"unavailable": None, "complete": complete, "broker": self.mqtt.broker,
                "nodes": [nodes[n] for n in sorted(nodes)]}
