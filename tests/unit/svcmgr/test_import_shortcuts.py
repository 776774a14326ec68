"""The import's shortcuts give the full path's answers (``svcmgr.catalog``, ``svcmgr.loader``).

* An import resolves each imported instance once (``Catalog._check``'s configuration is the one applied) and
  takes the configuration of every instance imported before from the instance itself when it was resolved
  from the spec still imported: every instance's configuration is its spec's resolved anew, and a check
  against the imported specs gives what a check against a copy of them (resolving everything anew) gives.
* An import stores each manifest's normal text once, for the repository and the snapshots alike.
* A manifest file is read by ``os.read``: its bytes, to the limit, whatever its size.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from svcmgr.loader import MAX_SIZE, load_bytes, read_file_stat
from svcmgr.manifest import ManifestErrors
from svcmgr.spec import resolve_instance

from fakes import engine_on_fakes

NAMES = "abcde"


@st.composite
def manifest(draw: st.DrawFn) -> str:
    """A service t/NAME, with instances, dependencies (services, instances, absent ones) and dependents."""
    name = draw(st.sampled_from(NAMES))
    lines = [f'name = "t/{name}"', f'description = "{draw(st.integers(0, 3))}"',
             "[methods.start]", 'exec = ["daemon"]']
    others = [n for n in NAMES + "z" if n != name]
    targets = st.sampled_from([f"svc:/t/{n}" for n in others] + [f"svc:/t/{n}:{i}" for n in others for i in "xy"])
    for i in range(draw(st.integers(0, 2))):
        fmris = ", ".join(f'"{t}"' for t in draw(st.lists(targets, min_size=1, max_size=2, unique=True)))
        grouping = draw(st.sampled_from(["require_all", "require_any", "optional_all", "exclude_all"]))
        lines += ["[[dependencies]]", f'name = "d{i}"', f'grouping = "{grouping}"', 'restart_on = "none"',
                  f"fmris = [{fmris}]"]
    if draw(st.booleans()):
        t = draw(st.sampled_from([f"svc:/t/{n}" for n in NAMES if n != name]))
        lines += ["[[dependents]]", 'name = "back"', 'grouping = "optional_all"', 'restart_on = "none"',
                  f'fmris = ["{t}"]']
    for inst in draw(st.lists(st.sampled_from("xy"), max_size=2, unique=True)):
        lines += [f"[instances.{inst}]", f"enabled = {str(draw(st.booleans())).lower()}"]
    return "\n".join(lines) + "\n"


def _svc(name: str, *, needs: str = "", back: str = "") -> str:
    """A service t/NAME that requires svc:/t/NEEDS, and on which svc:/t/BACK requires (a dependent)."""
    text = f'name = "t/{name}"\n[methods.start]\nexec = ["daemon"]\n'
    group = 'grouping = "require_all"\nrestart_on = "none"\n'
    if needs:
        text += f'[[dependencies]]\nname = "n"\n{group}fmris = ["svc:/t/{needs}"]\n'
    if back:
        text += f'[[dependents]]\nname = "b"\n{group}fmris = ["svc:/t/{back}"]\n'
    return text


def _specs(texts: list[str], part: int) -> list:
    out, names = [], set()
    for i, t in enumerate(texts):
        for s in load_bytes(t.encode(), f"/m/p{part}-{i}.toml"):
            if str(s.fmri) not in names:  # a part's own duplicates are the boot's to refuse, before the import
                names.add(str(s.fmri))
                out.append(s)
    return out


def _answer(check) -> tuple[str, list[str]]:
    try:
        return "imported", check()
    except ManifestErrors as e:
        return "refused", [str(x) for x in e.errors]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(manifest(), min_size=1, max_size=4), min_size=1, max_size=5))
@example([[_svc("a", needs="b")], [_svc("c")], [_svc("b", needs="a")]])  # a cycle by an edge into the new part
@example([[_svc("a", needs="b")], [_svc("b", back="a")]])  # ... by a dependent of the new part
@example([[_svc("a", needs="b"), _svc("b")], [_svc("c", back="b")], [_svc("b", needs="c")]])
def test_imports_in_parts_check_and_apply_as_the_full_path(parts: list[list[str]]) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            engine, _procs, _clock = engine_on_fakes(tmp)
            try:
                for n, texts in enumerate(parts):
                    specs = _specs(texts, n)
                    full = _answer(lambda specs=specs: engine.check_import(specs, dict(engine.specs)))
                    event(full[0] + (" a cycle" if "cycle" in str(full[1]) else ""))
                    assert _answer(lambda specs=specs: engine.check_import(specs)) == full
                    assert _answer(lambda specs=specs: engine.import_specs(specs, ["toml"] * len(specs))) == full
                    for f, inst in engine.instances.items():
                        spec = engine.specs[str(inst.config.fmri.service_fmri)]
                        assert inst.config == resolve_instance(spec, inst.config.fmri.instance), f
                    for f, spec in engine.specs.items():
                        text = json.dumps(spec.to_dict(), sort_keys=True)
                        assert engine.repo.service(f).running == spec.to_dict()
                        assert engine.snapshots.get(f, "last-import") == json.loads(text)
                        assert engine.editing[f] == spec.to_dict()
                    for _ in range(3):
                        await asyncio.sleep(0)  # the instances dropped are stopped
            finally:
                await engine.shutdown()

    asyncio.run(run())


def test_a_cycle_among_services_imported_before_is_still_refused(tmp_path) -> None:
    """Services taken from the repository were never checked by this daemon: a cycle among them (a repository
    written by another tool) refuses the next import, as it always did."""

    async def run() -> None:
        engine, _procs, _clock = engine_on_fakes(str(tmp_path))
        try:
            cyclic = _specs([_svc("a", needs="b"), _svc("b", needs="a")], 0)
            engine.repo.import_services([(str(s.fmri), s.source, "toml", s.to_dict()) for s in cyclic])
            engine.load()
            assert sorted(engine.specs) == ["svc:/t/a", "svc:/t/b"]
            c = _specs([_svc("c")], 1)
            full = _answer(lambda: engine.check_import(c, dict(engine.specs)))
            assert full[0] == "refused" and "dependency cycle" in full[1][0]
            assert _answer(lambda: engine.check_import(c)) == full
            assert _answer(lambda: engine.import_specs(c, ["toml"])) == full
        finally:
            await engine.shutdown()

    asyncio.run(run())


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([0, 1, 2, 4095, 4096, 4097, 65536, MAX_SIZE - 1, MAX_SIZE, MAX_SIZE + 1, MAX_SIZE + 7]),
       st.binary(min_size=1, max_size=8))
def test_a_file_is_read_whole_up_to_one_byte_past_the_limit(size: int, pattern: bytes) -> None:
    blob = (pattern * (size // len(pattern) + 1))[:size]
    with tempfile.NamedTemporaryFile() as f:
        f.write(blob)
        f.flush()
        got, st_ = read_file_stat(f.name)
        assert got == blob[:MAX_SIZE + 1]
        assert (st_.st_size, st_.st_ino) == (size, os.stat(f.name).st_ino)


def test_what_cannot_be_read_is_refused_with_why(tmp_path) -> None:
    for path, why in ((tmp_path / "absent.toml", "No such file or directory"), (tmp_path, "Is a directory")):
        try:
            read_file_stat(str(path))
        except ManifestErrors as e:
            assert [str(x) for x in e.errors] == [f"{path}: cannot read: {why}"]
        else:
            raise AssertionError(f"{path} was read")
