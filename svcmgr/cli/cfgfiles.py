"""svccfg's manifest and profile commands: validate, import, export, archive, inventory, delete,
apply and extract (``svcmgr.cli.svccfg``).

A manifest is TOML or SMF XML (``svcmgr.loader``); a profile is an SMF XML
``service_bundle`` of type ``profile``, read with the hardened parser: ``apply`` sets
each instance's enable and the properties it names (creating a group the entity lacks),
then refreshes what it changed; ``extract`` writes one from the instances' enable.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn
from xml.sax.saxutils import escape

from svcmgr.cli.cfglex import Token
from svcmgr.cli.cfgsession import Handler, Session, redirect, words, write_out
from svcmgr.client import ClientError, collect_manifest_files

__all__ = ["USAGE"]

MAX_MANIFEST = 4 * 1024 * 1024
DTD = "/usr/share/lib/xml/dtd/service_bundle.dtd.1"


def _files(s: Session, paths: list[str]) -> list[dict[str, str]]:
    out = []
    for path in collect_manifest_files(paths):
        try:
            with open(path, "rb") as f:
                blob = f.read(MAX_MANIFEST + 1)
        except OSError as e:
            s.fail(f"Unable to stat file {path}.  {e.strerror}")
        if len(blob) > MAX_MANIFEST:
            s.fail(f"{path}: file is larger than 4 MiB")
        try:
            content = blob.decode("utf-8")  # as svcmgrd --manifests reads it: no U+FFFD put in silently
        except UnicodeDecodeError as e:
            s.fail(f"{path}: not UTF-8 text: byte 0x{blob[e.start]:02x} at offset {e.start}")
        out.append({"path": os.path.abspath(path), "content": content})
    if not out:
        s.fail(f"no manifest files in {' '.join(paths)}")
    return out


def validate_local(s: Session, paths: list[str]) -> bool:
    """Validate without a daemon: each file, then duplicates and cycles among them."""
    # Here, not at the top: the validators and networkx (graph) cost the other svccfg commands' start-up.
    from svcmgr.graph import Graph, find_cycles
    from svcmgr.loader import load_file
    from svcmgr.manifest import ManifestErrors
    from svcmgr.spec import resolve_instance

    specs = []
    bad = False
    for path in collect_manifest_files(paths):
        try:
            got = load_file(path)
        except ImportError as e:  # an XML manifest, and no hardened parser here
            _lacking(s, "validate", e)
        except ManifestErrors as e:
            bad = True
            for err in e.errors:
                s.say(str(err))
            continue
        specs.extend(got)
        for spec in got:
            for w in spec.warnings:
                s.say(f"warning: {w}")
    seen: dict[str, str] = {}
    for spec in specs:
        f = str(spec.fmri)
        if f in seen:
            s.say(f"{spec.source}: name: {f} is also declared in {seen[f]}")
            bad = True
        seen[f] = spec.source
    configs = {str(c.fmri): c for spec in specs for c in (resolve_instance(spec, n) for n in spec.instances)}
    for cyc in find_cycles(configs):
        s.say(f"dependency cycle: {' -> '.join(cyc)}")
        bad = True
    g = Graph(configs)
    for f in sorted(configs):
        for d, t in g.missing_targets(f):
            s.say(f"warning: {configs[f].spec.source}: {f}: dependency {d.name!r} names {t}, "
                  "which is not among these manifests")
    return not bad


def _validate(s: Session, args: list[Token]) -> None:
    """validate [file ... | fmri]: manifest files (checked together, svcmgr accepts several), or an
    instance's editing configuration."""
    target = words(s, args, "validate [file | fmri]")
    files = [t.removeprefix("file:") for t in target if t.startswith("file:") or
             (os.path.exists(t) and not t.startswith("svc:"))]
    if target and len(files) == len(target):
        try:
            res = s.client.call("import", files=_files(s, files), dry_run=True)
        except ClientError as e:
            if "not running" not in str(e):
                s.fail(str(e))
            if not validate_local(s, files):
                s.fail("Validation failed.")
            return
        for w in res["warnings"]:
            s.say(f"warning: {w}")
        return
    if len(target) > 1:
        s.fail("Syntax error.")
    if not target and s.instance is None:
        s.fail("No instance selected")
    fmri = target[0] if target else s.instance
    res = s.call("match", patterns=[fmri])
    if res["unmatched"] or len(res["fmris"]) != 1:
        s.fail(f"Pattern '{fmri}' doesn't match any instances" if res["unmatched"] else
               f"Pattern '{fmri}' matches multiple instances")
    s.call("listprop", fmri=res["fmris"][0])  # reading it checks it


