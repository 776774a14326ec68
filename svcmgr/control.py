"""The operations of ``svcs`` and ``svcadm`` on the control socket, on top of the engine.

Each handler documents its request; replies are plain JSON for the commands to
format. ``svccfg``'s and ``svcprop``'s operations are in ``svcmgr.configure``,
``svcs -x``'s reasoning in ``svcmgr.explain``.

Who may do what is decided by ``svcmgr.authz`` (SMF's ``smf_security(7)``):
Read (anyone): ``ping``, ``match``, ``list``, ``show``, ``explain``, ``deps``, ``props``,
``listprop``, ``export``, ``log``, ``wait``; protected values (method environments, groups
with a ``read_authorization``) and log tails only to those the service grants them.
Action (root, or a user/group in the service's ``[authorizations]``): ``restart``,
``refresh``, ``clear``, ``mark``, temporary ``enable``/``disable``.
Value (root, or ``[authorizations.value]``): persistent ``enable``/``disable``, ``setprop``
of an existing property of an application group. Root only: every other ``setprop``,
``delprop``, ``import``, ``delete``, ``milestone``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

from svcmgr import __version__, authz
from svcmgr import fmri as fmri_mod
from svcmgr.api import Api, ApiError, Caller, Encoded, arg
from svcmgr.authz import Right
from svcmgr.credentials import view as credentials_view
from svcmgr.engine import Engine, EngineError
from svcmgr.explain import Analysis, explain, iso
from svcmgr.fmri import RESTARTER
from svcmgr.instance import Instance
from svcmgr.logs import tail
from svcmgr.manifest import ManifestErrors
from svcmgr.procfs import proc_table
from svcmgr.rctl import CONTROLLERS, Controls, format_limits
from svcmgr.security import Resources
from svcmgr.spec import ServiceSpec
from svcmgr.states import State

__all__ = ["MAX_OPERANDS", "SUMMARY", "Control", "Listing", "Operations", "instance_summary", "instances_named"]

#: Operands one request may name (each is matched against every instance); root may send 16 times more.
MAX_OPERANDS = 1024


def instances_named(engine: Engine, patterns: list[str], caller: Caller, op: Any) -> list[str]:
    """The instances these operands name, each once, in the order first named. Each operand is matched
    against every instance: a request may name ``MAX_OPERANDS`` different ones (root 16 times more), and
    an operand given again is not matched again (a request of one glob written 100,000 times cost the loop
    seconds)."""
    distinct = list(dict.fromkeys(patterns))
    _within_operands(distinct, caller, op)
    out: dict[str, None] = {}
    for p in distinct:
        try:
            out.update(dict.fromkeys(engine.resolve_many(p)))
        except EngineError as e:
            raise ApiError(str(e), e.code) from None
    return list(out)


def _within_operands(operands: list[str], caller: Caller, op: Any) -> None:
    """Refuse more than ``MAX_OPERANDS`` operands, or globs of more than ``fmri.MAX_GLOB_TEXT`` characters in all
    (root: 16 times more of each), as a bad request."""
    scale = fmri_mod.ROOT_SCALE if caller.privileged else 1
    if len(operands) > MAX_OPERANDS * scale:
        raise ApiError(f"bad request: {op}: more than {MAX_OPERANDS} operands", 2)
    if fmri_mod.glob_text(operands) > fmri_mod.MAX_GLOB_TEXT * scale:
        raise ApiError(f"bad request: {op}: globs of more than {fmri_mod.MAX_GLOB_TEXT} characters in all", 2)


def live_pids(instances: list[Instance]) -> dict[str, list[int]]:
    """Current members of each instance's contract (one /proc walk for process-group contracts)."""
    table = None
    out = {}
    for inst in instances:
        c = inst.contract
        if c is None:
            out[inst.fmri] = []
            continue
        if c.kind == "pgid" and table is None:
            table = proc_table()
        out[inst.fmri] = sorted(c.scan(table if c.kind == "pgid" else None))
    return out


