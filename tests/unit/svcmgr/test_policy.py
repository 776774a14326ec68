"""Method results and the restart rate limit, on a fake clock."""

import pytest

from svcmgr.policy import Outcome, RestartHistory, classify_method_exit


@pytest.mark.parametrize("code,outcome", [(0, Outcome.OK), (94, Outcome.OK), (95, Outcome.FATAL),
                                          (96, Outcome.FATAL), (99, Outcome.FATAL), (100, Outcome.FATAL),
                                          (101, Outcome.TEMP_DISABLE), (97, Outcome.RETRY),
                                          (98, Outcome.RETRY), (1, Outcome.RETRY), (None, Outcome.RETRY)])
def test_smf_exit_codes(code, outcome):
    assert classify_method_exit(code) == outcome


def test_temp_disable_only_for_start():
    assert classify_method_exit(101, method="stop") == Outcome.RETRY


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_limit_failures_within_period_is_too_many():
    clock = Clock()
    h = RestartHistory(3, 60.0, clock)
    assert not h.record()
    clock.t += 10
    assert not h.record()
    clock.t += 10
    assert h.record()  # the third within 60 s


def test_spread_out_failures_are_fine():
    clock = Clock()
    h = RestartHistory(3, 60.0, clock)
    for _ in range(10):
        assert not h.record()
        clock.t += 31  # any three span 62 s


def test_reset_forgets():
    clock = Clock()
    h = RestartHistory(2, 60.0, clock)
    h.record()
    h.reset()
    assert not h.record()


def test_reconfigure_keeps_recent_history():
    clock = Clock()
    h = RestartHistory(5, 60.0, clock)
    h.record()
    h.record()
    h.configure(3, 60.0)
    assert h.record()


def test_simple_shell_commands_are_execd_as_smf_does():
    from svcmgr.methods import simple_command

    assert simple_command("python3 app.py --port 80 > /tmp/log 2>&1")
    assert simple_command("echo 'a; b'")

    for compound in ("a; b", "a && b", "a | b", "a &", "(a)", "cd /x && y", "FOO=1 y", "trap '' TERM; y",
                     "while :; do x; done", "a\nb", "echo 'unbalanced", "sleep $(cat n)"):
        assert not simple_command(compound), compound
