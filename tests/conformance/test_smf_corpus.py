"""Real SMF manifests (illumos, SmartOS) from ../shared/conformance/smf import unchanged.

Each ``NAME.xml`` has a ``NAME.expected.json`` summary of what it declares: services
(name, type, duration), instances (explicit ``<instance>``\\ s, plus ``default`` when
``create_default_instance`` is given), dependencies and dependents (name, grouping,
restart_on, type, FMRIs) and methods (name, exec, timeout_seconds), at service and
instance level. Two levels of check:

* every manifest alone, through ``svcmgr.manifest.load_file`` (the one validator);
* all of them together in a real daemon through ``svccfg import``, then checked with
  ``svcs -a``, ``svcs -l``, ``svcs -x``, ``svcprop`` and ``svccfg export``: the
  cross-references between them resolve, what lies outside the set is absent.

The files are read where they are; nothing is copied into the project.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from svcmgr.loader import load_file
from svcmgr.spec import parse_exec, resolve_instance

from svctest import CONFORMANCE

CORPUS = CONFORMANCE / "smf"
FILES = sorted(CORPUS.glob("*.xml")) if CORPUS.is_dir() else []
pytestmark = pytest.mark.skipif(not FILES, reason=f"no SMF corpus at {CORPUS}")


def _expected(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.with_suffix(".expected.json").read_text())["services"]


def _dep(d: dict[str, Any]) -> tuple[Any, ...]:
    return (d["name"], d["grouping"], d["restart_on"], d.get("type", "service"), tuple(d["fmris"]))


def _instances(svc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Instance name -> its summary, with the one create_default_instance makes."""
    out = {i["name"]: i for i in svc["instances"]}
    if svc["create_default_instance"] is not None:
        out.setdefault("default", {"name": "default", "enabled": svc["create_default_instance"]})
    return out


def _same_exec(a: str, b: str) -> bool:
    """Two exec strings mean the same (``:kill -9`` and ``:kill -SIGKILL``)."""
    if a == b:
        return True
    try:
        return parse_exec(a) == parse_exec(b)
    except ValueError:
        return False


def _timeout(t: int) -> int:
    return 0 if t in (0, -1) else t  # SMF: 0 and -1 mean no timeout; svcprop shows 0


def _corpus() -> dict[str, dict[str, Any]]:
    """svc:/name -> (expected summary, source file)."""
    out = {}
    for f in FILES:
        for s in _expected(f):
            out[f"svc:/{s['name']}"] = {**s, "file": f}
    return out


# ----------------------------------------------------------------- each manifest alone


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_manifest_translates_to_its_summary(path: Path) -> None:
    specs = {str(s.fmri): s for s in load_file(str(path))}
    expected = _expected(path)
    assert sorted(specs) == sorted(f"svc:/{s['name']}" for s in expected)
    for svc in expected:
        spec = specs[f"svc:/{svc['name']}"]
        raw = spec.to_dict()
        assert spec.type == svc["type"]
        assert raw.get("duration") == svc["duration"]
        insts = _instances(svc)
        assert sorted(spec.instances) == sorted(insts)
        assert [_dep(d) for d in raw.get("dependencies", [])] == [_dep(d) for d in svc["dependencies"]]
        assert [_dep(d) for d in raw.get("dependents", [])] == [_dep(d) for d in svc["dependents"]]
        for name, want in insts.items():
            cfg = resolve_instance(spec, name)
            assert cfg.enabled == want["enabled"], name
            mine = [_dep(d) for d in raw.get("instances", {}).get(name, {}).get("dependencies", [])]
            assert mine == [_dep(d) for d in want.get("dependencies", [])], name
            for m in svc["methods"] + want.get("methods", []):
                _check_method_in_spec(cfg, m)


def _check_method_in_spec(cfg: Any, m: dict[str, Any]) -> None:
    got = cfg.methods.get(m["name"])
    if got is not None:
        assert _same_exec(got.exec.display(), m["exec"]), (cfg.fmri, m)
        assert (got.timeout is None) == (m["timeout_seconds"] in (0, -1)), (cfg.fmri, m)
        if got.timeout is not None:
            assert got.timeout == m["timeout_seconds"]
        return
    # A method svcmgr does not run (inetd_start, restart, :kill -THAW) is kept as SMF keeps it.
    pg = cfg.properties[m["name"]]
    assert list(pg["exec"].values) == [m["exec"]], (cfg.fmri, m)
    assert list(pg["timeout_seconds"].values) == [m["timeout_seconds"]], (cfg.fmri, m)


