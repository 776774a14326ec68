"""docs/architecture.md names every module with its job, as its docstring says (scripts/module-index)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[3]


def load_script():
    loader = importlib.machinery.SourceFileLoader("module_index", str(ROOT / "scripts" / "module-index"))
    spec = importlib.util.spec_from_loader("module_index", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def test_the_index_is_what_the_docstrings_say():
    mi = load_script()
    doc = mi.DOC.read_text(encoding="utf-8")
    assert mi.rewritten(doc) == doc, "docs/architecture.md's module index is stale: run scripts/module-index"


def test_every_module_has_a_row_and_a_docstring():
    mi = load_script()
    rows = [line for line in mi.index().splitlines() if line.startswith("| `")]
    files = [p for pkg in mi.PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    assert len(rows) == len(files) > 100
    assert not [row for row in rows if "(no docstring)" in row]


def test_a_new_module_shows_as_stale(tmp_path):
    mi = load_script()
    for pkg in mi.PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text('"""A package."""\n')
    doc = mi.rewritten("# Title\n", tmp_path)
    assert mi.rewritten(doc, tmp_path) == doc
    (tmp_path / "svcmgr" / "newpart.py").write_text('"""A new | part."""\n')
    again = mi.rewritten(doc, tmp_path)
    assert again != doc and "| `svcmgr.newpart` | A new \\| part. |" in again
