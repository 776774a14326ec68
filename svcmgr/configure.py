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
from typing import Any

from svcmgr import authz
from svcmgr import fmri as fmri_mod
from svcmgr.api import Api, ApiError, Caller, arg
from svcmgr.authz import Right
from svcmgr.control import Operations
from svcmgr.engine import Engine, EngineError
from svcmgr.loader import is_xml, load_bytes
from svcmgr.manifest import ManifestErrors, parse_service
from svcmgr.properties import EditError, property_view, set_property
from svcmgr.spec import PROP_TYPES, Property, ServiceSpec, resolve_instance
from svcmgr.tasks import in_thread

__all__ = ["Configure"]


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
        for op in ("props", "listprop", "export", "import", "delete", "setprop", "delprop"):
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

        Changes the editing configuration only; ``svcadm refresh`` makes it run. Where the property
        goes and its type come from ``svcmgr.properties``: without a type, a property keeps its own
        (a new one of the manifest's own groups is an astring)."""
        service, instance, data, prop, targets = self._edit_target(caller, req, Right.VALUE)
        ptype = arg(req, "type", str, None)
        values = arg(req, "values", list)
        if ptype is not None and ptype not in PROP_TYPES:
            raise ApiError(f"setprop: unknown property type {ptype!r} (known: {', '.join(PROP_TYPES)})", 2)
        pg, name = prop.split("/")
        spec = self._editing_spec(service, data)
        cfg = resolve_instance(spec, instance or next(iter(spec.instances)))
        existing = (cfg.properties if instance else spec.properties).get(pg, {}).get(name)
        if not caller.privileged:
            self._check_value_edit(caller, targets, spec, instance, pg, name, ptype, existing)
        table = data if instance is None else data.setdefault("instances", {}).setdefault(instance, {})
        try:
            set_property(table, cfg, pg, name, ptype, values, existing)
        except EditError as e:
            raise ApiError(f"setprop: {e}", e.code) from None
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

