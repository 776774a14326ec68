"""A boot from the repository's manifest records (``svcmgr.bootimport``, ``svcmgr.manifestrecord``) is a cold
boot without the parsing: the same services, configuration, repository and states, and the same log.

Each case boots a real engine (fake processes) on a repository file, changes something, and then boots
twice from that same state: once as it is (files unchanged since their records are taken from the
repository) and once on a copy whose records were dropped (every file parsed, as before records
existed). Everything either boot leaves must be the same.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svcmgr.bootimport import import_at_boot
from svcmgr.bus import Bus
from svcmgr.engine import Engine
from svcmgr.paths import Paths
from svcmgr.repository import SCHEMA, Repository

from fakes import FakeProcesses, settle
from svctest import CONFORMANCE, REPO


class _Said(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


def _boot(root: Path, repo_path: Path, folders: list[Path], edit: Any = None) -> dict[str, Any]:
    """One daemon's life on fake processes: load the repository, import ``folders`` at boot, settle, (``edit``
    the engine), shut down. What it left: its log, services, states and the repository's rows."""

    async def life() -> dict[str, Any]:
        paths = Paths.for_root(str(root))
        paths.make()
        procs = FakeProcesses()
        engine = Engine(repo=Repository(str(repo_path)), bus=Bus("t1"), restarter=procs, paths=paths)
        log = logging.getLogger(f"test-boot-records-{id(engine)}")
        log.propagate = False
        said = _Said()
        log.addHandler(said)
        log.setLevel(logging.DEBUG)
        engine.load()
        engine.begin_boot_import()
        engine.boot()
        await import_at_boot(engine, [str(f) for f in folders], log, started=lambda: None)
        await settle(engine, procs)
        out = {
            "said": said.lines,
            "specs": {f: (s.to_dict(), s.source) for f, s in engine.specs.items()},
            "editing": dict(engine.editing),
            "sources": dict(engine.sources),
            "states": {f: (i.state.value, i.effective_enabled) for f, i in engine.instances.items()},
            "started": sorted(f for kind, f in procs.calls if kind == "start"),
        }
        if edit is not None:
            edit(engine)
            await settle(engine, procs)
        await engine.shutdown()
        engine.repo.close()
        with sqlite3.connect(repo_path) as c:
            out["rows"] = c.execute("SELECT fmri, source, format, editing, running FROM services "
                                    "ORDER BY fmri").fetchall()
            out["instances"] = c.execute("SELECT fmri, enabled, state, marks FROM instances ORDER BY fmri").fetchall()
        return out

    return asyncio.run(life())


def _kept(said: list[str]) -> tuple[int, int]:
    """(parsed, unchanged) as the boot said it."""
    line = next(x for x in said if x.startswith("INFO manifest files: "))
    words = line.split()
    return int(words[3]), int(words[5])


class World:
    """A manifest folder and a repository, booted from and compared."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.mdir = tmp / "manifests"
        self.mdir.mkdir()
        self.repo = tmp / "repository.db"
        self.folders = [self.mdir]
        self.boots = 0

    def write(self, name: str, text: str) -> Path:
        p = self.mdir / name
        p.write_text(text)
        return p

    def boot(self, edit: Any = None) -> dict[str, Any]:
        self.boots += 1
        return _boot(self.tmp / f"root{self.boots}", self.repo, self.folders, edit)

    def warm_and_cold(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Boot from the current state twice: with its records, and on a copy without them."""
        cold_repo = self.tmp / f"cold{self.boots}.db"
        shutil.copy(self.repo, cold_repo)
        with sqlite3.connect(cold_repo) as c:
            c.execute("DELETE FROM manifests")
            c.execute("DELETE FROM manifest_services")
        c.close()
        self.boots += 1
        cold = _boot(self.tmp / f"root{self.boots}", cold_repo, self.folders)
        warm = self.boot()
        return warm, cold


def _same(warm: dict[str, Any], cold: dict[str, Any]) -> None:
    said = [x for x in warm["said"] if not x.startswith("INFO manifest files: ")]
    assert said == [x for x in cold["said"] if not x.startswith("INFO manifest files: ")]
    for key in ("specs", "editing", "sources", "states", "started", "rows", "instances"):
        assert warm[key] == cold[key], key


def _service(name: str, extra: str = "") -> str:
    return f'name = "{name}"\nduration = "child"\n[methods.start]\nexec = ["sleep", "100"]\n{extra}'


def _dep(fmri: str) -> str:
    return f'[[dependencies]]\nname = "d"\ngrouping = "require_all"\nfmris = ["{fmri}"]\n'


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.write("a.toml", _service("site/a"))
    w.write("b.toml", _service("site/b", _dep("svc:/site/a:default")))
    w.write("c.toml", _service("site/c", '[properties.config]\nport = 8080\n'))
    w.write("d.toml", _service("site/d", '[[dependents]]\nname = "dd"\ngrouping = "require_all"\n'
                                         'fmris = ["svc:/site/c"]\n'))
    first = w.boot()
    assert _kept(first["said"]) == (4, 0)
    return w


def test_an_unchanged_boot_takes_every_file_from_its_record_and_equals_a_cold_one(world):
    warm, cold = world.warm_and_cold()
    assert _kept(warm["said"]) == (0, 4)
    assert _kept(cold["said"]) == (4, 0)
    _same(warm, cold)
    assert len(warm["started"]) == 4


