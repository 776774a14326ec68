"""svcmgr.cli.common's parser: its help is as wide as shutil would say, without importing shutil."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from svcmgr.cli.common import Parser, terminal_width


@pytest.mark.parametrize("columns", ["", "37", "150", "0", "-5", "wide"])
def test_the_width_is_shutils(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    assert terminal_width() == shutil.get_terminal_size().columns


def test_help_wraps_at_that_width(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "40")
    p = Parser(prog="x", description="d")
    p.add_argument("--long-option", help="words " * 20)
    p.print_help()
    lines = capsys.readouterr().out.splitlines()
    assert 30 <= max(len(line) for line in lines) <= 38  # COLUMNS less the 2 argparse keeps


def test_a_command_imports_no_shutil():
    code = "import sys; from svcmgr.cli import svcs; svcs.parser(); print('shutil' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
