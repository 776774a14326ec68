"""Transcripts: a man page example as it reads, played against a daemon and compared line by line.

A transcript is the text of a terminal session::

    $ svcs -o state,nstate,fmri service1 x
    STATE          NSTATE        FMRI
    online         -             svc:/service1:instance1
    2> svcs: Pattern 'x' doesn't match any instances
    [exit 1]
    $ svccfg <<EOF
    > select service1:instance1
    > EOF

``$`` lines are shell command lines (``>`` lines continue them, as the shell's second prompt
does), run by ``sh -c`` in a folder of the test's with the commands first in ``PATH`` and
``SVCMGR_ROOT`` naming the daemon's state folder (``commands``); the lines after one are
its standard output, ``2>`` lines its standard error (none when unlisted), ``[exit N]`` its
status (0 when unlisted). In an expected line,
``...`` alone stands for any number of lines, and these tokens for what differs from one run or
machine to another: ``{time}`` (``%k:%M:%S``), ``{date}`` (``Mon Feb 13 17:56:21 2006``),
``{fmtime}`` (fmdump's ``Oct 06 11:53:20.9750``), ``{vtime}`` (``Oct 06 2007 11:53:20.975021712``),
``{uuid}``, ``{hex}``, ``{n}`` (digits), ``{pid}`` and ``{ctid}`` (right-aligned in 8 and 6 columns),
``{path}`` (no spaces), ``{any}``. Everything else is compared exactly, spaces included.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

__all__ = ["COMMANDS", "commands", "play"]

#: each command -> the module that is it
COMMANDS = {"svcs": "svcmgr.cli.svcs", "svcadm": "svcmgr.cli.svcadm", "svccfg": "svcmgr.cli.svccfg",
            "svcprop": "svcmgr.cli.svcprop", "fmadm": "fault.cli.fmadm", "fmdump": "fault.cli.fmdump",
            "fmstat": "fault.cli.fmstat", "fminject": "fault.cli.fminject"}

_TOKENS = {
    "{time}": r"[ \d]\d:\d\d:\d\d",
    "{date}": r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}",
    "{fmtime}": r"\w{3} \d\d \d\d:\d\d:\d\d\.\d{4}",
    "{vtime}": r"\w{3} \d\d \d{4} \d\d:\d\d:\d\d\.\d{9}",
    "{uuid}": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "{hex}": r"0x[0-9a-f]+",
    "{n}": r"\d+",
    "{pid}": r"[ \d]{7}\d+",
    "{ctid}": r"[ \d]{5}[\d-]",
    "{path}": r"\S+",
    "{any}": r".*",
}
_TOKEN_RE = re.compile("|".join(re.escape(t) for t in _TOKENS))


def _line_pattern(line: str) -> str:
    if line.strip() == "...":
        return r"(?:[^\n]*\n)*?"
    out, pos = [], 0
    for m in _TOKEN_RE.finditer(line):
        out.append(re.escape(line[pos:m.start()]))
        out.append(_TOKENS[m.group()])
        pos = m.end()
    out.append(re.escape(line[pos:]))
    return "".join(out) + r"\n"


def _matches(expected: list[str], text: str) -> bool:
    return re.fullmatch("".join(_line_pattern(x) for x in expected), text) is not None


def commands(folder: Path, root: Path, env: dict[str, str]) -> dict[str, str]:
    """Make ``folder/bin`` hold the commands (each runs its module with this interpreter); the environment a
    transcript runs in: theirs first in ``PATH``, ``SVCMGR_ROOT`` naming ``root``."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, module in COMMANDS.items():
        path = bin_dir / name
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
        path.chmod(0o755)
    return {**env, "PATH": f"{bin_dir}:{env.get('PATH', os.defpath)}", "SVCMGR_ROOT": str(root)}


def play(env: dict[str, str], cwd: Path, transcript: str, timeout: float = 60) -> None:
    """Run each command line of ``transcript`` in turn (``sh -c``, in ``cwd``, with ``env``: see ``commands``);
    AssertionError at the first whose output, error or status differs, with what was expected and what came."""
    steps: list[tuple[str, list[str], list[str], int]] = []
    for line in textwrap.dedent(transcript).strip("\n").splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], [], [], 0))
        elif not steps:
            raise ValueError(f"transcript: output before the first command: {line!r}")
        elif (line.startswith("> ") or line == ">") and not steps[-1][1] and not steps[-1][2]:
            cmd, out, err, status = steps[-1]
            steps[-1] = (cmd + "\n" + line[2:], out, err, status)
        elif m := re.fullmatch(r"\[exit (\d+)\]", line):
            cmd, out, err, _ = steps[-1]
            steps[-1] = (cmd, out, err, int(m.group(1)))
        elif line.startswith("2> "):
            steps[-1][2].append(line[3:])
        else:
            steps[-1][1].append(line)
    for cmd, out, err, status in steps:
        r = subprocess.run(["/bin/sh", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=timeout)
        ok = r.returncode == status and _matches(out, r.stdout) and _matches(err, r.stderr)
        assert ok, (f"$ {cmd}\n--- expected (exit {status}):\n" + "\n".join(out) + "\n" +
                    "".join(f"2> {x}\n" for x in err) + f"--- got (exit {r.returncode}):\n{r.stdout}" +
                    "".join(f"2> {x}\n" for x in r.stderr.splitlines()))
