"""The daemon's counted nouns read right for one as for many."""

from svcmgr.wording import counted


def test_one_is_singular_and_the_rest_plural() -> None:
    assert counted(1, "instance") == "1 instance"
    assert [counted(n, "instance") for n in (0, 2, 500)] == ["0 instances", "2 instances", "500 instances"]
    assert counted(1, "running instance") == "1 running instance"


def test_an_irregular_plural_is_given() -> None:
    assert counted(3, "process", "processes") == "3 processes"
    assert counted(1, "process", "processes") == "1 process"