def test_the_conformance_manifests_and_the_demo_boot_warm_as_cold(tmp_path):
    folders = [p for p in (CONFORMANCE / "smf", REPO / "manifests" / "examples") if p.is_dir()]
    if not folders:
        pytest.skip("no conformance manifests here")
    w = World(tmp_path)
    w.folders = folders
    w.boot()
    warm, cold = w.warm_and_cold()
    parsed, kept = _kept(warm["said"])
    assert kept > 10 and parsed == _kept(cold["said"])[0] - kept
    _same(warm, cold)


def test_a_changed_file_is_parsed_again(world):
    world.write("c.toml", _service("site/c", '[properties.config]\nport = 9090\n'))
    warm, cold = world.warm_and_cold()
    assert _kept(warm["said"]) == (1, 3)
    _same(warm, cold)
    assert "9090" in dict((r[0], r[4]) for r in warm["rows"])["svc:/site/c"]


def test_a_file_with_the_same_size_and_mtime_but_other_bytes_is_parsed_again(world):
    p = world.mdir / "c.toml"
    st = os.stat(p)
    world.write("c.toml", _service("site/c", '[properties.config]\nport = 8081\n'))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(p).st_size == st.st_size
    warm, cold = world.warm_and_cold()
    assert _kept(warm["said"]) == (1, 3)
    _same(warm, cold)


def test_an_added_a_removed_and_a_renamed_file(world):
    world.write("e.toml", _service("site/e"))
    (world.mdir / "a.toml").rename(world.mdir / "a2.toml")
    (world.mdir / "c.toml").unlink()
    warm, cold = world.warm_and_cold()
    assert _kept(warm["said"]) == (2, 2)  # e and a2 parsed; b and d from their records
    _same(warm, cold)
    again, cold = world.warm_and_cold()  # the renamed and added files are recorded under their paths now
    assert _kept(again["said"]) == (0, 4)
    _same(again, cold)


def test_a_service_edited_by_svccfg_is_parsed_again_and_imported_over_the_edit(world):
    def edit(engine: Engine) -> None:
        data = engine.editing["svc:/site/c"]
        engine.set_editing("svc:/site/c", {**data, "description": "edited"})

    world.boot(edit)
    warm, cold = world.warm_and_cold()
    assert _kept(warm["said"]) == (1, 3)
    _same(warm, cold)
    assert "edited" not in str(warm["editing"]["svc:/site/c"])  # the import set it back, as SMF's would

    def edit_and_refresh(engine: Engine) -> None:
        edit(engine)
        engine.refresh(["svc:/site/c:default"])

    world.boot(edit_and_refresh)
    warm, cold = world.warm_and_cold()
    assert _kept(warm["said"]) == (1, 3)
    _same(warm, cold)


def test_a_service_deleted_since_is_parsed_again(world):
    async def delete(engine: Engine) -> None:
        await engine.delete_service("svc:/site/a")

    world.boot(lambda engine: asyncio.get_running_loop().create_task(delete(engine)))
    warm, cold = world.warm_and_cold()
    assert _kept(warm["said"]) == (1, 3)
    _same(warm, cold)


def test_a_record_of_another_svcmgr_is_not_used(world):
    with sqlite3.connect(world.repo) as c:
        c.execute("UPDATE manifests SET format = 'another' WHERE path LIKE '%/b.toml'")
    c.close()
    warm, cold = world.warm_and_cold()
    assert _kept(warm["said"]) == (1, 3)
    _same(warm, cold)


def test_a_file_refused_now_as_a_duplicate_is_refused_from_its_record_too(world):
    world.write("0-first.toml", _service("site/b"))  # now declares site/b before b.toml does
    warm, cold = world.warm_and_cold()
    assert _kept(warm["said"]) == (1, 4)  # b.toml from its record, and refused as it would be parsed
    _same(warm, cold)
    assert any("import refused" in x and "b.toml: name: svc:/site/b is also declared in" in x
               for x in warm["said"])


def test_an_older_repository_gains_the_records(tmp_path):
    old = SCHEMA.split("CREATE TABLE IF NOT EXISTS manifests")[0]
    path = tmp_path / "repository.db"
    with sqlite3.connect(path) as c:
        c.executescript("PRAGMA journal_mode=WAL;" + old)
    c.close()
    w = World(tmp_path)
    w.write("a.toml", _service("site/a"))
    first = w.boot()
    assert _kept(first["said"]) == (1, 0)
    warm, cold = w.warm_and_cold()
    assert _kept(warm["said"]) == (0, 1)
    _same(warm, cold)


_TEXTS = st.sampled_from([_service("p/x"), _service("p/x", 'description = "two"\n'),
                          _service("p/y", _dep("svc:/p/x:default")), _service("p/y"), 'name = "p/bad"\n'])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.lists(_TEXTS, min_size=1, max_size=3), after=st.lists(_TEXTS, min_size=1, max_size=3))
def test_any_change_of_the_files_boots_warm_as_cold(tmp_path_factory, before, after):
    w = World(tmp_path_factory.mktemp("prop"))
    for i, text in enumerate(before):
        w.write(f"f{i}.toml", text)
    w.boot()
    for p in w.mdir.iterdir():
        p.unlink()
    for i, text in enumerate(after):
        w.write(f"f{i}.toml", text)
    warm, cold = w.warm_and_cold()
    _same(warm, cold)
