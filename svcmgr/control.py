"""The svc* operations of the control socket, on top of the engine.

Each handler documents its request; replies are plain JSON for the commands
(``svcs``, ``svcadm``, ``svccfg``, ``svcprop``) to format.

Who may do what is decided by ``svcmgr.authz`` (SMF's ``smf_security(7)``):
Read (anyone): ``ping``, ``list``, ``show``, ``explain``, ``deps``, ``props``,
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
import copy
import datetime as dt
import os
import time
from collections.abc import Callable
from typing import Any

from svcmgr import __version__, authz
from svcmgr import fmri as fmri_mod
from svcmgr.api import Api, ApiError, Caller, arg
from svcmgr.authz import Right
from svcmgr.credentials import view as credentials_view
from svcmgr.engine import Engine, EngineError
from svcmgr.graph import Blocker
from svcmgr.instance import Instance
from svcmgr.logs import tail
from svcmgr.machine import Phase
from svcmgr.manifest import (
    PROP_TYPES,
    InstanceConfig,
    ManifestErrors,
    Property,
    ServiceSpec,
    check_property_value,
    load_bytes,
    parse_service,
    resolve_instance,
)
from svcmgr.rctl import CONTROLLERS, Controls, format_limits
from svcmgr.security import Resources, Security
from svcmgr.states import RUNNING, State
from svcmgr.tasks import in_thread
from svcmgr.units import format_duration

__all__ = ["Control", "instance_summary", "property_view"]


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def live_pids(instances: list[Instance]) -> dict[str, list[int]]:
    """Current members of each instance's contract (one /proc walk for process-group contracts)."""
    from svcmgr.contract import proc_table

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


def instance_summary(inst: Instance, pids: list[int] | None = None) -> dict[str, Any]:
    cfg = inst.config
    return {
        "fmri": inst.fmri,
        "state": inst.state.value,
        "nstate": inst.next_state.value if inst.next_state else None,
        "stime": _iso(inst.stime),
        "stime_epoch": inst.stime,
        "svc": cfg.fmri.service,
        "inst": cfg.fmri.instance,
        "desc": cfg.description,
        "ctid": inst.contract.ctid if inst.contract is not None else None,
        "enabled": inst.effective_enabled,
        "temporary": inst.enabled_temp is not None,
        "pids": inst.pids if pids is None else pids,
        "reason": inst.reason,
        "restarts": inst.restarts,
    }


def _pvals(values: Any) -> list[Any]:
    return list(values) if isinstance(values, list | tuple) else [values]


