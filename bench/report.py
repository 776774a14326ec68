"""Results as Markdown: the tables of one run, the targets, and where they go in BENCHMARKS.md.

The harness owns the text between ``BEGIN`` and ``END`` in BENCHMARKS.md and
replaces only that; everything else in the file (other sections, the analysis
written by hand) stays as it is.
"""

from __future__ import annotations

import os
import statistics

from bench.harness import Results
from bench.scenarios import DAG_DEPTH, DAG_READY, DAG_SIZE, percentile
from bench.side import BARE_MQTT

__all__ = ["BEGIN", "END", "render", "targets", "update_file"]

BEGIN = "<!-- bench:results:begin (written by python -m bench; do not edit by hand) -->"
END = "<!-- bench:results:end -->"
SVCMGR = "svcmgr"
FLOOR = "asyncio floor"
#: the second column of targets that do not depend on the contract mode
SAME = "(the same code: no contracts involved)"

_TITLES = {
    "start": "start N sleeps, launch to all reported up (s)",
    "warm": "start N sleeps again, launch to all reported up: svcmgr on the --root and manifests of a first "
            "launch stopped cleanly, the others their ordinary start (s)",
    "memory": "supervisor peak RSS with N services, all up (MiB)",
    "pss": "supervisor PSS with N services, all up (MiB)",
    "listing": "listing command with N services, a new process each time (ms)",
    "restart": "kill -9 to a new process reported up, N services running (ms)",
    "dag/span": f"DAG of {DAG_SIZE}, depth {DAG_DEPTH}, {DAG_READY * 1000:.0f} ms each: first start to all up (s)",
    "dag/launch": f"DAG of {DAG_SIZE}: launch to all up (s)",
    "diagnosis/pipeline": "fault diagnosis in process: validate, error log, diagnosis (ereports/s, more is better)",
    "diagnosis/exits": "fault diagnosis of service exits alone, per-service rules (ereports/s, more is better)",
    "mqtt/out": "MQTT bridge: events to a local mosquitto, every one received in order (events/s, more is better)",
    "mqtt/round": "MQTT bridge round trip: telemetry in, ereports out, received in order (events/s, more is better)",
}


def _title(key: str) -> str:
    if key in _TITLES:
        return _TITLES[key]
    kind, _, n = key.partition("/")
    return _TITLES.get(kind, kind).replace(" N ", f" {int(n):,} ")


def _fmt(v: float, unit: str) -> str:
    if unit == "ms":
        return f"{v * 1000:.1f}"
    if unit == "MiB":
        return f"{v:.1f}"
    if unit == "/s":
        return f"{v:,.0f}"
    return f"{v:.3f}"


def _unit(key: str) -> str:
    if key.startswith(("restart", "listing")):
        return "ms"
    if key.startswith(("memory", "pss")):
        return "MiB"
    if key.startswith(("diagnosis", "mqtt")):
        return "/s"
    return "s"


def _order(keys: list[str]) -> list[str]:
    rank = {"start": 0, "warm": 1, "dag/span": 2, "dag/launch": 3, "restart": 4, "memory": 5, "pss": 6,
            "listing": 7, "diagnosis/pipeline": 8, "diagnosis/exits": 9, "mqtt/out": 10, "mqtt/round": 11}

    def k(key: str) -> tuple[int, int]:
        kind, _, n = key.partition("/")
        r = rank.get(key, rank.get(kind, 9))
        return r, int(n) if n.isdigit() else 0

    return sorted(keys, key=k)


