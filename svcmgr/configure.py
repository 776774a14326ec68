"""The configuration operations of the control socket: ``svccfg`` and ``svcprop``.

``import`` and ``delete`` change what is imported; ``setprop`` and ``delprop`` edit a
service's editing copy (``svcadm refresh`` makes it run); ``props``, ``listprop`` and
``export`` read the running snapshot or the editing copy. Properties are read and
written through one table (``svcmgr.properties``); protected values are shown only to
those ``svcmgr.authz`` lets read them.
"""

from __future__ import annotations

import asyncio
import copy
import re
from typing import Any

from svcmgr import authz
from svcmgr import fmri as fmri_mod
from svcmgr import properties as edit
from svcmgr.api import Api, ApiError, Caller, arg
from svcmgr.authz import Right
from svcmgr.control import Operations
from svcmgr.engine import Engine, EngineError
from svcmgr.loader import is_xml, load_bytes
from svcmgr.manifest import ManifestErrors, parse_service
from svcmgr.properties import EditError, View, attached_view, property_view, service_view, set_property
from svcmgr.snapshots import NAMES as SNAPSHOT_NAMES
from svcmgr.spec import PROP_TYPES, Property, ServiceSpec, resolve_instance
from svcmgr.tasks import in_thread

__all__ = ["Configure"]

_SNAPSHOT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.,-]{0,62}\Z")
_GROUP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.,+-]{0,119}\Z")


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
        fmt = "xml" if is_xml(blob) else "toml"
        specs.extend(got)
        formats.extend([fmt] * len(got))
    return specs, formats, errors