# ----------------------------------------------------------------- all of them in a daemon


@pytest.fixture(scope="module")
def corpus_daemon(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One daemon with the whole corpus imported by ``svccfg import``; shared by the checks below."""
    import contextlib
    import shutil
    import signal
    import tempfile

    from svctest import Daemon, _alive_marked, remove_cgroups, wait_until

    root = Path(tempfile.mkdtemp(prefix="svcmgr-", dir="/tmp"))
    os.chmod(root, 0o755)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(root / "xdg"), PYTHONUNBUFFERED="1")
    env.pop("SVCMGR_ROOT", None)
    env.pop("NOTIFY_SOCKET", None)
    d = Daemon(root, env)
    try:
        d.start()
        r = d.cli("svccfg", "import", *map(str, FILES))
        d.import_result = r
        assert r.returncode == 0, r.stderr
        # Settled: nothing in transition any more.
        wait_until(lambda: all(i["nstate"] is None for i in d.call("list")), 20, what="the corpus to settle")
        yield d
    finally:
        with contextlib.suppress(Exception):
            d.stop()
        left = _alive_marked(root)
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        remove_cgroups(root)
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"processes left behind: {left}"


def _json(d: Any, prog: str, *args: str) -> Any:
    r = d.cli(prog, *args, check=True)
    return json.loads(r.stdout)


def test_corpus_import_reports_what_is_kept_but_not_acted_on(corpus_daemon: Any) -> None:
    err = corpus_daemon.import_result.stderr
    imported = corpus_daemon.import_result.stdout.split()
    assert sorted(f for f in imported if f.startswith("svc:/")) == sorted(_corpus())
    # Once per service, never an error: delegated restarters, unknown methods. Privileges are applied
    # (as capabilities), so they are not among what is kept without effect.
    assert "privileges" not in err
    props = _json(corpus_daemon, "svcprop", "--json", "svc:/network/rpc/bind:default")
    assert props["start/privileges"]["values"] == [
        "basic,file_chown,file_chown_self,file_owner,net_privaddr,proc_setid,sys_nfs,net_bindmlp"]
    assert "delegated restarter svc:/network/inetd:default" in err
    assert "':kill -THAW' names a signal Linux does not have" in err
    # A dependency outside the set is named as such at import.
    assert "names svc:/network/loopback, which is not imported" in err


def test_corpus_instances_and_enabled_state(corpus_daemon: Any) -> None:
    shown = {i["fmri"]: i for i in _json(corpus_daemon, "svcs", "-a", "--json")}
    listed = {i["fmri"]: i for i in corpus_daemon.call("list")}
    want = {f"{svc}:{n}": i["enabled"] for svc, s in _corpus().items() for n, i in _instances(s).items()}
    assert sorted(shown) == sorted(listed) == sorted(want)
    for f, enabled in want.items():
        assert listed[f]["enabled"] is enabled, f
        if not enabled:
            assert listed[f]["state"] == "disabled", f


def test_corpus_services_as_stored(corpus_daemon: Any) -> None:
    """``svccfg export --json``: type, duration, dependencies and dependents exactly as declared."""
    for fmri, svc in _corpus().items():
        m = _json(corpus_daemon, "svccfg", "export", "--json", fmri)
        assert m.get("type", "service") == svc["type"], fmri
        assert m.get("duration") == svc["duration"], fmri
        assert [_dep(d) for d in m.get("dependencies", [])] == [_dep(d) for d in svc["dependencies"]], fmri
        assert [_dep(d) for d in m.get("dependents", [])] == [_dep(d) for d in svc["dependents"]], fmri
        for name, want in _instances(svc).items():
            got = m.get("instances", {}).get(name, {})
            assert [_dep(d) for d in got.get("dependencies", [])] == \
                [_dep(d) for d in want.get("dependencies", [])], (fmri, name)


def _back_edges(corpus: dict[str, dict[str, Any]], target: str) -> list[tuple[Any, ...]]:
    """Dependencies that ``dependent`` declarations elsewhere in the corpus put on ``target``."""
    service = target.rsplit(":", 1)[0]
    out = []
    for fmri, svc in corpus.items():
        for d in svc["dependents"]:
            if any(f in (service, target) for f in d["fmris"]):
                out.append((d["name"], d["grouping"], d["restart_on"], (fmri,)))
    return out


def test_corpus_dependencies_and_dependents_resolve_together(corpus_daemon: Any) -> None:
    """``svcs -l``: each instance's own dependencies, plus exactly the ones other manifests'
    ``<dependent>`` elements add; members outside the set are absent; path members follow the file."""
    corpus = _corpus()
    fmris = [f"{svc}:{n}" for svc, s in corpus.items() for n in _instances(s)]
    shown = {s["fmri"]: s for s in _json(corpus_daemon, "svcs", "-l", "--json", *fmris)}
    seen_back = 0
    for f in fmris:
        svc = corpus[f.rsplit(":", 1)[0]]
        inst = _instances(svc)[f.rsplit(":", 1)[1]]
        own = [(*_dep(d)[:3], _dep(d)[4]) for d in svc["dependencies"] + inst.get("dependencies", [])]
        back = _back_edges(corpus, f)
        seen_back += len(back)
        got = [(d["name"], d["grouping"], d["restart_on"], tuple(d["fmris"])) for d in shown[f]["dependencies"]]
        assert sorted(got) == sorted(own + back), f
        for d in shown[f]["dependencies"]:
            for member, state in d["states"].items():
                if member.startswith("file://"):
                    assert state == ("present" if os.path.exists(member[len("file://localhost"):]) else "absent")
                elif member.split(":")[0] + ":" + member.split(":")[1] not in corpus:
                    assert state == "absent", (f, member)
                else:
                    assert state != "absent", (f, member)
    assert seen_back > 0, "the corpus has dependents that point inside it"


def test_corpus_methods_in_svcprop(corpus_daemon: Any) -> None:
    corpus = _corpus()
    for svc_fmri, svc in corpus.items():
        for name, inst in _instances(svc).items():
            f = f"{svc_fmri}:{name}"
            props = _json(corpus_daemon, "svcprop", "--json", f)
            methods = {m["name"]: m for m in svc["methods"]}
            methods.update({m["name"]: m for m in inst.get("methods", [])})
            for m in methods.values():
                exec_ = props[f"{m['name']}/exec"]["values"][0]
                assert _same_exec(exec_, m["exec"]), (f, m, exec_)
                ts = props[f"{m['name']}/timeout_seconds"]["values"][0]
                assert ts == (_timeout(m["timeout_seconds"]) if f"{m['name']}/type" in props
                              else m["timeout_seconds"]), (f, m)
            assert props["startd/duration"]["values"][0] in ("contract", "transient", "child")
            if svc["duration"]:
                assert props["startd/duration"]["values"][0] == svc["duration"], f


def test_corpus_states_and_reasons(corpus_daemon: Any) -> None:
    """Nothing in the corpus can run here: every enabled instance waits, and ``svcs -x`` says on what."""
    corpus = _corpus()
    listed = {i["fmri"]: i for i in corpus_daemon.call("list")}
    offline = [f for f, i in listed.items() if i["state"] == "offline"]
    explained = {e["fmri"]: e for e in _json(corpus_daemon, "svcs", "-x", "--json", *offline)}
    online = [f for f, i in listed.items() if i["state"] == "online"]
    assert online, "a milestone whose dependencies are all optional comes online"
    assert not [f for f, i in listed.items() if i["state"] == "maintenance"]
    for f, i in listed.items():
        if i["state"] != "offline":
            continue
        assert i["enabled"], f
        e = explained[f]
        svc = corpus[f.rsplit(":", 1)[0]]
        inst = _instances(svc)[f.rsplit(":", 1)[1]]
        required_absent = {m for d in svc["dependencies"] + inst.get("dependencies", [])
                           if d["grouping"] in ("require_all", "require_any") and d["type"] == "service"
                           for m in d["fmris"] if ":".join(m.split(":")[:2]) not in corpus}
        if required_absent:
            absent = {r["text"][len("Dependency "):-len(" is absent.")] for r in e["reasons"]
                      if r["text"].startswith("Dependency ") and r["text"].endswith(" is absent.")}
            assert absent & required_absent, e["reasons"]
        else:
            assert e["reason"].startswith("Service svc:/") or "absent" in e["reason"], (f, e["reason"])
    # svcs -x text names the absent dependency the way SMF does.
    text = corpus_daemon.cli("svcs", "-x", "svc:/network/rpc/bind:default", check=True).stdout
    assert "Reason: Dependency svc:/system/filesystem/minimal is absent." in text