def render(res: Results, command: str) -> str:
    m = res.machine
    out = [BEGIN, "",
           f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), {m['memory_mib']:,} MiB, "
           f"Python {m['python']}, Linux {m['kernel']}, load average {m.get('load', '?')} before and "
           f"{m.get('load_after', '?')} after (the machine is shared); each launch's folder in "
           f"{m.get('work', 'the temp folder')}; one run of `{command}` "
           f"({res.options['runs']} runs, each tool in turn, the order rotating and reversing, the machine "
           "left to go quiet after each stop).", "",
           "Tools: " + "; ".join(f"{n} {v}".strip() if not v.startswith(n) else v for n, v in res.tools.items())
           + ".", ""]
    if res.skipped:
        out += ["Skipped: " + "; ".join(f"{n} ({why})" for n, why in res.skipped.items()) + ".", ""]
    out += ["| scenario | tool | samples | min | median | max | svcmgr ÷ tool (medians) |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for key in _order(list(res.values)):
        unit = _unit(key)
        by_tool = res.values[key]
        ref = by_tool.get(SVCMGR)
        ref_med = statistics.median(ref) if ref else None
        title = _title(key)
        if key.startswith("restart"):
            title = _title(key)
        for tool, vals in by_tool.items():
            med = statistics.median(vals)
            ratio = f"{ref_med / med:.2f}" if ref_med is not None and med > 0 else "-"
            extra = ""
            if key.startswith("restart"):
                extra = f" (p99 {_fmt(percentile(vals, 0.99), unit)})"
            note = res.notes.get(key, {}).get(tool)
            if note:
                extra += f"; {note}"
            out.append(f"| {title} | {tool} | {len(vals)} | {_fmt(min(vals), unit)} | {_fmt(med, unit)}{extra} | "
                       f"{_fmt(max(vals), unit)} | {ratio} |")
        for tool, why in res.errors.get(key, {}).items():
            out.append(f"| {title} | {tool} | 0 | failed: {why} | | | |")
    marg = [f"{tool} {k:.1f} KiB" for tool in res.values.get("memory/500", {})
            if (k := _marginal(res, tool)) is not None]
    if marg:
        out += ["", "Marginal memory per service (peak RSS at 1,000 minus at 500, over 500): " + "; ".join(marg) + "."]
    for key, notes in res.notes.items():
        if key == "dag":
            out += ["", "DAG: not run for " + "; ".join(f"{t} ({why})" for t, why in notes.items()) + "."]
    out += ["", "### Targets", "", "| target | svcmgr | svcmgr --no-cgroup |", "| --- | --- | --- |"]
    for name, a, b in targets(res):
        out.append(f"| {name} | {a} | {b} |")
    out += ["", END]
    return "\n".join(out)


def _med(res: Results, key: str, tool: str) -> float | None:
    v = res.values.get(key, {}).get(tool)
    return statistics.median(v) if v else None


def _marginal(res: Results, tool: str) -> float | None:
    """KiB of peak RSS per service, from 500 to 1,000 services."""
    a, b = _med(res, "memory/500", tool), _med(res, "memory/1000", tool)
    return None if a is None or b is None else (b - a) * 1024 / 500


def targets(res: Results) -> list[tuple[str, str, str]]:
    """Issue 13's targets, each a ratio or a bound within this run: (target, svcmgr, svcmgr --no-cgroup)."""
    rows = []

    def both(fn):  # type: ignore[no-untyped-def]
        return fn(SVCMGR), fn(SVCMGR + " --no-cgroup")

    def verdict(ok: bool, text: str) -> str:
        return f"{'met' if ok else 'missed'}: {text}"

    for n in (500, 1000):
        key = f"start/{n}"

        def start(tool: str, key: str = key) -> str:
            a = _med(res, key, tool)
            s6, sup, floor = (_med(res, key, t) for t in ("s6", "supervisord", FLOOR))
            if a is None or None in (s6, sup, floor):
                return "not measured"
            assert s6 is not None and sup is not None and floor is not None
            ok = s6 / a >= 1.0 and sup / a >= 4.0 and a / floor <= 2.0
            return verdict(ok, f"{a:.3f} s: {s6 / a:.2f}x s6's speed, {sup / a:.2f}x supervisord's, "
                               f"{a / floor:.2f}x the floor's time")

        rows.append((f"start of {n:,}: faster than s6, ≥ 4x supervisord, ≤ 2x the asyncio floor", *both(start)))

    def restart(tool: str) -> str:
        keys = [k for k in res.values if k.startswith("restart/")]
        v = res.values.get(keys[0], {}).get(tool) if keys else None
        if not v:
            return "not measured"
        p50, p99 = percentile(v, 0.5) * 1000, percentile(v, 0.99) * 1000
        return verdict(p50 <= 5 and p99 <= 20, f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")

    rows.append(("restart after kill -9, 1,000 running: p50 ≤ 5 ms, p99 ≤ 20 ms (the cgroup mode counts)",
                 *both(restart)))

    def mem(tool: str) -> str:
        a, s = _med(res, "memory/500", tool), _med(res, "memory/500", "supervisord")
        if a is None or s is None:
            return "not measured"
        return verdict(a <= s, f"{a:.1f} MiB vs supervisord {s:.1f} MiB")

    rows.append(("peak RSS with 500 ≤ supervisord's", *both(mem)))

    def marginal(tool: str) -> str:
        k = _marginal(res, tool)
        return "not measured" if k is None else verdict(k <= 15, f"{k:.1f} KiB")

    rows.append(("marginal memory per service ≤ 15 KiB", *both(marginal)))

    def dag(tool: str) -> str:
        a, f = _med(res, "dag/span", tool), _med(res, "dag/span", FLOOR)
        if a is None or f is None:
            return "not measured"
        return verdict(a / f <= 1.2, f"{a / f:.2f}x the floor ({a:.3f} s vs {f:.3f} s)")

    rows.append(("DAG of 500 within 1.2x the asyncio floor (first start to all up)", *both(dag)))

    def listing(tool: str) -> str:
        keys = [k for k in res.values if k.startswith("listing/")]
        a = _med(res, keys[0], tool) if keys else None
        return "not measured" if a is None else verdict(a <= 0.05, f"{a * 1000:.1f} ms")

    rows.append(("`svcs -a` with 1,000 ≤ 50 ms", *both(listing)))

    def diagnosis(tool: str) -> str:
        a, e = _med(res, "diagnosis/pipeline", tool), _med(res, "diagnosis/exits", tool)
        if a is None:
            return "not measured"
        alone = f" (service exits alone {e:,.0f}/s)" if e is not None else ""
        return verdict(a >= 100_000, f"{a:,.0f} ereports/s{alone}")

    rows.append(("fault diagnosis ≥ 100,000 ereports/s in process (validate, error log, diagnosis)",
                 diagnosis(SVCMGR), SAME))

    def mqtt(tool: str) -> str:
        a, bare = _med(res, "mqtt/out", tool), _med(res, "mqtt/out", BARE_MQTT)
        if a is None:
            return "not measured"
        peer = f", {a / bare:.2f}x one bare aiomqtt client ({bare:,.0f}/s)" if bare else ""
        return verdict(a >= 20_000, f"{a:,.0f} events/s, none lost{peer}")

    rows.append(("MQTT bridge ≥ 20,000 events/s to a local mosquitto, nothing lost", mqtt(SVCMGR), SAME))
    return rows


def update_file(path: str, block: str, heading: str, intro: str) -> None:
    """Replace the results block in ``path`` (create the file and the section when missing)."""
    text = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + block + tail
    else:
        if not text:
            text = "# Benchmarks\n\nEach section is one topic's benchmarks, with the command that reproduces them.\n"
        text = text.rstrip("\n") + f"\n\n{heading}\n\n{intro}\n\n{block}\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