class Configure(Operations):
    """Registers the configuration operations on an Api."""

    def __init__(self, engine: Engine, api: Api) -> None:
        super().__init__(engine)
        #: one manifest check at a time off the loop for ordinary users, one for root
        self._checking = {False: asyncio.Semaphore(1), True: asyncio.Semaphore(1)}
        for op in ("props", "listprop", "listsnap", "export", "import", "delete", "setprop", "delprop", "addpg",
                   "revert"):
            api.register(op, getattr(self, f"op_{op}"))

    # ------------------------------------------------------------ read
    def _shown(self, caller: Caller, out: dict[str, Any], spec: ServiceSpec, instance: str | None) -> dict[str, Any]:
        """The view as this caller may see it: protected values hidden unless the caller may read them."""
        out["pg_types"] = {pg: authz.group_type(spec, pg, instance) for pg in out["pgs"]}
        if not authz.allowed(caller, spec, Right.READ):
            hidden = authz.redact_view(out["pgs"], spec, instance)
            if hidden:
                out["protected"] = hidden
        return out

    async def op_props(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmri": FMRI, "view": "running"|"current"|"attached", "snapshot": name?}`` -> the property
        groups of an instance or a service (``svcprop``): ``running`` (the default) its running snapshot
        with the instance's state, ``current`` its editing configuration (``-c``), ``attached`` only the
        groups the instance sets itself (``-C``), or a named snapshot of an instance (``-s``). Protected
        values (``protected``: their names) only for root and ``[authorizations.read]``; ``pg_types``
        says each group's type."""
        f = self._one(req, allow_service=True)
        p = fmri_mod.parse(f)
        service = str(p.service_fmri)
        view = arg(req, "view", str, "running", choices=("running", "current", "attached"))
        snapshot = arg(req, "snapshot", str, None)
        inst = self.engine.instances.get(f)
        if snapshot is not None:
            if p.instance is None:
                raise ApiError("Only instances have snapshots.", 1)
            spec = self._snapshot(service, snapshot)
            if p.instance not in spec.instances:
                raise ApiError("No such snapshot.", 1)
            pgs = property_view(resolve_instance(spec, p.instance))
        elif view == "running":
            spec = self.engine.specs[service] if inst is None else inst.config.spec
            pgs = service_view(spec) if inst is None else property_view(inst.config, inst)
        else:
            spec = self._editing_spec(service, self.engine.editing[service])
            if p.instance is None:
                pgs = service_view(spec)
            else:
                cfg = resolve_instance(spec, p.instance)
                pgs = property_view(cfg, inst) if view == "current" else attached_view(cfg, inst)
        return self._shown(caller, {"fmri": f, "pgs": pgs}, spec, p.instance)

    def _snapshot(self, service: str, name: str) -> ServiceSpec:
        """A named snapshot of a service (``svcmgr.snapshots``); ApiError as svcprop says it."""
        if not _SNAPSHOT_NAME.match(name):
            raise ApiError("Invalid snapshot name.", 1)
        if name == "running":
            return self.engine.specs[service]
        data = self.engine.snapshots.get(service, name)
        if data is None:
            raise ApiError("No such snapshot.", 1)
        try:
            return parse_service(data, self.engine.sources.get(service, ("", ""))[0])
        except ManifestErrors as e:
            raise ApiError(f"snapshot {name} of {service} no longer reads: {e}", 1) from None

    def _entity_view(self, spec: ServiceSpec, instance: str | None) -> tuple[View, dict[str, str]]:
        """The property groups a service, or one of its instances, has itself (not composed), with
        their types: what ``svccfg`` lists and edits."""
        inst = self.engine.instances.get(str(spec.fmri.with_instance(instance))) if instance else None
        pgs = service_view(spec) if instance is None else attached_view(resolve_instance(spec, instance), inst)
        for pg in authz.declared_types(spec, instance):
            pgs.setdefault(pg, {})
        return pgs, {pg: authz.group_type(spec, pg, instance) for pg in pgs}

    async def op_listprop(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmri": FMRI, "snapshot": name?}`` -> the property groups of a service or an instance
        as ``svccfg`` lists them: the editing configuration's, each entity's own (an instance's are not
        composed with its service's); or, for an instance, those of a snapshot. ``pg_types`` gives each
        group's type, ``pending_refresh`` whether edits wait for ``svcadm refresh``."""
        f = self._one(req, allow_service=True)
        p = fmri_mod.parse(f)
        service = str(p.service_fmri)
        snapshot = arg(req, "snapshot", str, None)
        if snapshot is not None:
            if p.instance is None:
                raise ApiError("Instance not selected.", 1)
            spec = self._snapshot(service, snapshot)
            if p.instance not in spec.instances:
                raise ApiError(f'No such snapshot "{snapshot}".', 1)
            pgs = property_view(resolve_instance(spec, p.instance))
            types = {pg: authz.group_type(spec, pg, p.instance) for pg in pgs}
        else:
            spec = self._editing_spec(service, self.engine.editing[service])
            pgs, types = self._entity_view(spec, p.instance)
        pending = self.engine.editing[service] != self.engine.specs[service].to_dict()
        out = self._shown(caller, {"fmri": f, "pgs": pgs, "pending_refresh": pending}, spec, p.instance)
        out["pg_types"] = types
        return out

    async def op_listsnap(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmri": instance}`` -> ``{"snapshots": {name: time taken}}`` (``svccfg listsnap``)."""
        f = self._one(req)
        service = str(fmri_mod.parse(f).service_fmri)
        taken = self.engine.snapshots.taken(service)
        taken["running"] = self.engine.instances[f].stime if f in self.engine.instances else 0.0
        return {"fmri": f, "snapshots": {n: taken[n] for n in SNAPSHOT_NAMES if n in taken}}

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

    # ------------------------------------------------------------ edit
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
        """``{"fmri": service or instance}``: stop its instances and remove it from the repository (an
        instance of a service with others: that instance alone)."""
        authz.require_operator(caller, "delete services")
        f = self._one(req, allow_service=True)
        p = fmri_mod.parse(f)
        service = str(p.service_fmri)
        if p.instance is not None and len(self.engine.specs[service].instances) > 1:
            self.engine.delete_instance(f)
            return {"deleted": f}
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

    def _store(self, service: str, data: dict[str, Any], what: str) -> None:
        """The edited manifest becomes the editing configuration, or ApiError saying why it cannot."""
        try:
            self.engine.set_editing(service, data)
        except ManifestErrors as e:
            raise ApiError(f"{what} refused:\n{e}", 1) from None

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

        Changes the editing configuration only; ``svcadm refresh`` makes it run. The group must exist on
        the service or instance named (``addpg`` adds one). Where the property goes and its type come from
        ``svcmgr.properties``: without a type, a property keeps its own (or its service's); a new one of
        the manifest's own groups needs one."""
        service, instance, data, prop, targets = self._edit_target(caller, req, Right.VALUE)
        ptype = arg(req, "type", str, None)
        values = arg(req, "values", list)
        if ptype is not None and ptype not in PROP_TYPES:
            raise ApiError(f"setprop: unknown property type {ptype!r} (known: {', '.join(PROP_TYPES)})", 2)
        pg, name = prop.split("/")
        spec = self._editing_spec(service, data)
        if pg not in self._entity_view(spec, instance)[0]:
            raise ApiError(f'No such property group "{pg}".', 1)
        cfg = resolve_instance(spec, instance or "")
        level = spec.instances[instance].properties if instance in spec.instances else {}
        existing = (level if instance else spec.properties).get(pg, {}).get(name) or (
            spec.properties.get(pg, {}).get(name) if instance else None)  # an instance takes the service's type
        if not caller.privileged:
            self._check_value_edit(caller, targets, spec, instance, pg, name, ptype, existing)
        table = data if instance is None else data.setdefault("instances", {}).setdefault(instance, {})
        try:
            set_property(table, cfg, pg, name, ptype, values, existing)
        except EditError as e:
            raise ApiError(str(e), e.code) from None
        self._store(service, data, "setprop")
        return {"fmri": service, "prop": prop, "pending_refresh": True}

    async def op_delprop(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmri": pattern, "prop": "pg" | "pg/name"}``: remove a property group or a property of the
        service or instance named (``svccfg delprop``, ``delpg``); root only."""
        f = self._one(req, allow_service=True)
        p = fmri_mod.parse(f)
        service = str(p.service_fmri)
        authz.require_operator(caller, f"change the properties of {f}")
        pg, _, name = arg(req, "prop", str).partition("/")
        data = copy.deepcopy(self.engine.editing[service])
        spec = self._editing_spec(service, data)
        try:
            edit.delete(data, p.instance, resolve_instance(spec, p.instance or ""), pg, name or None)
        except EditError as e:
            raise ApiError(str(e), e.code) from None
        shown = f"{pg}/{name}" if name else pg
        self._store(service, data, f"deleting {shown}")  # svccfg's delpg and delprop both come here
        return {"fmri": f, "prop": shown, "pending_refresh": True}

    async def op_addpg(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmri": pattern, "pg": name, "type": str}``: add a property group to the service or instance
        named (``svccfg addpg``); root only."""
        f = self._one(req, allow_service=True)
        p = fmri_mod.parse(f)
        service = str(p.service_fmri)
        authz.require_operator(caller, f"add property groups to {f}")
        pg, ptype = arg(req, "pg", str), arg(req, "type", str)
        if not _GROUP_NAME.match(pg) or not _GROUP_NAME.match(ptype):
            raise ApiError("Name, type, or flags are invalid.", 1)
        data = copy.deepcopy(self.engine.editing[service])
        spec = self._editing_spec(service, data)
        if pg in self._entity_view(spec, p.instance)[0]:
            raise ApiError("Property group already exists.", 1)
        edit.add_group(data, p.instance, resolve_instance(spec, p.instance or ""), pg, ptype)
        self._store(service, data, "addpg")
        return {"fmri": f, "pg": pg, "pending_refresh": True}

    async def op_revert(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"fmri": instance, "snapshot": name}``: the editing configuration of the instance's service
        becomes that of a snapshot (``svccfg revert``), the one it replaces kept as ``previous``; the
        instances' enable stays as it is. Root only; ``svcadm refresh`` makes it run."""
        f = self._one(req)
        service = str(fmri_mod.parse(f).service_fmri)
        authz.require_operator(caller, f"revert {f}")
        name = arg(req, "snapshot", str)
        if not _SNAPSHOT_NAME.match(name):
            raise ApiError(f'Invalid snapshot name "{name}".', 1)
        old = self.engine.editing[service]
        data = copy.deepcopy(self._snapshot(service, name).to_dict())
        data["enabled"] = old.get("enabled", True)
        for inst, table in data.get("instances", {}).items():
            if "enabled" in old.get("instances", {}).get(inst, {}):
                table["enabled"] = old["instances"][inst]["enabled"]
        self._store(service, data, "revert")
        self.engine.snapshots.take(service, "previous", old)
        return {"fmri": f, "snapshot": name, "pending_refresh": True}