#: What ``list`` says of an instance, field by field: (instance, its live pids or None) -> value.
SUMMARY: dict[str, Callable[[Instance, list[int] | None], Any]] = {
    "fmri": lambda i, p: i.fmri,
    "state": lambda i, p: i.state.value,
    "nstate": lambda i, p: i.next_state.value if i.next_state else None,
    "stime": lambda i, p: iso(i.stime),
    "stime_epoch": lambda i, p: i.stime,
    "svc": lambda i, p: i.config.fmri.service,
    "inst": lambda i, p: i.config.fmri.instance,
    "desc": lambda i, p: i.config.description,
    "ctid": lambda i, p: i.contract.ctid if i.contract is not None else None,
    "enabled": lambda i, p: i.effective_enabled,
    "enabled_persistent": lambda i, p: i.enabled,
    "temporary": lambda i, p: i.enabled_temp is not None,
    "comment": lambda i, p: i.comment,
    "pids": lambda i, p: i.pids if p is None else p,
    "reason": lambda i, p: i.reason,
    "restarts": lambda i, p: i.restarts,
}


def instance_summary(inst: Instance, pids: list[int] | None = None,
                     fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    """What ``list`` says of ``inst``: every field of ``SUMMARY``, or only ``fields``."""
    if fields is None:
        return {k: get(inst, pids) for k, get in SUMMARY.items()}
    return {k: SUMMARY[k](inst, pids) for k in fields}


class Listing:
    """``list``'s reply, encoded one instance at a time, each instance's text kept with what it was made
    of (its inputs) for the next listing of the same fields. Every call reads every instance's inputs
    afresh, so nothing it says can be stale; an instance whose inputs are those of the last listing is not
    summarized and encoded again. A poller's call with 1,000 instances costs a fraction of doing all of
    them (svcs and every poller send it; the bench every 10 ms during a boot). Bounded: the last ``KEPT``
    field sets, each the instances of its last full listing (a listing of named instances uses what is
    kept and keeps nothing)."""

    KEPT = 4

    def __init__(self) -> None:
        self._kept: dict[tuple[str, ...], dict[str, tuple[tuple[Any, ...], str]]] = {}

    def encode(self, insts: list[Instance], live: dict[str, list[int]], fields: tuple[str, ...],
               *, whole: bool) -> Encoded:
        """What ``json.dumps`` makes of ``[instance_summary(i, live.get(i.fmri), fields) for i in insts]``;
        ``whole``: these are every instance, kept for the next call."""
        old = self._kept.pop(fields, {})
        new: dict[str, tuple[tuple[Any, ...], str]] = {}
        parts = []
        pids = None
        for inst in insts:
            # Everything a field of ``SUMMARY`` reads: equal inputs, equal summary. Its config is frozen (a refresh
            # puts a new one), its contract's id fixed; its members change in place. (Written out in the loop, which
            # is most of a listing's cost when few instances changed.)
            f, c = inst.fmri, inst.contract
            if live:
                pids = live.get(f)
            inputs = (inst.state, inst.next_state, inst.stime, inst.reason, inst.enabled_set, inst.enabled_temp,
                      inst.comment, inst.restarts, inst.config, pids, None if c is None else (c.ctid, tuple(c.members)))
            was = old.get(f)
            if was is None or was[0] != inputs:
                was = (inputs, json.dumps(instance_summary(inst, pids, fields), default=str))
            new[f] = was
            parts.append(was[1])
        if whole or old:
            self._kept[fields] = new if whole else old
        while len(self._kept) > self.KEPT:
            del self._kept[next(iter(self._kept))]
        return Encoded(f"[{', '.join(parts)}]")


class Operations:
    """What every operation needs: names resolved to instances, and the caller's rights checked."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _many(self, req: dict[str, Any], caller: Caller) -> list[str]:
        pats = arg(req, "fmris", list)
        if not pats:
            raise ApiError(f"bad request: {req.get('op')}: no FMRI given", 2)
        return instances_named(self.engine, pats, caller, req.get("op"))

    def _one(self, req: dict[str, Any], key: str = "fmri", *, allow_service: bool = False) -> str:
        try:
            return self.engine.resolve_one(arg(req, key, str), allow_service=allow_service)
        except EngineError as e:
            raise ApiError(str(e), e.code) from None

    def _spec(self, fmri: str) -> ServiceSpec | None:
        inst = self.engine.instances.get(fmri)
        return inst.config.spec if inst is not None else self.engine.specs.get(fmri)

    def _authorize(self, caller: Caller, fmris: list[str], what: str, right: Right) -> None:
        """Refuse unless the caller holds ``right`` on every one of these services (``svcmgr.authz``)."""
        authz.require(caller, [(f, self._spec(f)) for f in fmris], right, what)

    def _permitted(self, caller: Caller, fmris: list[str], what: str, right: Right) -> tuple[list[str], dict[str, str]]:
        """The instances the caller holds ``right`` on, and why each other one is refused (svcadm.c acts on
        each instance it may and reports each one it may not). Refused as a whole, each refusal a line of
        the error, when the caller holds it on none of them: nothing is done."""
        permitted, refused = authz.partition(caller, [(f, self._spec(f)) for f in fmris], right, what)
        if refused and not permitted:
            raise ApiError("\n".join(refused.values()), 1)
        return permitted, refused


class Control(Operations):
    """Registers the operations of ``svcs`` and ``svcadm`` on an Api."""

    def __init__(self, engine: Engine, api: Api, *, node: str, root: str | None, backend: str,
                 controls: Controls | None = None) -> None:
        super().__init__(engine)
        self.controls = controls
        self.node = node
        self.root = root
        self.backend = backend
        self.started = time.time()
        self.listing = Listing()
        for op in ("ping", "match", "list", "show", "explain", "deps", "log", "wait",
                   "enable", "disable", "restart", "refresh", "clear", "mark", "milestone"):
            api.register(op, getattr(self, f"op_{op}"))

    # ------------------------------------------------------------ read
    async def op_ping(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{}`` -> the daemon's identity; ``unwritable``: why the repository cannot be written now, or null."""
        return {"version": __version__, "pid": os.getpid(), "node": self.node, "root": self.root,
                "contracts": self.backend, "uptime": time.time() - self.started,
                "instances": len(self.engine.instances), "milestone": self.engine.milestone or "all",
                "unwritable": self.engine.unwritable}

    async def op_match(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"patterns": [...], "services": bool, "prefer_services": bool}`` -> ``{"fmris", "unmatched",
        "ambiguous"}``: what a command's operands name, as libscf walks them (``svcmgr.catalog.Walk``;
        with ``services`` as ``svcprop`` does, with ``prefer_services`` too as ``svccfg select``)."""
        pats = arg(req, "patterns", list)
        _within_operands(pats, caller, "match")
        w = self.engine.walk(pats, services=arg(req, "services", bool, False),
                             prefer_services=arg(req, "prefer_services", bool, False))
        return {"fmris": w.fmris, "unmatched": w.unmatched, "ambiguous": w.ambiguous}

    async def op_list(self, caller: Caller, req: dict[str, Any]) -> Encoded:
        """``{"fmris": [pattern...]?, "pids": bool, "fields": [name...]?}`` -> every instance (the client
        filters ``-a``); with ``pids``, each contract's processes as they are now; with ``fields``, only
        those of ``SUMMARY`` (what ``svcs`` prints: a third of the reply with 1,000 instances). Encoded by
        ``Listing`` (svcs and every poller send it: the bench every 10 ms during a boot)."""
        pats = arg(req, "fmris", list, [])
        fields = arg(req, "fields", list, None)
        if fields is not None:
            unknown = [f for f in fields if f not in SUMMARY]
            if unknown:
                raise ApiError(f"bad request: list: unknown fields {', '.join(map(repr, unknown[:5]))} (known: "
                               f"{', '.join(SUMMARY)})", 2)
            fields = tuple(dict.fromkeys(fields))
        instances = self.engine.instances
        insts = ([instances[f] for f in self._many({"op": "list", "fmris": pats}, caller)] if pats
                 else list(instances.values()))
        live = live_pids(insts) if arg(req, "pids", bool, False) else {}
        return self.listing.encode(insts, live, fields if fields is not None else tuple(SUMMARY),
                                   whole=not pats)

    async def op_show(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmri": pattern}`` -> everything ``svcs -l`` prints about one instance."""
        f = self._one(req)
        inst = self.engine.instances[f]
        cfg = inst.config
        out = instance_summary(inst, live_pids([inst])[f])
        g = self.engine.graph
        out.update({
            "name": cfg.spec.template.get("common_name", ""),
            "enabled_persistent": inst.enabled,
            "restarter": RESTARTER,
            "duration": cfg.duration,
            "logfile": inst.log.path if inst.log else None,
            "status": inst.status_text,
            "starts": inst.starts,
            "restarts": inst.restarts,
            "last_exit": inst.last_exit,
            "marks": inst.marks,
            "manifest": cfg.spec.source,
            "dependencies": [
                {"name": d.name, "grouping": d.grouping, "restart_on": d.restart_on, "fmris": list(d.fmris),
                 "states": {t: self._state_of(t) for t in d.fmris}}
                for d in g.deps.get(f, [])],
            "dependents": [{"fmri": d, "name": dep.name, "grouping": dep.grouping} for d, dep in g.dependents_of(f)],
            "readiness": cfg.readiness.kind,
            "health": cfg.health.kind if cfg.health else None,
            "context": self._context(inst),
        })
        return out

    def _context(self, inst: Instance) -> dict[str, Any]:
        """The start method's credentials (declared, applied, and the live main process's) and the
        instance's resource limits with where they go."""
        cfg = inst.config
        ctx = cfg.method_context("start")
        c = inst.contract
        pid = c.main_pid if c is not None and c.main_pid in c.members else None
        out = credentials_view(ctx.user, ctx.group, ctx.security, pid)
        if cfg.resources:
            where = self.controls.describe() if self.controls is not None else {}
            out["resources"] = {k: {"limit": v, "text": format_limits(Resources(**{k: v})),
                                    "where": where.get(CONTROLLERS[k], "")}
                                for k, v in cfg.resources.declared().items()}
        return out

    def _state_of(self, target: str) -> str:
        try:
            p = fmri_mod.parse_any(target)
        except fmri_mod.FmriError:
            return "absent"
        if isinstance(p, fmri_mod.PathFMRI):
            return "present" if os.path.exists(p.path) else "absent"
        if p.instance is None:
            insts = self.engine.graph.by_service.get(str(p), [])
            states = sorted({self.engine.instances[i].state.value for i in insts})
            return ",".join(states) or "absent"
        i = self.engine.instances.get(str(p))
        return i.state.value if i else "absent"

    async def op_deps(self, caller: Caller, req: dict[str, Any]) -> list[dict[str, Any]]:
        """``{"fmris": [...], "direction": "down"|"up"}`` -> instances each depends on (down) or that
        depend on each (up), through every grouping but ``exclude_all`` (as ``svcs -d``/``-D``); an
        absent dependency as ``state: absent``."""
        names = self._many(req, caller)
        direction = arg(req, "direction", str, "down", choices=("down", "up"))
        g = self.engine.graph
        out: dict[str, dict[str, Any]] = {}
        for f in names:
            if direction == "up":
                for d, dep in g.dependents_of(f):
                    if dep.grouping != "exclude_all":
                        out.setdefault(d, instance_summary(self.engine.instances[d]))
                continue
            for dep in g.deps.get(f, []):
                if dep.grouping == "exclude_all" or dep.type == "path":
                    continue
                for declared, insts in g.members(dep):
                    for t in insts or ():
                        out.setdefault(t, instance_summary(self.engine.instances[t]))
                    if insts is None:
                        out.setdefault(declared, {
                            "fmri": declared, "state": "absent", "nstate": None, "stime": None,
                            "stime_epoch": None, "svc": "", "inst": "", "desc": "", "ctid": None, "pids": [],
                            "enabled": False, "dependency": dep.name})
        return list(out.values())

    async def op_explain(self, caller: Caller, req: dict[str, Any]) -> list[dict[str, Any]]:
        """``{"fmris": [...]?, "verbose": bool}`` -> why each instance is not running.

        Without FMRIs: the instances that keep enabled ones from running, and enabled ones that
        cannot run by themselves, the most harmful first (``svcs -x``, ``svcmgr.explain``)."""
        verbose = arg(req, "verbose", bool, False)
        analysis = Analysis(self.engine)
        names = self._many(req, caller) if arg(req, "fmris", list, []) else analysis.troubled()
        for f in names:
            _flushed_log(self.engine.instances[f])
        out = [explain(self.engine, analysis, self.engine.instances[f], verbose) for f in names]
        for item in out:
            if not authz.allowed(caller, self.engine.instances[item["fmri"]].config.spec, Right.LOG):
                item["log_tail"] = []
        return out

    async def op_log(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmri": pattern, "lines": N?}`` -> the instance's log file and its last lines (those for
        root and the service's delegated users only)."""
        f = self._one(req)
        inst = self.engine.instances[f]
        allowed = authz.allowed(caller, inst.config.spec, Right.LOG)
        n = arg(req, "lines", int, 0) if allowed else 0
        path = _flushed_log(inst)
        return {"fmri": f, "path": path, "tail": tail(path, max(0, min(n, 10000))) if path and n else [],
                "allowed": allowed}

    async def op_wait(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmris": [...], "want": "online"|"disabled", "timeout": seconds?}`` -> ``{"code": 0|3|4}``.

        0: every instance got there; 3: one cannot get there by itself; 4: its dependencies cannot."""
        names = self._many(req, caller)
        want = arg(req, "want", str, choices=("online", "disabled"))
        timeout = arg(req, "timeout", (int, float), None)
        if timeout is not None and not math.isfinite(timeout):  # a NaN timer breaks the loop's timer heap
            raise ApiError("bad request: wait: 'timeout' must be a finite number of seconds (absent: no limit)", 2)
        futs = [self.engine.wait_for(f, want) for f in names]
        try:
            codes = await asyncio.wait_for(asyncio.gather(*futs), timeout)
        except TimeoutError:
            return {"code": 1, "timeout": True}
        worst = max(codes) if codes else 0
        return {"code": worst, "fmris": dict(zip(names, codes, strict=True))}

    # ------------------------------------------------------------ actions
    async def op_enable(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmris": [...], "temporary": bool, "recursive": bool}`` -> ``{"fmris": enabled, "absent":
        [...], "steps": [...], "refused": [...]}``: with ``recursive``, the walk of ``Engine.enable_walk``
        (what each instance requires one of, the services of several instances left alone), in the order
        svcadm prints it. An instance the caller may not enable, named or reached by the walk, is left
        alone: its step is ``{"refused": fmri, "reason": why}`` (the walk goes on through what it requires,
        as svcadm.c's does), and it is in ``refused`` (see ``op_restart``)."""
        names = self._many(req, caller)
        temporary = arg(req, "temporary", bool, False)
        recursive = arg(req, "recursive", bool, False)
        steps = self.engine.enable_walk(names) if recursive else [{"enable": f} for f in names]
        targets, refused = self._permitted(caller, [step["enable"] for step in steps if "enable" in step], "enable",
                                           Right.ACTION if temporary else Right.VALUE)
        steps = [{"refused": step["enable"], "reason": refused[step["enable"]]}
                 if step.get("enable") in refused else step for step in steps]
        done = self.engine.enable(targets, temporary=temporary)
        await self.engine.recorded()
        missing = sorted({step["absent"] for step in steps if "absent" in step})
        return {"fmris": done, "absent": missing, "steps": steps, "refused": _refusals(refused)}

    async def op_disable(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmris": [...], "temporary": bool, "comment": str?}`` -> ``{"fmris": disabled, "refused":
        [...]}``: ``comment`` is the operator's reason, kept until the instance is enabled again
        (``svcadm disable -c``); ``refused`` as for ``op_restart``."""
        names = self._many(req, caller)
        temporary = arg(req, "temporary", bool, False)
        comment = arg(req, "comment", str, "")
        if len(comment) > 1024 or not comment.isprintable():
            raise ApiError("bad request: disable: a comment is one printable line of at most 1024 characters", 2)
        names, refused = self._permitted(caller, names, "disable", Right.ACTION if temporary else Right.VALUE)
        self.engine.disable(names, temporary=temporary, comment=comment)
        await self.engine.recorded()
        return {"fmris": names, "refused": _refusals(refused)}

    async def op_restart(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmris": [...], "dump": bool}`` -> ``{"fmris": restarted, "skipped": [...], "refused": [{"fmri",
        "reason"}...]}``: only online or degraded instances restart (the others are ``skipped``); with
        ``dump`` every process of the contract gets SIGABRT first, for a core dump (``svcadm restart -d``).

        As every action here: the instances the caller may not act on are left alone, each in ``refused``
        with why; the request is refused as a whole (nothing done) when it may act on none."""
        names, refused = self._permitted(caller, self._many(req, caller), "restart", Right.ACTION)
        done = self.engine.restart(names, dump=arg(req, "dump", bool, False))
        await self.engine.recorded()
        return {"fmris": done, "skipped": [f for f in names if f not in done], "refused": _refusals(refused)}

    async def op_refresh(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmris": [...]}`` -> ``{"fmris": refreshed, "refused": [...]}``: editing configuration becomes
        the running snapshot; ``refused`` as for ``op_restart``."""
        names, refused = self._permitted(caller, self._many(req, caller), "refresh", Right.ACTION)
        try:
            self.engine.refresh(names)
        except ManifestErrors as e:
            raise ApiError(f"refresh refused, the edited configuration is invalid:\n{e}", 1) from None
        await self.engine.recorded()
        return {"fmris": names, "refused": _refusals(refused)}

    async def op_clear(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmris": [...]}``: maintenance back to service, degraded back to online; ``actions`` says
        which (SMF's ``maint_off`` or ``restore``), ``skipped`` the instances in neither state, ``refused``
        as for ``op_restart``."""
        names, refused = self._permitted(caller, self._many(req, caller), "clear", Right.ACTION)
        actions = {f: "restore" if self.engine.instances[f].state == State.DEGRADED else "maint_off" for f in names}
        done = self.engine.clear(names)
        await self.engine.recorded()
        return {"fmris": done, "skipped": [f for f in names if f not in done],
                "actions": {f: actions[f] for f in done}, "refused": _refusals(refused)}

    async def op_mark(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmris": [...], "state": "maintenance"|"degraded", "temporary": bool, "immediate": bool}`` ->
        ``{"fmris": marked, "skipped": [...], "refused": [...]}`` (``refused`` as for ``op_restart``)."""
        names = self._many(req, caller)
        state = arg(req, "state", str, choices=("maintenance", "degraded"))
        names, refused = self._permitted(caller, names, "mark", Right.ACTION)
        done = self.engine.mark(names, state, temporary=arg(req, "temporary", bool, False),
                                immediate=arg(req, "immediate", bool, False))
        await self.engine.recorded()
        return {"fmris": done, "skipped": [f for f in names if f not in done], "refused": _refusals(refused)}

    async def op_milestone(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"target": "all"|"none"|FMRI}``."""
        authz.require_operator(caller, "change the milestone")
        target = arg(req, "target", str)
        if target not in ("all", "none"):
            target = self._one({"fmri": target})
        milestone = self.engine.set_milestone(target)
        await self.engine.recorded()
        return {"milestone": milestone}


def _refusals(refused: dict[str, str]) -> list[dict[str, str]]:
    """A reply's ``refused``: each instance left alone, in the order named, with why (``authz.refusal``)."""
    return [{"fmri": f, "reason": why} for f, why in refused.items()]


def _flushed_log(inst: Instance) -> str | None:
    """The instance's log file, with every line said so far in it (``InstanceLog.flush``), for a reader."""
    if inst.log is None:
        return None
    inst.log.flush()
    return inst.log.path