def _import(s: Session, args: list[Token]) -> None:
    """import [-n] [-V] file|dir ...: -n only checks (svcmgr's meaning); every import is validated."""
    got = words(s, args, "import [-n] [-V] file ...", 1)
    dry = "-n" in got
    paths = [w for w in got if w not in ("-n", "-V")]
    if not paths:
        s.fail("Syntax error.")
    res = s.call("import", files=_files(s, paths), dry_run=dry)
    for w in res["warnings"]:
        s.say(f"warning: {w}")
    for f in res["services"]:
        print(f"{'checked' if dry else 'imported'} {f}")


def _service_of(s: Session, name: str) -> str:
    res = s.call("match", patterns=[name], services=True, prefer_services=True)
    if res["unmatched"]:
        s.fail(f"Pattern '{name}' doesn't match any instances or services")
    services = sorted({f if f.count(":") == 1 else f.rsplit(":", 1)[0] for f in res["fmris"]})
    if len(services) > 1:
        s.fail("\n".join([f"Pattern '{name}' matches multiple instances:", *(f"\t{f}" for f in res["fmris"])]))
    return services[0]


def _lacking(s: Session, command: str, e: ImportError) -> NoReturn:
    """A library this interpreter cannot import (the commands run under any python3; the TOML writer and
    the hardened XML parser are svcmgr's dependencies): say which, and what works without it."""
    instead = ", or use export --json" if command in ("export", "archive") else ""
    s.fail(f"{command} needs the Python module {e.name}, which {sys.executable} cannot import: run svccfg "
           f"from svcmgr's own installation{instead}")


def _export(s: Session, args: list[Token]) -> None:
    """export [-a] [--xml | --json] FMRI [> file]: the service's manifest (TOML by default)."""
    got, target = redirect(s, args, "export [-a] [--xml | --json] service_FMRI [> file]")
    flags = {w for w in got if w in ("-a", "--xml", "--json")}
    names = [w for w in got if w not in flags]
    if len(names) != 1:
        s.fail("Syntax error.")
    res = s.call("export", fmri=_service_of(s, names[0]))
    if res.get("protected") and "-a" in flags:
        s.fail("Permission denied.")
    if "--json" in flags:
        text = json.dumps(res["manifest"], indent=2) + "\n"
    elif "--xml" in flags:
        try:
            from svcmgr.smfxml.export import export_xml  # the XML writer costs every other command's start
        except ImportError as e:
            _lacking(s, "export", e)
        text = export_xml(res["manifest"])
    else:
        try:
            import tomli_w  # here: the commands run under a plain python3 too, which may not have it
        except ImportError as e:
            _lacking(s, "export", e)
        text = f"# {res['fmri']}, imported from {res['source'] or '-'}\n" + tomli_w.dumps(res["manifest"])
    if res.get("protected"):
        s.say(f"{len(res['protected'])} protected value(s) exported as (protected): reading them needs root "
              "or the service's [authorizations.read]")
    write_out(s, text, target)


