"""exec_child (a cloned child) and the spawn helper's posix_spawn look a program up along PATH as execvp does:
which file runs, and which errno a failure gives."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from svcmgr.spawn import candidates_for, exec_child
from svcmgr.spawnhelper import posix_spawn_child


@pytest.fixture(params=["exec_child", "posix_spawn"])
def _run(request: pytest.FixtureRequest):
    return _exec_child if request.param == "exec_child" else _posix_spawn


def _posix_spawn(path: bytes, program: bytes, out: Path) -> tuple[int, int]:
    """(errno reported, exit status) as the spawn helper's posix_spawn gives them (127: no child)."""
    o = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pid = posix_spawn_child(candidates_for(program, path), [program], {b"PATH": path}, devnull, o, False)
    except OSError as e:
        return e.errno or 0, 127
    finally:
        os.close(o)
        os.close(devnull)
    _, status = os.waitpid(pid, 0)
    return 0, os.waitstatus_to_exitcode(status)


def _exec_child(path: bytes, program: bytes, out: Path) -> tuple[int, int]:
    """(errno reported, exit status) of a child that execs ``program`` along ``path`` via exec_child."""
    r, w = os.pipe2(os.O_CLOEXEC)
    o = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        exec_child(candidates_for(program, path), [program], {b"PATH": path}, "/", devnull, o, w, False, None,
                   signals=())
    os.close(w)
    os.close(o)
    os.close(devnull)
    report = b""
    while chunk := os.read(r, 64):
        report += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    code = int(report.split(b":", 1)[0]) if report else 0
    return code, os.waitstatus_to_exitcode(status)


def _script(folder: Path, name: str, text: str, mode: int) -> None:
    folder.mkdir(exist_ok=True)
    f = folder / name
    f.write_text(f"#!/bin/sh\necho {text}\n")
    f.chmod(mode)


def test_the_first_executable_along_path_runs_past_missing_and_unrunnable_entries(tmp_path: Path, _run) -> None:
    _script(tmp_path / "b", "prog", "not-executable", 0o644)  # EACCES: passed over, as execvp does
    _script(tmp_path / "c", "prog", "from-c", 0o755)
    _script(tmp_path / "d", "prog", "from-d", 0o755)
    path = b":".join(os.fsencode(tmp_path / d) for d in ("missing", "b", "c", "d"))
    code, status = _run(path, b"prog", tmp_path / "out")
    assert (code, status) == (0, 0)
    assert (tmp_path / "out").read_text() == "from-c\n"


@pytest.mark.parametrize(("layout", "expected"), [
    ({}, errno.ENOENT),                   # nowhere: ENOENT
    ({"b": 0o644}, errno.EACCES),          # only a file that may not run: EACCES, as execvp
])
def test_a_program_that_cannot_run_fails_with_execvps_errno(tmp_path: Path, layout: dict[str, int],
                                                            expected: int, _run) -> None:
    for d, mode in layout.items():
        _script(tmp_path / d, "prog", "x", mode)
    path = b":".join(os.fsencode(tmp_path / d) for d in ("missing", "b", "c"))
    code, status = _run(path, b"prog", tmp_path / "out")
    assert (code, status) == (expected, 127)


def test_a_folder_file_along_path_is_passed_over(tmp_path: Path, _run) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "prog").mkdir()  # exists, but a folder: EACCES from execve, passed over
    _script(tmp_path / "b", "prog", "from-b", 0o755)
    path = b":".join(os.fsencode(tmp_path / d) for d in ("a", "b"))
    code, status = _run(path, b"prog", tmp_path / "out")
    assert (code, status) == (0, 0)
    assert stat.S_ISREG((tmp_path / "out").stat().st_mode)
    assert (tmp_path / "out").read_text() == "from-b\n"
