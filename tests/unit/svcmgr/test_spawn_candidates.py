"""Where a spawned child looks for its program: execvp's places, the first that exists tried first."""

from __future__ import annotations

import os
import subprocess
import sys

from svcmgr.spawn import candidates_for


def _path(*dirs: object) -> bytes:
    return b":".join(os.fsencode(str(d)) for d in dirs)


def test_the_first_existing_candidate_comes_first_and_the_others_keep_their_order(tmp_path):
    a, b, c, d = (tmp_path / n for n in "abcd")
    for x in (a, b, c, d):
        x.mkdir()
    (c / "prog").write_text("#!/bin/sh\n")
    (c / "prog").chmod(0o755)
    (d / "prog").write_text("#!/bin/sh\n")
    (d / "prog").chmod(0o755)
    got = candidates_for(b"prog", _path(a, b, c, d))
    assert got == [os.fsencode(str(x / "prog")) for x in (c, a, b, d)]


def test_a_file_that_cannot_be_run_still_comes_first_as_execvp_meets_it_first(tmp_path):
    # execvp passes over it (EACCES, remembered) and goes on: the others follow in their order
    a, b, c = (tmp_path / n for n in "abc")
    for x in (a, b, c):
        x.mkdir()
    (b / "prog").write_text("not a program\n")
    (b / "prog").chmod(0o644)
    (c / "prog").write_text("#!/bin/sh\n")
    (c / "prog").chmod(0o755)
    got = candidates_for(b"prog", _path(a, b, c))
    assert got == [os.fsencode(str(x / "prog")) for x in (b, a, c)]


def test_nothing_found_keeps_the_path_order_and_a_path_name_is_itself(tmp_path):
    assert candidates_for(b"prog", _path(tmp_path / "x", "", tmp_path / "y")) == [
        os.fsencode(str(tmp_path / "x" / "prog")), b"./prog", os.fsencode(str(tmp_path / "y" / "prog"))]
    assert candidates_for(b"/bin/true", b"/nowhere") == [b"/bin/true"]
    assert candidates_for(b"sub/prog", b"/nowhere") == [b"sub/prog"]


def test_a_child_runs_what_execvp_runs(tmp_path):
    # the first candidate that exists cannot be run: the child goes on to the next, as execvp does
    a, b, c = (tmp_path / n for n in "abc")
    for x in (a, b, c):
        x.mkdir()
    (b / "prog").write_text("#!/bin/sh\necho b\n")
    (b / "prog").chmod(0o644)
    (c / "prog").write_text("#!/bin/sh\necho c\n")
    (c / "prog").chmod(0o755)
    path = _path(a, b, c)
    code = ("import os, sys; from svcmgr.spawn import candidates_for, exec_child\n"
            "r, w = os.pipe2(os.O_CLOEXEC)\n"
            f"exec_child(candidates_for(b'prog', {path!r}), [b'prog'], {{b'PATH': {path!r}}}, '/', 0, 1, w, False,"
            " None, signals=False)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PATH": os.fsdecode(path)})
    assert out.stdout == "c\n"
    assert subprocess.run(["prog"], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PATH": os.fsdecode(path)}).stdout == "c\n"