def _archive(s: Session, args: list[Token]) -> None:
    """archive [-a] [> file]: every service's manifest in one SMF XML bundle."""
    try:
        from svcmgr.smfxml.export import archive_xml  # the XML writer costs every other command's start
    except ImportError as e:
        _lacking(s, "archive", e)
    got, target = redirect(s, args, "archive [-a] [> file]")
    if set(got) - {"-a"}:
        s.fail("Syntax error.")
    services = sorted({i["fmri"].rsplit(":", 1)[0] for i in s.call("list")})
    replies = [s.call("export", fmri=f) for f in services]
    if "-a" in got and any(r.get("protected") for r in replies):
        s.fail("Permission denied.")
    write_out(s, archive_xml([r["manifest"] for r in replies]), target)


def _inventory(s: Session, args: list[Token]) -> None:
    """inventory file: the FMRIs a manifest describes, each service's instances before it."""
    from svcmgr.loader import load_file  # the validators cost every other command's start
    from svcmgr.manifest import ManifestErrors

    (path,) = words(s, args, "inventory file", 1, 1)
    try:
        specs = load_file(path)
    except ImportError as e:  # an XML manifest, and no hardened parser here
        _lacking(s, "inventory", e)
    except ManifestErrors as e:
        s.fail(str(e))
    for spec in specs:
        for n in spec.instances:
            print(spec.fmri.with_instance(n))
        print(spec.fmri)


def _delete(s: Session, args: list[Token]) -> None:
    """delete [-f] name|fmri: stop and remove a service, or one instance of it (svcmgr stops what it
    removes, so -f is accepted and changes nothing)."""
    got = words(s, args, "delete [-f] {name | fmri}", 1, 2)
    names = [w for w in got if w != "-f"]
    if len(names) != 1 or (len(got) == 2 and got[0] != "-f"):
        s.fail("Syntax error.")
    name = names[0]
    if s.snapshot is not None:
        s.fail("Cannot modify snapshots.")
    child = (f"{s.service}:{name}" if s.service and s.instance is None else
             f"svc:/{name}" if s.service is None else None)
    fmris = s.call("match", patterns=[child], services=True)["fmris"] if child else []
    if child not in fmris:
        res = s.call("match", patterns=[name], services=True, prefer_services=True)
        if res["unmatched"]:
            s.fail(f"Pattern '{name}' doesn't match any instances or services")
        if len(res["fmris"]) > 1:
            s.fail("\n".join([f"Pattern '{name}' matches multiple instances:", *(f"\t{f}" for f in res["fmris"])]))
        child = res["fmris"][0]
    gone = s.call("delete", fmri=child)["deleted"]
    if s.selected and (s.selected == gone or s.selected.startswith(f"{gone}:")):
        s.service = s.instance = None
    if s.verbose:
        print(f"deleted {gone}")


# ---------------------------------------------------------------- profiles

def _profile(s: Session, path: str) -> list[dict[str, Any]]:
    """A profile's services: [{name, instances: [{name, enabled, groups}], groups}]; groups are
    [{name, type, props: [(name, type, [values])]}]."""
    from svcmgr.schema import FieldErrors  # the hardened XML parser costs every other command's start

    try:
        from svcmgr.smfxml.safe import parse  # likewise; it needs defusedxml, which a plain python3 may lack
    except ImportError as e:
        _lacking(s, "apply", e)
    try:
        with open(path, "rb") as f:
            root = parse(f.read(MAX_MANIFEST), path).root
    except OSError as e:
        s.fail(f"Could not open {path}: {e.strerror}")
    except FieldErrors as e:
        s.fail(str(e))
    if root.tag != "service_bundle" or root.get("type") != "profile":
        s.fail(f"{path} is not a service profile.")

    def groups(el: Any) -> list[dict[str, Any]]:
        out = []
        for pg in el.findall("property_group"):
            props = []
            for pv in pg.findall("propval"):
                props.append((pv.get("name"), pv.get("type") or "astring", [pv.get("value", "")]))
            for p in pg.findall("property"):
                vals = [v.get("value", "") for lst in p for v in lst if v.tag == "value_node"]
                props.append((p.get("name"), p.get("type") or "astring", vals))
            out.append({"name": pg.get("name"), "type": pg.get("type") or "application", "props": props})
        return out

    return [{"name": svc.get("name"), "groups": groups(svc),
             "instances": [{"name": i.get("name"), "enabled": i.get("enabled"), "groups": groups(i)}
                           for i in svc.findall("instance")]} for svc in root.findall("service")]


