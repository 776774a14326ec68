"""The catalog of services: names, and importing, refreshing and deleting configuration.

Part of the engine (``svcmgr.engine.Engine`` mixes it in). ``lookup`` and the
``resolve_*`` functions turn an FMRI or an abbreviation into instances, as SMF
does. An import is checked whole first (duplicates, dependency cycles, resource
controls this host cannot apply) and applied all or nothing; a running instance
whose configuration changed is refreshed, one that left its manifest is stopped and
dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from svcmgr import fmri as fmri_mod
from svcmgr.eventclasses import SVC_IMPORTED, SVC_REFRESHED, state_class
from svcmgr.graph import Graph, find_cycles, services_named
from svcmgr.machine import Ev, Phase
from svcmgr.manifest import ManifestError, ManifestErrors, parse_service
from svcmgr.repository import normal_text
from svcmgr.services import EngineError
from svcmgr.spec import InstanceConfig, ServiceSpec, resolve_instance

if TYPE_CHECKING:
    from svcmgr.bus import Bus
    from svcmgr.instance import Instance
    from svcmgr.process import ProcessLayer
    from svcmgr.repository import Repository
    from svcmgr.snapshots import Snapshots
    from svcmgr.tasks import Nursery

__all__ = ["Catalog", "Walk"]


@functools.lru_cache(maxsize=1 << 16)
def _parsed(name: str) -> tuple[fmri_mod.FMRI, str]:
    """A known FMRI parsed, and its normal form: a look-up walks every instance, and parsing each anew cost
    2-3 ms at 1,000 (an FMRI is immutable, so one parse serves every look-up)."""
    f = fmri_mod.parse(name)
    return f, str(f)


@dataclass
class Walk:
    """What a command's operands name, as libscf's ``scf_walk_fmri`` reports it: the matches (each
    once, in operand order), the operands that name nothing, and the operands other than a full
    instance FMRI or a glob that name several instances (``svcadm`` refuses those)."""

    fmris: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)  # operand -> the instances it names


class Catalog:
    """Names and configuration (a part of ``Engine``)."""

    # What this part uses of the engine's state...

    instances: dict[str, Instance]
    specs: dict[str, ServiceSpec]
    editing: dict[str, dict[str, Any]]
    sources: dict[str, tuple[str, str]]
    repo: Repository
    snapshots: Snapshots
    bus: Bus
    restarter: ProcessLayer
    nursery: Nursery
    # ... and of the other parts:
    dispatch: Callable[..., bool]
    new_instance: Callable[[InstanceConfig], Instance]
    rebuild_graph: Callable[[], None]
    stop_health: Callable[[Instance], None]
    mark_dirty: Callable[[Iterable[str]], None]
    propagate_stop: Callable[[Instance, str], None]
    boot_imported: Callable[[Iterable[str]], None]

    def lookup(self, pattern: str, *, services: bool = False) -> list[str]:
        """Instance FMRIs (or service FMRIs) named by an abbreviation; raises EngineError."""
        if pattern in self.instances and pattern.startswith("svc:/"):
            return [pattern]  # a full instance FMRI names itself alone: no need to parse every candidate
        names: Iterable[str] = [*self.instances, *self.specs] if services else self.instances
        text = pattern.strip()
        if text and not text.startswith(("svc:", "/")) and not fmri_mod.is_glob(text):
            # an abbreviation is a part of the FMRI (fmri.match): only the FMRIs that hold it can match
            cands = [c for c, normal in map(_parsed, names) if text in normal]
        else:
            cands = [_parsed(f)[0] for f in names]
        try:
            hits = fmri_mod.match(pattern, cands)
        except fmri_mod.FmriError as e:
            raise EngineError(str(e), 2) from None
        if not hits:
            raise EngineError(f"{pattern}: no service or instance matches", 1)
        return [str(h) for h in hits]

    def walk(self, patterns: list[str], *, services: bool = False, prefer_services: bool = False) -> Walk:
        """The instances each operand names (``fmri.match``). With ``services``, as ``svcprop`` walks:
        a service's full FMRI names the service itself, and an instance an operand names hides its
        service (so an abbreviation of a service with one instance names that instance); with
        ``prefer_services`` too, as ``svccfg select`` walks: a service hides its instances instead."""
        insts = [_parsed(f)[0] for f in self.instances]
        cands = insts + ([_parsed(s)[0] for s in self.specs] if services else [])
        out = Walk()
        for p in patterns:
            hits = fmri_mod.match(p, cands)
            if services and prefer_services:
                hits = [h for h in hits if h.instance is None or h.service_fmri not in hits]
            elif services:
                whole = p.strip().startswith("svc:") and not fmri_mod.is_glob(p)
                named = [h for h in hits if h.instance is None] if whole else []
                hits = named if len(named) == 1 else [
                    h for h in hits if h.instance or not any(i.service == h.service for i in hits if i.instance)]
            if not hits:
                out.unmatched.append(p)
                continue
            if not fmri_mod.is_glob(p) and sum(1 for h in hits if h.instance) > 1:
                out.ambiguous[p] = [str(h) for h in hits if h.instance]
            out.fmris.extend(f for f in map(str, hits) if f not in out.fmris)
        return out

    def resolve_one(self, pattern: str, *, allow_service: bool = False) -> str:
        """Exactly one instance (or service) named by ``pattern``; an ambiguous one lists the candidates."""
        try:
            want = fmri_mod.parse(pattern)
        except fmri_mod.FmriError as e:
            raise EngineError(str(e), 2) from None
        hits = self.lookup(pattern, services=allow_service)
        if allow_service and want.instance is None:
            svcs = sorted({str(fmri_mod.parse(h).service_fmri) for h in hits})
            if len(svcs) == 1:
                return svcs[0]
            raise EngineError(f"{pattern}: ambiguous, it matches: {', '.join(svcs)}", 1)
        insts = [h for h in hits if fmri_mod.parse(h).instance]
        if len(insts) != 1:
            if not insts:
                raise EngineError(f"{pattern}: names a service with no instance", 1)
            raise EngineError(f"{pattern}: ambiguous, it matches: {', '.join(insts)}", 1)
        return insts[0]

    def resolve_many(self, pattern: str) -> list[str]:
        """Instances named by a pattern; a service pattern names all of its instances."""
        try:
            want = fmri_mod.parse(pattern) if not any(c in pattern for c in "*?[") else None
        except fmri_mod.FmriError as e:
            raise EngineError(str(e), 2) from None
        insts = self.lookup(pattern)  # instances only: each is one of ours, its service known without parsing
        if want is not None and len({self.instances[h].service for h in insts}) > 1:
            services = sorted({self.instances[h].service for h in insts})
            raise EngineError(f"{pattern}: ambiguous, it matches: {', '.join(services)}", 1)
        return insts

    def check_import(self, specs: list[ServiceSpec], existing: Mapping[str, ServiceSpec] | None = None) -> list[str]:
        """Refuse duplicates and cycles among these specs and what is already imported (``existing``: a
        copy of the imported specs, so that the check may run in another thread); return warnings."""
        _names, resolved, configs = self._check(specs, existing)
        return _missing(specs, Graph(self._configs(specs, resolved, existing) if configs is None else configs))

    #: The specs (service FMRI -> spec) of the last check in the loop's thread that found no cycle (read by
    #: ``_cycle_free``; replaced, never changed).
    _acyclic: Mapping[str, ServiceSpec] = {}

    def _check(self, specs: list[ServiceSpec], existing: Mapping[str, ServiceSpec] | None
               ) -> tuple[list[str], list[list[InstanceConfig]], dict[str, InstanceConfig] | None]:
        """``check_import``'s refusals (ManifestErrors); each spec's service FMRI (its text, made once: the
        import keys the catalog's maps with these very strings), each spec's instances' configuration (in
        ``specs``' order), resolved once for the check and the import, and every instance's once imported
        when the check needed them (``_configs``), else None."""
        errors: list[ManifestError] = []
        seen: dict[str, str] = {}
        names = [str(s.fmri) for s in specs]
        for s, f in zip(specs, names, strict=True):
            if f in seen:
                errors.append(ManifestError(s.source, "name", f"{f} is also declared in {seen[f]}"))
            seen[f] = s.source
        resolved = [[resolve_instance(s, n) for n in s.instances] for s in specs]
        for s, cfgs in zip(specs, resolved, strict=True):
            for cfg in cfgs:
                errors.extend(ManifestError(s.source, f"resources.{key}", f"{cfg.fmri}: {why}")
                              for key, why in self.restarter.refusals(cfg))
        if errors:
            raise ManifestErrors(errors)
        configs = None
        if existing is not None or not self._cycle_free(specs, resolved):
            configs = self._configs(specs, resolved, existing)
            cycles = find_cycles(configs)
            if cycles:
                by_fmri = {str(s.fmri): s.source for s in specs}
                for cyc in cycles:
                    src = next((by_fmri[str(fmri_mod.parse(c).service_fmri)] for c in cyc
                                if str(fmri_mod.parse(c).service_fmri) in by_fmri), "")
                    errors.append(ManifestError(src, "dependencies", "dependency cycle: " + " -> ".join(cyc)))
                raise ManifestErrors(errors)
        if existing is None:
            self._acyclic = {**self.specs, **dict(zip(names, specs, strict=True))}
        return names, resolved, configs

    def _configs(self, specs: list[ServiceSpec], resolved: list[list[InstanceConfig]],
                 existing: Mapping[str, ServiceSpec] | None) -> dict[str, InstanceConfig]:
        """The configuration of every instance once ``specs`` (their instances ``resolved``) are imported."""
        new = {str(s.fmri) for s in specs}
        configs = {str(c.fmri): c for f, sp in (self.specs if existing is None else existing).items()
                   if f not in new for c in (self._resolved(sp, n, existing is None) for n in sp.instances)}
        configs.update((str(c.fmri), c) for cfgs in resolved for c in cfgs)
        return configs

    def _cycle_free(self, specs: list[ServiceSpec], resolved: list[list[InstanceConfig]]) -> bool:
        """True when importing ``specs`` surely closes no cycle, known without the graph of every instance
        (``find_cycles`` of it would find none); False when only that can tell.

        The specs imported before that stay are those of the last check that found no cycle (the very
        objects: a spec is immutable), or some of them: among their instances there is no cycle. A cycle
        then runs through an instance of ``specs``, and if nothing imported before depends on one of
        them (by its dependencies, or by a ``dependents`` of ``specs`` naming it), it runs among them
        alone, with the edges it has in the whole graph: ``find_cycles`` of theirs finds it. Each part of a
        boot's import checked every instance imported before it again."""
        new = {str(s.fmri) for s in specs}
        for f, sp in self.specs.items():
            if f in new:
                continue
            if self._acyclic.get(f) is not sp:
                return False
            deps = [*sp.dependencies, *(d for o in sp.instances.values() for d in o.dependencies)]
            if not services_named(deps).isdisjoint(new):
                return False
        if any(not services_named(s.dependents) <= new for s in specs):
            return False
        return not find_cycles({str(c.fmri): c for cfgs in resolved for c in cfgs})

    def _resolved(self, spec: ServiceSpec, name: str, mine: bool) -> InstanceConfig:
        """``resolve_instance(spec, name)``: an imported instance's configuration when it was resolved from
        this very spec (``mine``: ``spec`` is one of ``self.specs``, read in the loop's thread), as every
        instance's is (``_apply_spec``, ``new_instance``); a spec is immutable and its resolving pure, so
        that is the same configuration. Each part of a boot's import checked every instance imported
        before it again, resolving each anew."""
        if mine:
            inst = self.instances.get(str(spec.fmri.with_instance(name)))
            if inst is not None and inst.config.spec is spec:
                return inst.config
        return resolve_instance(spec, name)

    def missing_dependencies(self, specs: Iterable[ServiceSpec]) -> list[str]:
        """A warning for each dependency of these imported specs that names what is not imported."""
        return _missing(specs, self.graph)

    def import_specs(self, specs: list[ServiceSpec], formats: list[str]) -> list[str]:
        """Store and apply specs, all or nothing; return warnings."""
        names, resolved, _configs = self._check(specs, None)
        changed = []  # (spec, its FMRI, format, its normal form, its instances' configuration)
        for s, f, fmt, cfgs in zip(specs, names, formats, resolved, strict=True):
            data = s.raw  # its normal form (``to_dict``) itself, not a copy: see the editing copy below
            if f not in self.specs or self.editing.get(f) != data or self.specs[f].to_dict() != data:
                changed.append((s, f, fmt, data, cfgs))
        stored = [(f, s.source, fmt, normal_text(data)) for s, f, fmt, data, _ in changed]  # each text once
        self.repo.import_normal(stored)
        self.snapshots.imported((f, text) for f, _, _, text in stored)
        for s, f, fmt, data, cfgs in changed:
            # the editing copy starts as the imported manifest, the very mapping its spec keeps (a boot kept a
            # copy of each): neither is changed in place (an edit is made on a deep copy and replaces it)
            self.editing[f] = data
            self.sources[f] = (s.source, fmt)
            self._apply_spec(s, configs=cfgs, name=f)
        self.rebuild_graph()
        self.boot_imported(str(s.fmri) for s in specs)
        self.mark_dirty(self.instances)
        self.bus.emit(SVC_IMPORTED, "", services=[str(s.fmri) for s in specs])
        return self.missing_dependencies(specs)  # the graph now holds what check_import's would

    def _apply_spec(self, spec: ServiceSpec, refreshing: set[str] | None = None,
                    configs: list[InstanceConfig] | None = None, name: str | None = None) -> None:
        """Apply a service's configuration; its running instances (those in ``refreshing`` when given: a
        refresh names instances) are refreshed, which restarts their restart_on=refresh dependents.
        ``configs``: its instances' configuration, when the caller has resolved them already (in order);
        ``name``: its service FMRI's text, when the caller has made it (one string for the catalog's maps)."""
        f = str(spec.fmri) if name is None else name
        old = self.specs.get(f)
        self.specs[f] = spec
        if configs is None:
            configs = [resolve_instance(spec, name) for name in spec.instances]
        for cfg in configs:
            inst = self.instances.get(str(cfg.fmri))
            if inst is None:
                self.new_instance(cfg)
            else:
                inst.config = cfg
                inst.history.configure(cfg.restart.limit, cfg.restart.period)
                if inst.log is not None:
                    inst.log.max_size = cfg.log.max_size
                    inst.log.keep = cfg.log.keep
                if inst.phase in (Phase.ONLINE, Phase.DEGRADED) and (refreshing is None or inst.fmri in refreshing):
                    self.dispatch(inst, Ev.REFRESH)
                    self.propagate_stop(inst, "refresh")
        if old is not None:
            for name in old.instances:
                if name not in spec.instances:
                    self._drop_instance(str(old.fmri.with_instance(name)))

    def _drop_instance(self, f: str) -> None:
        inst = self.instances.pop(f, None)
        if inst is None:
            return

        old_job = inst.job

        async def stop_and_close() -> None:
            """The instance left the manifest: end its processes (it is no longer in the table,
            so no state machine is fed any more), then its log."""
            if old_job is not None and not old_job.done():
                old_job.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await old_job
            self.stop_health(inst)
            if inst.contract is not None:
                await self.restarter.stop(inst)
            if inst.log is not None:
                inst.log.close(remove_fifo=True)

        self.nursery.start(stop_and_close(), name=f"drop {f}")
        self.repo.delete_instances([f])
        self.bus.emit(state_class("deleted"), f, state="deleted")

    async def delete_service(self, service: str) -> None:
        spec = self.specs.get(service)
        if spec is None:
            raise EngineError(f"{service}: not imported")
        fmris = [str(spec.fmri.with_instance(n)) for n in spec.instances]
        for f in fmris:
            inst = self.instances[f]
            if inst.phase not in (Phase.DISABLED, Phase.MAINTENANCE, Phase.OFFLINE, Phase.UNINITIALIZED):
                inst.enabled_temp = False
                self.dispatch(inst, Ev.DISABLE, "Being deleted.")
        for f in fmris:
            inst = self.instances[f]
            if inst.job is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await inst.job
        for f in fmris:
            inst = self.instances.pop(f)
            self.stop_health(inst)
            if inst.log is not None:
                inst.log.close(remove_fifo=True)
            self.bus.emit(state_class("deleted"), f, state="deleted")
        del self.specs[service]
        self.editing.pop(service, None)
        self.sources.pop(service, None)
        self.repo.delete_service(service)
        self.snapshots.forget(service)
        self.rebuild_graph()
        self.mark_dirty(self.instances)

    def delete_instance(self, fmri: str) -> None:
        """Remove one instance of a service that has others (``svccfg delete`` of an instance): it is
        stopped and dropped, and leaves the running and the editing manifests both."""
        p = fmri_mod.parse(fmri)
        service = str(p.service_fmri)
        spec = self.specs[service]
        running = copy.deepcopy(spec.to_dict())
        editing = copy.deepcopy(self.editing[service])
        for data in (running, editing):
            data.get("instances", {}).pop(p.instance, None)
        new = parse_service(running, spec.source)
        _source, fmt = self.sources.get(service, (spec.source, "toml"))
        self.repo.import_services([(service, spec.source, fmt, running)])
        self.repo.set_editing(service, editing)
        self.specs[service] = new
        self.editing[service] = editing
        self._drop_instance(fmri)
        self.rebuild_graph()
        self.mark_dirty(self.instances)

    def set_editing(self, service: str, data: dict[str, Any]) -> None:
        source, _fmt = self.sources.get(service, ("", "toml"))
        parse_service(data, source)  # raises ManifestErrors
        self.repo.set_editing(service, data)
        self.editing[service] = data

    def refresh(self, fmris: list[str]) -> list[str]:
        """Copy editing configuration into the running snapshot and refresh the instances."""
        services = sorted({str(fmri_mod.parse(f).service_fmri) for f in fmris})
        for s in services:
            data = self.editing.get(s)
            if data is None:
                continue
            source, _ = self.sources.get(s, ("", "toml"))
            spec = parse_service(data, source)
            self.check_import([spec])
            self.repo.refresh(s)
            self._apply_spec(spec, set(fmris))
        self.rebuild_graph()
        self.mark_dirty(self.instances)
        self.bus.emit(SVC_REFRESHED, "", services=services)
        return fmris


def _missing(specs: Iterable[ServiceSpec], g: Graph) -> list[str]:
    warnings = []
    for s in specs:
        for n in s.instances:
            f = str(s.fmri.with_instance(n))
            for d, t in g.missing_targets(f):
                warnings.append(f"{s.source}: {f}: dependency {d.name!r} names {t}, "
                                "which is not imported (the instance will wait for it)"
                                if d.grouping in ("require_all", "require_any") else
                                f"{s.source}: {f}: {d.grouping} dependency {d.name!r} names {t}, "
                                "which is not imported (ignored until it is)")
    return warnings