def property_view(cfg: InstanceConfig, inst: Instance | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Property groups as ``svcprop`` shows them: the standard ones derived from the configuration,
    then the manifest's own."""
    pgs: dict[str, dict[str, dict[str, Any]]] = {}

    def put(pg: str, name: str, ptype: str, values: Any) -> None:
        pgs.setdefault(pg, {})[name] = {"type": ptype, "values": _pvals(values)}

    put("general", "enabled", "boolean", cfg.enabled if inst is None else inst.enabled)
    if cfg.spec.stability:
        put("general", "entity_stability", "astring", cfg.spec.stability)
    a = cfg.authorizations
    if a.action.names or a.action:
        put("general", "action_authorization", "astring",
            list(a.action.names) or [*(f"user:{u}" for u in a.action.users),
                                     *(f"group:{g}" for g in a.action.groups)])
    if a.value.names or a.value:
        put("general", "value_authorization", "astring",
            list(a.value.names) or [*(f"user:{u}" for u in a.value.users),
                                    *(f"group:{g}" for g in a.value.groups)])
    if inst is not None:
        put("restarter", "state", "astring", inst.state.value)
        put("restarter", "next_state", "astring", inst.next_state.value if inst.next_state else "none")
        put("restarter", "state_timestamp", "time", f"{inst.stime:.6f}")
        if inst.contract is not None:
            put("restarter", "contract", "count", inst.contract.ctid)
        put("restarter", "logfile", "astring", inst.log.path if inst.log else "")
    put("startd", "duration", "astring", cfg.duration)
    if cfg.restart.ignore_error:
        put("startd", "ignore_error", "astring", ",".join(cfg.restart.ignore_error))
    put("startd", "timeout_retry", "boolean", cfg.restart.timeout_retry)
    for name, m in sorted(cfg.methods.items()):
        put(name, "type", "astring", "method")
        put(name, "exec", "astring", m.exec.display())
        put(name, "timeout_seconds", "count", 0 if m.timeout is None else int(m.timeout))
        ctx = cfg.method_context(name)
        if ctx.user:
            put(name, "user", "astring", ctx.user)
        if ctx.group:
            put(name, "group", "astring", ctx.group)
        if ctx.working_directory:
            put(name, "working_directory", "astring", ctx.working_directory)
        if ctx.environment:
            put(name, "environment", "astring", [f"{k}={v}" for k, v in sorted(ctx.environment.items())])
        _security_props(put, name, ctx.security)
    _security_props(put, "method_context", cfg.context.security)
    for d in cfg.dependencies:
        put(d.name, "type", "astring", "dependency")
        put(d.name, "grouping", "astring", d.grouping)
        put(d.name, "restart_on", "astring", d.restart_on)
        put(d.name, "entities", "fmri", list(d.fmris))
        put(d.name, "dep_type", "astring", d.type)
    for key, v in cfg.resources.declared().items():
        put("resources", key, "float" if key == "cpu" else "count", v)
    put("restart", "limit", "count", cfg.restart.limit)
    put("restart", "period", "astring", format_duration(cfg.restart.period))
    r = cfg.readiness
    put("readiness", "type", "astring", r.kind)
    if r.target is not None:
        put("readiness", "target", "astring", " ".join(r.target) if isinstance(r.target, tuple) else r.target)
    if cfg.health is not None:
        h = cfg.health
        put("health", "type", "astring", h.kind)
        put("health", "target", "astring", " ".join(h.target) if isinstance(h.target, tuple) else h.target)
        put("health", "interval", "astring", format_duration(h.interval))
        put("health", "failures", "count", h.failures)
        put("health", "action", "astring", h.action)
    t = cfg.spec.template
    if t.get("common_name"):
        put("tm_common_name", "C", "ustring", t["common_name"])
    if t.get("description"):
        put("tm_description", "C", "ustring", t["description"])
    for pg, props in sorted(cfg.properties.items()):
        for name, p in sorted(props.items()):
            put(pg, name, p.type, list(p.values))
    return pgs


def _security_props(put: Callable[[str, str, str, Any], None], pg: str, sec: Security) -> None:
    """A context's privileges and limits as properties of ``pg``, with SMF's names where it has them
    (privileges, limit_privileges, supp_groups)."""
    for key, v in sec.declared().items():
        if key == "rlimits":
            put(pg, key, "astring", [f"{k}={s}:{h}" for k, (s, h) in sorted(v.items())])
        elif key == "no_new_privileges":
            put(pg, key, "boolean", v)
        else:
            put(pg, "supp_groups" if key == "supplemental_groups" else key, "astring",
                ",".join(v) if isinstance(v, list) else v)


_METHOD_KEYS = {"exec": "exec", "timeout_seconds": "timeout", "user": "user", "group": "group",
                "working_directory": "working_directory", "privileges": "privileges",
                "limit_privileges": "limit_privileges", "supp_groups": "supplemental_groups",
                "no_new_privileges": "no_new_privileges", "umask": "umask"}


def _load_all(files: list[dict[str, str]]) -> tuple[list[ServiceSpec], list[str], list[str]]:
    """Parse and validate manifest files sent with ``import``: (specs, their formats, errors)."""
    specs: list[ServiceSpec] = []
    formats: list[str] = []
    errors: list[str] = []
    for item in files:
        blob = item["content"].encode()
        try:
            got = load_bytes(blob, item["path"])
        except ManifestErrors as e:
            errors.append(str(e))
            continue
        fmt = "xml" if blob.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<") else "toml"
        specs.extend(got)
        formats.extend([fmt] * len(got))
    return specs, formats, errors


class Control:
    """Registers the svc* operations on an Api."""

    def __init__(self, engine: Engine, api: Api, *, node: str, root: str | None, backend: str,
                 controls: Controls | None = None) -> None:
        self.engine = engine
        self.controls = controls
        self.node = node
        self.root = root
        self.backend = backend
        self.started = time.time()
        #: one manifest check at a time off the loop for ordinary users, one for root
        self._checking = {False: asyncio.Semaphore(1), True: asyncio.Semaphore(1)}
        for op in ("ping", "list", "show", "explain", "deps", "props", "listprop", "export", "log", "wait",
                   "enable", "disable", "restart", "refresh", "clear", "mark", "milestone", "import",
                   "delete", "setprop", "delprop"):
            api.register(op, getattr(self, f"op_{op}"))

    # ------------------------------------------------------------ helpers
    def _many(self, req: dict[str, Any]) -> list[str]:
        pats = arg(req, "fmris", list)
        if not pats:
            raise ApiError(f"bad request: {req.get('op')}: no FMRI given", 2)
        out: list[str] = []
        for p in pats:
            try:
                for f in self.engine.resolve_many(p):
                    if f not in out:
                        out.append(f)
            except EngineError as e:
                raise ApiError(str(e), e.code) from None
        return out

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

    # ------------------------------------------------------------ read
    async def op_ping(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{}`` -> the daemon's identity."""
        return {"version": __version__, "pid": os.getpid(), "node": self.node, "root": self.root,
                "contracts": self.backend, "uptime": time.time() - self.started,
                "instances": len(self.engine.instances), "milestone": self.engine.milestone or "all"}

    async def op_list(self, caller: Caller, req: dict[str, Any]) -> list[dict[str, Any]]:
        """``{"fmris": [pattern...]?, "pids": bool}`` -> every instance (the client filters ``-a``);
        with ``pids``, each contract's processes as they are now."""
        pats = arg(req, "fmris", list, [])
        names = self._many({"op": "list", "fmris": pats}) if pats else list(self.engine.instances)
        insts = [self.engine.instances[f] for f in names]
        live = live_pids(insts) if arg(req, "pids", bool, False) else {}
        return [instance_summary(i, live.get(i.fmri)) for i in insts]

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
            "restarter": "svc:/system/svc/restarter:default",
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
        depend on each (up), with absent dependencies as ``state: absent``."""
        names = self._many(req)
        direction = arg(req, "direction", str, "down", choices=("down", "up"))
        g = self.engine.graph
        out: dict[str, dict[str, Any]] = {}
        for f in names:
            if direction == "down":
                for t in g.dependencies_of(f):
                    out[t] = instance_summary(self.engine.instances[t])
                for d, t in g.missing_targets(f):
                    out[t] = {"fmri": t, "state": "absent", "nstate": None, "stime": None, "stime_epoch": None,
                              "svc": "", "inst": "", "desc": "", "ctid": None, "pids": [], "dependency": d.name}
            else:
                for d, _ in g.dependents_of(f):
                    out[d] = instance_summary(self.engine.instances[d])
        return list(out.values())

    async def op_explain(self, caller: Caller, req: dict[str, Any]) -> list[dict[str, Any]]:
        """``{"fmris": [...]?, "verbose": bool}`` -> why each instance is not running.

        Without FMRIs: every enabled instance that is not running, and every instance
        that keeps an enabled one from running (``svcs -x``)."""
        verbose = arg(req, "verbose", bool, False)
        if arg(req, "fmris", list, []):
            names = self._many(req)
        else:
            names = self._troubled()
        out = [self.explain(self.engine.instances[f], verbose) for f in names]
        for item in out:
            if not authz.allowed(caller, self.engine.instances[item["fmri"]].config.spec, Right.LOG):
                item["log_tail"] = []
        return out

    def _troubled(self) -> list[str]:
        e = self.engine
        out = []
        for f, inst in sorted(e.instances.items()):
            if inst.state in (State.DEGRADED, State.MAINTENANCE):
                out.append(f)
            elif inst.state in RUNNING:
                continue
            elif inst.effective_enabled or any(
                    e.instances[d].effective_enabled and e.instances[d].state not in RUNNING
                    for d, dep in e.graph.dependents_of(f) if dep.grouping in ("require_all", "require_any")):
                out.append(f)
        return out

    def explain(self, inst: Instance, verbose: bool) -> dict[str, Any]:
        e = self.engine
        g = e.graph
        f = inst.fmri
        reason, paths = self._reason(inst)
        impacted = sorted(d for d in g.all_dependents(f, groupings=("require_all", "require_any"))
                          if e.instances[d].state not in RUNNING and e.instances[d].effective_enabled)
        log_path = inst.log.path if inst.log else None
        out = {
            "fmri": f, "desc": inst.config.description, "state": inst.state.value,
            "nstate": inst.next_state.value if inst.next_state else None,
            "stime": _iso(inst.stime), "stime_epoch": inst.stime, "reason": reason,
            "log": log_path, "log_tail": tail(log_path, 20 if verbose else 8) if log_path else [],
            "impact": impacted, "paths": paths if verbose else [],
            "cases": [m.get("case") for m in inst.marks.values() if m.get("case")],
            "marks": inst.marks,
        }
        return out

    def _reason(self, inst: Instance) -> tuple[str, list[list[str]]]:
        e = self.engine
        st = inst.state
        if st == State.MAINTENANCE or inst.phase == Phase.STOPPING_MAINT:
            m = inst.marks.get("maintenance", {})
            text = m.get("reason") or inst.reason or "In maintenance."
            if m.get("case"):
                text += f" (fault case {m['case']})"
            return text, []
        if st == State.DEGRADED:
            m = inst.marks.get("degraded", {})
            text = m.get("reason") or inst.reason or "Degraded."
            if m.get("case"):
                text += f" (fault case {m['case']})"
            return text, []
        if st == State.DISABLED or not inst.effective_enabled:
            return e.disabled_reason(inst), []
        if st in RUNNING:
            return inst.reason or "Running.", []
        if inst.phase == Phase.STARTING:
            return "Start method is running.", []
        blockers = e.graph.blockers(inst.fmri, e.view)
        paths = e.graph.root_causes(inst.fmri, e.view)
        if not blockers:
            return inst.reason or "Offline.", paths
        absent = [b for b in blockers if b.why == "absent"]
        if absent:
            return f"Dependency {absent[0].member} is absent.", paths
        missing = [b for b in blockers if b.why == "missing"]
        if missing:
            return f"Dependency {missing[0].member} does not exist.", paths
        running = [b for b in blockers if b.why == "running"]
        if running:
            return f"Service {running[0].member} is running, and this service excludes it.", paths
        root = paths[0][-1] if paths else blockers[0].member
        return f"Service {root} is not running because {self._why_root(root, blockers)}", paths

    def _why_root(self, root: str, blockers: list[Blocker]) -> str:
        r = self.engine.instances.get(root)
        if r is None:
            return "it is absent."
        if r.state == State.MAINTENANCE:
            text = r.marks.get("maintenance", {}).get("reason") or "it is in maintenance"
            return f"it is in maintenance: {text}"
        if not r.effective_enabled or r.state == State.DISABLED:
            return "it is disabled."
        if r.phase == Phase.STARTING:
            return "it is starting."
        return f"it is {r.state.value}."

    def _shown(self, caller: Caller, out: dict[str, Any], spec: ServiceSpec, instance: str | None) -> dict[str, Any]:
        """The view as this caller may see it: protected values hidden unless the caller may read them."""
        if not authz.allowed(caller, spec, Right.READ):
            hidden = authz.redact_view(out["pgs"], spec, instance)
            if hidden:
                out["protected"] = hidden
        return out

    async def op_props(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmri": pattern}`` -> the running snapshot's property groups (``svcprop``); protected
        values (``protected``: their names) only for root and ``[authorizations.read]``."""
        f = self._one(req, allow_service=True)
        if f in self.engine.instances:
            inst = self.engine.instances[f]
            return self._shown(caller, {"fmri": f, "pgs": property_view(inst.config, inst)}, inst.config.spec,
                               inst.config.fmri.instance)
        spec = self.engine.specs[f]
        first = next(iter(spec.instances))
        return self._shown(caller, {"fmri": f, "pgs": property_view(resolve_instance(spec, first))}, spec, first)

    async def op_listprop(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmri": pattern}`` -> the editing configuration's property groups (``svccfg listprop``)."""
        f = self._one(req, allow_service=True)
        p = fmri_mod.parse(f)
        service = str(p.service_fmri)
        data = self.engine.editing[service]
        source, _ = self.engine.sources.get(service, ("", ""))
        spec = parse_service(data, source)
        name = p.instance or next(iter(spec.instances))
        cfg = resolve_instance(spec, name)
        pending = data != self.engine.specs[service].to_dict()
        return self._shown(caller, {"fmri": f, "pgs": property_view(cfg), "pending_refresh": pending}, spec, name)

    async def op_export(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmri": service}`` -> the manifest as imported (normal form, editing copy); protected
        values as ``(protected)`` unless the caller may read them."""
        f = self._one(req, allow_service=True)
        service = str(fmri_mod.parse(f).service_fmri)
        source, fmt = self.engine.sources.get(service, ("", "toml"))
        manifest = self.engine.editing[service]
        out = {"fmri": service, "manifest": manifest, "source": source, "format": fmt}
        if not authz.allowed(caller, self.engine.specs.get(service), Right.READ):
            out["manifest"] = manifest = copy.deepcopy(manifest)
            hidden = authz.redact_manifest(manifest)
            if hidden:
                out["protected"] = hidden
        return out

    async def op_log(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmri": pattern, "lines": N?}`` -> the instance's log file and its last lines (those for
        root and the service's delegated users only)."""
        f = self._one(req)
        inst = self.engine.instances[f]
        allowed = authz.allowed(caller, inst.config.spec, Right.LOG)
        n = arg(req, "lines", int, 0) if allowed else 0
        path = inst.log.path if inst.log else None
        return {"fmri": f, "path": path, "tail": tail(path, max(0, min(n, 10000))) if path and n else [],
                "allowed": allowed}

    async def op_wait(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmris": [...], "want": "online"|"disabled", "timeout": seconds?}`` -> ``{"code": 0|3|4}``.

        0: every instance got there; 3: one cannot get there by itself; 4: its dependencies cannot."""
        names = self._many(req)
        want = arg(req, "want", str, choices=("online", "disabled"))
        timeout = arg(req, "timeout", (int, float), None)
        futs = [self.engine.wait_for(f, want) for f in names]
        try:
            codes = await asyncio.wait_for(asyncio.gather(*futs), timeout)
        except TimeoutError:
            return {"code": 1, "timeout": True}
        worst = max(codes) if codes else 0
        return {"code": worst, "fmris": dict(zip(names, codes, strict=True))}

    # ------------------------------------------------------------ actions
    async def op_enable(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmris": [...], "temporary": bool, "recursive": bool}``."""
        names = self._many(req)
        temporary = arg(req, "temporary", bool, False)
        recursive = arg(req, "recursive", bool, False)
        targets = names
        if recursive:
            targets = sorted(set().union(*(self.engine.graph.closure(f, ("require_all", "require_any"))
                                           for f in names)))
        self._authorize(caller, targets, "enable", Right.ACTION if temporary else Right.VALUE)
        done = self.engine.enable(names, temporary=temporary, recursive=recursive)
        missing = sorted({t for f in done for _, t in self.engine.graph.missing_targets(f)}) if recursive else []
        return {"fmris": done, "absent": missing}

    async def op_disable(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmris": [...], "temporary": bool}``."""
        names = self._many(req)
        temporary = arg(req, "temporary", bool, False)
        self._authorize(caller, names, "disable", Right.ACTION if temporary else Right.VALUE)
        self.engine.disable(names, temporary=temporary)
        return {"fmris": names}

    async def op_restart(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmris": [...]}``: only online or degraded instances restart."""
        names = self._many(req)
        self._authorize(caller, names, "restart", Right.ACTION)
        done = self.engine.restart(names)
        return {"fmris": done, "skipped": [f for f in names if f not in done]}

    async def op_refresh(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmris": [...]}``: editing configuration becomes the running snapshot."""
        names = self._many(req)
        self._authorize(caller, names, "refresh", Right.ACTION)
        try:
            self.engine.refresh(names)
        except ManifestErrors as e:
            raise ApiError(f"refresh refused, the edited configuration is invalid:\n{e}", 1) from None
        return {"fmris": names}

    async def op_clear(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmris": [...]}``: maintenance back to service, degraded back to online."""
        names = self._many(req)
        self._authorize(caller, names, "clear", Right.ACTION)
        done = self.engine.clear(names)
        return {"fmris": done, "skipped": [f for f in names if f not in done]}

    async def op_mark(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmris": [...], "state": "maintenance"|"degraded", "temporary": bool, "immediate": bool}``."""
        names = self._many(req)
        state = arg(req, "state", str, choices=("maintenance", "degraded"))
        self._authorize(caller, names, "mark", Right.ACTION)
        done = self.engine.mark(names, state, temporary=arg(req, "temporary", bool, False),
                                immediate=arg(req, "immediate", bool, False))
        return {"fmris": done, "skipped": [f for f in names if f not in done]}

    async def op_milestone(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"target": "all"|"none"|FMRI}``."""
        authz.require_operator(caller, "change the milestone")
        target = arg(req, "target", str)
        if target not in ("all", "none"):
            target = self._one({"fmri": target})
        return {"milestone": self.engine.set_milestone(target)}

    # ------------------------------------------------------------ configuration
    async def op_import(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"files": [{"path": str, "content": str}], "dry_run": bool}`` -> imported services and warnings.

        All files are checked together (duplicates, cycles) and stored in one
        transaction: either every service is imported or none is. Parsing and checking
        run in a thread (``in_thread``), one at a time for ordinary users and one for
        root, so that a huge manifest never holds the event loop."""
        dry = arg(req, "dry_run", bool, False)
        if not dry:
            authz.require_operator(caller, "import manifests")
        files = req.get("files")
        if not isinstance(files, list) or not files:
            raise ApiError("bad request: import: 'files' must be a non-empty list", 2)
        for i, item in enumerate(files):
            if not isinstance(item, dict) or not isinstance(item.get("path"), str) or \
                    not isinstance(item.get("content"), str):
                raise ApiError(f"bad request: import: files[{i}] needs string 'path' and 'content'", 2)
        async with self._checking[caller.privileged]:
            specs, formats, errors = await in_thread(_load_all, files)
            if errors:
                raise ApiError("import refused, nothing was imported:\n" + "\n".join(errors), 1)
            try:
                if dry:
                    warnings = await in_thread(self.engine.check_import, specs, dict(self.engine.specs))
                else:
                    warnings = self.engine.import_specs(specs, formats)
            except ManifestErrors as e:
                raise ApiError("import refused, nothing was imported:\n" + str(e), 1) from None
        warnings = [w for s in specs for w in s.warnings] + warnings
        return {"services": [str(s.fmri) for s in specs],
                "instances": [str(s.fmri.with_instance(n)) for s in specs for n in s.instances],
                "warnings": warnings, "dry_run": dry}

    async def op_delete(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmri": service}``: stop its instances and remove it from the repository."""
        authz.require_operator(caller, "delete services")
        f = self._one(req, allow_service=True)
        service = str(fmri_mod.parse(f).service_fmri)
        try:
            await self.engine.delete_service(service)
        except EngineError as e:
            raise ApiError(str(e), e.code) from None
        return {"deleted": service}

    def _edit_target(self, caller: Caller, req: dict[str, Any], right: Right
                     ) -> tuple[str, str | None, dict[str, Any], str, list[str]]:
        f = self._one(req, allow_service=True)
        p = fmri_mod.parse(f)
        service = str(p.service_fmri)
        targets = [f] if p.instance else [str(p.with_instance(n)) for n in self.engine.specs[service].instances]
        prop = arg(req, "prop", str)
        if prop.count("/") != 1:
            raise ApiError(f"bad request: property {prop!r}: expected pg/name", 2)
        self._authorize(caller, targets, f"change {prop} of", right)
        return service, p.instance, copy.deepcopy(self.engine.editing[service]), prop, targets

    def _editing_spec(self, service: str, data: dict[str, Any]) -> ServiceSpec:
        try:
            return parse_service(data, self.engine.sources.get(service, ("", ""))[0])
        except ManifestErrors:
            return self.engine.specs[service]

    def _check_value_edit(self, caller: Caller, targets: list[str], spec: ServiceSpec, instance: str | None,
                          pg: str, name: str, ptype: str | None, existing: Property | None) -> None:
        """A value grant changes the values of existing properties of application groups, nothing more."""
        kind = authz.group_type(spec, pg, instance)
        if kind != "application":
            why = f"{pg} is a {kind} property group (a value grant covers application groups only)"
        elif existing is None:
            why = f"{pg}/{name} does not exist (a value grant changes existing properties only)"
        elif ptype is not None and ptype != existing.type:
            why = f"{pg}/{name} is of type {existing.type} (a value grant keeps a property's type)"
        else:
            return
        authz.require(caller, [(f, self._spec(f)) for f in targets], Right.OPERATOR, f"change {pg}/{name} of", why)

    async def op_setprop(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmri": pattern, "prop": "pg/name", "type": str?, "values": [..]}``.

        Changes the editing configuration only; ``svcadm refresh`` makes it run. Without a type, an
        existing property keeps its own (a new one is an astring)."""
        service, instance, data, prop, targets = self._edit_target(caller, req, Right.VALUE)
        ptype = arg(req, "type", str, None)
        values = arg(req, "values", list)
        if ptype is not None and ptype not in PROP_TYPES:
            raise ApiError(f"setprop: unknown property type {ptype!r} (known: {', '.join(PROP_TYPES)})", 2)
        pg, name = prop.split("/")
        spec = self._editing_spec(service, data)
        props = resolve_instance(spec, instance).properties if instance else spec.properties
        existing = props.get(pg, {}).get(name)
        if not caller.privileged:
            self._check_value_edit(caller, targets, spec, instance, pg, name, ptype, existing)
        if ptype is None and existing is not None:
            ptype = existing.type
        table = data
        if instance is not None:
            table = data.setdefault("instances", {}).setdefault(instance, {})
        if pg in ("start", "stop", "refresh") and name in _METHOD_KEYS:
            m = table.setdefault("methods", {}).setdefault(pg, {})
            key = _METHOD_KEYS[name]
            if len(values) != 1:
                raise ApiError(f"setprop: {prop} takes one value", 2)
            v = values[0]
            if key == "timeout":
                try:
                    v = int(v)
                except (TypeError, ValueError):
                    raise ApiError(f"setprop: {prop}: expected a count of seconds, got {v!r}", 2) from None
            elif key == "supplemental_groups":
                v = str(v).replace(",", " ").split()
            elif key == "no_new_privileges":
                try:
                    v = check_property_value("boolean", v)
                except ValueError as e:
                    raise ApiError(f"setprop: {prop}: {e}", 2) from None
            m[key] = v
            if "exec" not in m:
                raise ApiError(f"setprop: {pg} has no exec; set {pg}/exec first", 1)
        elif pg == "startd" and name in ("duration", "timeout_retry", "ignore_error"):
            if name == "duration":
                table["duration"] = values[0] if values else ""
            elif name == "timeout_retry":
                table.setdefault("restart", {})["timeout_retry"] = check_property_value("boolean", values[0])
            else:
                table.setdefault("restart", {})["ignore_error"] = [x for v in values for x in str(v).split(",") if x]
        elif pg == "restart" and name in ("limit", "period"):
            table.setdefault("restart", {})[name] = int(values[0]) if name == "limit" and \
                str(values[0]).lstrip("-").isdigit() else values[0]
        elif pg in ("general", "restarter"):
            raise ApiError(f"setprop: {prop} is managed by the daemon; use svcadm", 1)
        else:
            try:
                vals = [check_property_value(ptype or "astring", v) for v in values]
            except ValueError as e:
                raise ApiError(f"setprop: {prop}: {e}", 2) from None
            entry: Any = {"type": ptype or "astring", "values": vals}
            table.setdefault("properties", {}).setdefault(pg, {})[name] = entry
        try:
            self.engine.set_editing(service, data)
        except ManifestErrors as e:
            raise ApiError(f"setprop refused:\n{e}", 1) from None
        return {"fmri": service, "prop": prop, "pending_refresh": True}

    async def op_delprop(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmri": pattern, "prop": "pg/name"}``: remove a property of the manifest's own groups."""
        service, instance, data, prop, _ = self._edit_target(caller, req, Right.OPERATOR)
        pg, name = prop.split("/")
        table = data if instance is None else data.get("instances", {}).get(instance, {})
        props = table.get("properties", {})
        if pg not in props or name not in props[pg]:
            raise ApiError(f"delprop: {prop} is not one of this service's own properties", 1)
        del props[pg][name]
        if not props[pg]:
            del props[pg]
        if not props:
            table.pop("properties", None)
        self.engine.set_editing(service, data)
        return {"fmri": service, "prop": prop, "pending_refresh": True}