def _apply_groups(s: Session, fmri: str, groups: list[dict[str, Any]]) -> None:
    have = s.call("listprop", fmri=fmri)["pgs"]
    for g in groups:
        if g["name"] not in have:
            s.call("addpg", fmri=fmri, pg=g["name"], type=g["type"])
        for name, ptype, values in g["props"]:
            s.call("setprop", fmri=fmri, prop=f"{g['name']}/{name}", type=ptype, values=values)


def _apply(s: Session, args: list[Token]) -> None:
    """apply [-n] file: a profile's enables and properties; nonexistent services and instances are
    ignored; what changed is refreshed."""
    got = words(s, args, "apply [-n] file", 1, 2)
    dry = got[0] == "-n"
    if len(got) == 2 and not dry:
        s.fail("Syntax error.")
    profile = _profile(s, got[-1])
    if dry:
        return
    known = {i["fmri"] for i in s.call("list")}
    for svc in profile:
        service = f"svc:/{svc['name']}"
        insts = [f"{service}:{i['name']}" for i in svc["instances"] if f"{service}:{i['name']}" in known]
        if not insts and not any(f.startswith(f"{service}:") for f in known):
            continue
        _apply_groups(s, service, svc["groups"])
        for inst in svc["instances"]:
            f = f"{service}:{inst['name']}"
            if f not in known:
                continue
            _apply_groups(s, f, inst["groups"])
            if inst["enabled"] in ("true", "false"):
                s.call("enable" if inst["enabled"] == "true" else "disable", fmris=[f])
        touched = [f for f in known if f.startswith(f"{service}:")]
        if svc["groups"] or any(i["groups"] for i in svc["instances"]):
            s.call("refresh", fmris=touched)


def _extract(s: Session, args: list[Token]) -> None:
    """extract [> file]: a profile of every instance's (persistent) enable."""
    got, target = redirect(s, args, "extract [> file]")
    if got:
        s.fail("Syntax error.")
    by_service: dict[str, list[tuple[str, bool]]] = {}
    for i in sorted(s.call("list"), key=lambda i: i["fmri"]):
        service, inst = i["fmri"][len("svc:/"):].rsplit(":", 1)
        by_service.setdefault(service, []).append((inst, bool(i.get("enabled_persistent", i["enabled"]))))
    out = ["<?xml version='1.0'?>", f"<!DOCTYPE service_bundle SYSTEM '{DTD}'>",
           "<service_bundle type='profile' name='extract'>"]
    for service, insts in by_service.items():
        out.append(f"  <service name={_attr(service)} type='service' version='0'>")
        out += [f"    <instance name={_attr(n)} enabled='{'true' if e else 'false'}'/>" for n, e in insts]
        out.append("  </service>")
    out.append("</service_bundle>")
    write_out(s, "\n".join(out) + "\n", target)


def _attr(text: str) -> str:
    return "'" + escape(text, {"'": "&apos;", '"': "&quot;"}) + "'"


USAGE: dict[str, tuple[Handler, str]] = {
    "validate": (_validate, "validate [file | fmri]"),
    "import": (_import, "import [-n] [-V] file ..."),
    "export": (_export, "export [-a] [--xml | --json] service_FMRI [> file]"),
    "archive": (_archive, "archive [-a] [> file]"),
    "inventory": (_inventory, "inventory file"),
    "delete": (_delete, "delete [-f] {name | fmri}"),
    "apply": (_apply, "apply [-n] file"),
    "extract": (_extract, "extract [> file]"),
}
