"""The transcript player the man page examples are tested with: what it lets through and what it does not."""

from __future__ import annotations

import os

import pytest
from transcript import play


def test_a_transcript_matches_output_error_and_status(tmp_path):
    env = dict(os.environ)
    play(env, tmp_path, """
        $ printf 'STATE  STIME\\nonline  5:40:00\\n'; echo oops >&2; exit 3
        STATE  STIME
        online {time}
        2> oops
        [exit 3]
        $ cat <<EOF
        > a
        > b
        > EOF
        ...
        b
        """)


@pytest.mark.parametrize("transcript", [
    "$ echo hi\nho\n",                 # other output
    "$ echo hi\n",                     # output where none is expected
    "$ echo hi >&2\nhi\n",             # on the wrong stream
    "$ false\n",                       # another status
    "$ echo 12:00:00\n{date}\n",       # a token matches only its kind
])
def test_a_difference_fails(tmp_path, transcript):
    with pytest.raises(AssertionError):
        play(dict(os.environ), tmp_path, transcript)
