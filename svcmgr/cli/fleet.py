"""The fleet view: every node's instances (``svcs --fleet``) and open cases (``fmadm faulty --fleet``).

Both read the retained messages the MQTT bridges keep on the broker
(``svcmgr/<node>/state/...``, ``svcmgr/<node>/cases/<uuid>``,
``svcmgr/<node>/status``) and print one table, node column first. To know when
the broker has sent every retained message, the command subscribes, then
publishes a probe on a private topic it also subscribed to: the broker queues
the probe behind the retained messages, so its return marks the end.

The broker is the one named by ``--mqtt URL``, else the ``[mqtt]`` section of
``--config FILE``, else the one the local daemon uses (its ``mqtt`` socket
operation, and its configuration file for credentials when readable).
``svcs`` and ``fmadm`` import this module only for ``--fleet``, so they start fast
(asyncio and aiomqtt come with it). Reading the broker is ``svcmgr.retained``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import os
import sys
import time
import tomllib
from typing import Any

import aiomqtt

from svcmgr import fmri as fmri_mod
from svcmgr import mqtt_topics as wire
from svcmgr.cli.common import print_json, stime, table
from svcmgr.client import Client, ClientError
from svcmgr.mqtt_config import MqttConfig, parse_url, read_config
from svcmgr.retained import TIMEOUT, read_retained
from svcmgr.schema import FieldError, FieldErrors, Reader
from svcmgr.states import ORDER, STA
from svcmgr.terminal import visible

__all__ = ["FleetError", "broker_config", "fmadm_fleet", "svcs_fleet"]


class FleetError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _read_mqtt_section(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise FleetError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise FleetError(f"{path}: TOML syntax error: {e}") from None
    errors: list[FieldError] = []
    if "mqtt" not in data:
        return MqttConfig()
    r = Reader(path, errors, data["mqtt"], "mqtt")
    cfg = read_config(r)
    r.done()
    if errors:
        raise FleetError(str(FieldErrors(errors)), 2)
    return cfg


def broker_config(args: argparse.Namespace) -> Any:
    """The MqttConfig of the broker to read, from ``--mqtt``, ``--config`` or the local daemon."""
    url = getattr(args, "mqtt", None)
    path = getattr(args, "config", None)
    cfg = MqttConfig()
    if path:
        cfg = _read_mqtt_section(path)
    elif not url:
        status = _daemon_status(getattr(args, "root", None))
        if status is not None:
            src = status.get("config") or ""
            if src and os.path.isfile(src) and os.access(src, os.R_OK):
                cfg = _read_mqtt_section(src)
            if not cfg.url:
                url = status.get("url")
    if url:
        try:
            tls, host, port = parse_url(url)
        except ValueError as e:
            raise FleetError(f"--mqtt: {e}", 2) from None
        cfg = dataclasses.replace(cfg, url=url, tls=tls, host=host, port=port)
    if not cfg.url:
        raise FleetError("no MQTT broker: give --mqtt URL or --config FILE (or run where a daemon "
                         "with a broker runs)", 2)
    return cfg


def _daemon_status(root: str | None) -> dict[str, Any] | None:
    try:
        st = Client(root, timeout=5).call("mqtt")
    except ClientError:
        return None
    return st if isinstance(st, dict) else None


def _fetch(args: argparse.Namespace, prog: str, filters: list[str]) -> tuple[dict[str, bytes], dict[str, dict]]:
    cfg = broker_config(args)
    try:
        retained, complete = asyncio.run(read_retained(cfg, filters))
    except aiomqtt.MqttError as e:
        raise FleetError(f"cannot read from the broker {cfg.broker}: {e}") from None
    if not complete:
        print(f"{prog}: the broker {cfg.broker} did not return our probe within {TIMEOUT:g}s; "
              "the listing may be incomplete", file=sys.stderr)
    status: dict[str, dict] = {}
    for topic, payload in retained.items():
        parsed = wire.parse_retained_topic(topic)
        if parsed and parsed[1] == "status":
            d = wire.decode_state(payload)
            if d is not None:
                status[parsed[0]] = d
    return retained, status


def _note_offline(prog: str, nodes: set[str], status: dict[str, dict]) -> None:
    for n in sorted(nodes):
        st = status.get(n)
        if st is not None and st.get("status") == "offline":
            when = _stime(st.get("time"))
            print(f"{prog}: node {n} is offline (since {when}); its rows are the last it reported",
                  file=sys.stderr)


def _stime(epoch: Any) -> str:
    return stime(epoch if isinstance(epoch, int | float) else None)


def _iso(epoch: Any) -> str | None:
    if not isinstance(epoch, int | float):
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).astimezone().isoformat(timespec="seconds")


# ---------------------------------------------------------------- svcs --fleet
COLUMNS = {"node": "NODE", "state": "STATE", "sta": "STA", "nstate": "NSTATE", "stime": "STIME", "fmri": "FMRI",
           "svc": "SVC", "inst": "INST"}


def _instances(retained: dict[str, bytes]) -> list[dict[str, Any]]:
    rows = []
    for topic, payload in retained.items():
        parsed = wire.parse_retained_topic(topic)
        if not parsed or parsed[1] != "state":
            continue
        d = wire.decode_state(payload)
        if d is None or not isinstance(d.get("fmri"), str) or not isinstance(d.get("state"), str):
            continue
        try:
            f = fmri_mod.parse(d["fmri"], instance_required=True)
        except fmri_mod.FmriError:
            continue
        rows.append({"node": parsed[0], "fmri": str(f), "state": d["state"], "nstate": d.get("next_state"),
                     "stime_epoch": d.get("stime") if isinstance(d.get("stime"), int | float) else None,
                     "svc": f.service, "inst": f.instance, "enabled": d.get("enabled"),
                     "reason": d.get("reason") or "", "_fmri": f})
    return rows


def svcs_fleet(args: argparse.Namespace) -> int:
    """``svcs --fleet [-aH] [-o COLS] [-s COL] [-S COL] [--json] [--mqtt URL] [--config FILE] [FMRI ...]``."""

    if getattr(args, "p", False):
        print("svcs: -p cannot be used with --fleet (processes are local to each node)", file=sys.stderr)
        return 2
    cols = _columns(getattr(args, "o", None))
    keys = [(k.lower(), descending) for k, descending in getattr(args, "sort", None) or []]
    for k, _ in keys:
        if k not in COLUMNS:
            print(f"svcs: unknown column {k!r} (known with --fleet: {', '.join(COLUMNS)})", file=sys.stderr)
            return 2
    try:
        retained, status = _fetch(args, "svcs", [f"{wire.PREFIX}/+/state/#", f"{wire.PREFIX}/+/status"])
    except FleetError as e:
        print(f"svcs: {e}", file=sys.stderr)
        return e.code
    rows = _instances(retained)
    pats = list(getattr(args, "fmris", []) or [])
    if pats:
        every = {r["_fmri"] for r in rows}
        chosen: set[Any] = set()
        for p in pats:
            got = fmri_mod.match(p, every)
            if not got:
                print(f"svcs: {p}: no instance on any node matches", file=sys.stderr)
            chosen.update(got)
        rows = [r for r in rows if r["_fmri"] in chosen]
    elif not getattr(args, "a", False):
        rows = [r for r in rows if r["state"] != "disabled" or r.get("enabled")]

    def key(col: str) -> Any:
        if col == "state":
            return lambda r: (ORDER.get(r["state"], 9), r["stime_epoch"] or 0)
        if col == "stime":
            return lambda r: r["stime_epoch"] or 0
        return lambda r: str(r.get(col) or "")

    rows.sort(key=lambda r: (r["node"], ORDER.get(r["state"], 9), r["stime_epoch"] or 0, r["fmri"]))
    for k, rev in reversed(keys):
        rows.sort(key=key(k), reverse=rev)
    _note_offline("svcs", {r["node"] for r in rows}, status)
    if getattr(args, "json", False):
        out = []
        for r in rows:
            item: dict[str, Any] = {}
            for c in cols:
                if c == "stime":
                    item["stime"] = _iso(r["stime_epoch"])
                elif c == "sta":
                    item["sta"] = STA.get(r["state"], "?") + ("*" if r["nstate"] else "")
                else:
                    item[c] = r.get(c)
            item["node_status"] = (status.get(r["node"]) or {}).get("status", "unknown")
            out.append(item)
        print_json(out)
        return 0
    now = time.time()

    def cell(r: dict[str, Any], c: str) -> str:
        if c == "state":
            return r["state"] + ("*" if r["nstate"] else "")
        if c == "sta":
            return STA.get(r["state"], "?") + ("*" if r["nstate"] else "")
        if c == "nstate":
            return r["nstate"] or "-"
        if c == "stime":
                    return stime(r["stime_epoch"], now)
        v = r.get(c)
        return "-" if v in (None, "") else str(v)

    headers = None if getattr(args, "H", False) else [COLUMNS[c] for c in cols]
    # another node's picture is what any publisher on the broker may have retained: text, not terminal commands
    text = table([[visible(cell(r, c)) for c in cols] for r in rows], headers)
    if text:
        print(text)
    return 0


def _columns(spec: str | None) -> list[str]:
    if not spec:
        return ["node", "state", "stime", "fmri"]
    cols = [c.strip().lower() for c in spec.split(",") if c.strip()]
    bad = [c for c in cols if c not in COLUMNS]
    if bad:
        print(f"svcs: unknown column {bad[0]!r} (known with --fleet: {', '.join(COLUMNS)})", file=sys.stderr)
        raise SystemExit(2)
    if "node" not in cols:
        cols.insert(0, "node")
    return cols


# ---------------------------------------------------------------- fmadm faulty --fleet
def _cases(retained: dict[str, bytes]) -> list[dict[str, Any]]:
    rows = []
    for topic, payload in retained.items():
        parsed = wire.parse_retained_topic(topic)
        if not parsed or parsed[1] != "cases":
            continue
        d = wire.decode_state(payload)
        if d is None or not isinstance(d.get("uuid"), str):
            continue
        t = d.get("time")
        rows.append({"node": parsed[0], "uuid": d["uuid"], "msgid": d.get("msgid") or "-",
                     "severity": d.get("severity") or "-", "class": d.get("class") or "-",
                     "state": d.get("state") or "-", "time_epoch": t if isinstance(t, int | float) else None,
                     "suspects": d.get("suspects") or [], "affected": d.get("affected") or []})
    rows.sort(key=lambda r: (r["node"], r["time_epoch"] or 0, r["uuid"]))
    return rows


def _resources(items: Any) -> list[str]:
    out = []
    for x in items if isinstance(items, list) else []:
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            r = x.get("resource") or x.get("fmri") or x.get("fault")
            if isinstance(r, str):
                out.append(r)
    return out


def fmadm_fleet(args: argparse.Namespace) -> int:
    """``fmadm faulty --fleet [--json] [--mqtt URL] [--config FILE]``: every node's open cases."""
    try:
        retained, status = _fetch(args, "fmadm", [f"{wire.PREFIX}/+/cases/+", f"{wire.PREFIX}/+/status"])
    except FleetError as e:
        print(f"fmadm: {e}", file=sys.stderr)
        return e.code
    rows = _cases(retained)
    _note_offline("fmadm", {r["node"] for r in rows}, status)
    if getattr(args, "json", False):
        print_json([{"node": r["node"], "time": _iso(r["time_epoch"]), "uuid": r["uuid"], "msgid": r["msgid"],
                     "severity": r["severity"], "class": r["class"], "state": r["state"],
                     "suspects": r["suspects"], "affected": r["affected"],
                     "node_status": (status.get(r["node"]) or {}).get("status", "unknown")} for r in rows])
        return 0
    out = []
    for r in rows:
        t = r["time_epoch"]
        when = time.strftime("%b %d %H:%M:%S", time.localtime(t)) if t is not None else "-"
        affects = ", ".join(_resources(r["affected"]) or _resources(r["suspects"])) or "-"
        out.append([visible(str(x)) for x in (r["node"], when, r["uuid"], r["msgid"], r["severity"], r["class"],
                                               affects)])
    headers = None if getattr(args, "H", False) else \
        ["NODE", "TIME", "EVENT-ID", "MSG-ID", "SEVERITY", "CLASS", "AFFECTS"]
    text = table(out, headers)
    if text:
        print(text)
    return 0
