"""Method tokens: a property's value reaches a method as data, whatever characters it holds."""

import os
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svcmgr.manifest import parse_service
from svcmgr.spec import resolve_instance
from svcmgr.tokens import expand, expand_argv, shell_script

NASTY = ["$(id)", "`id`", "; id", "a'b", 'a"b', "a\\b", "x y", "*", "${HOME}", "", "%{config/one}"]


def _cfg(values):
    spec = parse_service({"name": "site/web", "methods": {"start": {"exec": ":true"}},
                          "properties": {"config": {"many": {"type": "astring", "values": values},
                                                    "one": "plain", "flag": True}}})
    return resolve_instance(spec, "default")


def _run(text, cfg):
    script, params = shell_script(text, cfg, "start")
    r = subprocess.run(["/bin/sh", "-c", script, "/bin/sh", *params], capture_output=True, text=True, check=True)
    return r.stdout


@pytest.mark.parametrize("value", NASTY)
def test_a_value_is_one_word_and_never_code_in_every_quoting(value):
    cfg = _cfg([value])
    show = "printf '[%%s]' "
    assert _run(show + "%{config/many}", cfg) == f"[{value}]"
    assert _run(show + "'%{config/many}'", cfg) == f"[{value}]"
    assert _run(show + '"%{config/many}"', cfg) == f"[{value}]"
    assert "uid=" not in _run('echo "$(printf %%s %{config/many})"', cfg)  # an expansion is never parsed again
    assert _run(show + "pre-%{config/many}-post", cfg) == f"[pre-{value}-post]"


def test_several_values_are_several_words_unquoted_and_one_word_quoted():
    cfg = _cfg(["a b", "c"])
    assert _run("printf '[%%s]' %{config/many}", cfg) == "[a b][c]"
    assert _run("printf '[%%s]' \"%{config/many}\"", cfg) == "[a b c]"
    assert _run("printf '[%%s]' %{config/none}", cfg) == "[]"  # undefined: no word at all
    assert _run("printf '[%%s]' %f %i %m %r %% %{config/flag}", cfg) == \
        "[svc:/site/web:default][default][start][svc.startd][%][true]"


def test_quotes_in_a_comment_do_not_change_the_quoting_after_it():
    cfg = _cfg(["x y"])
    assert _run("true # don't\nprintf '[%%s]' %{config/many}", cfg) == "[x y]"


def test_argv_methods_take_values_as_arguments():
    cfg = _cfg(["a b", "$(id)"])
    assert expand_argv(["prog", "%{config/many}", "--one=%{config/one}", "%{config/none}"], cfg, "start") == \
        ["prog", "a b", "$(id)", "--one=plain", ""]
    assert expand("%{config/many} %m", cfg, "stop") == "a b $(id) stop"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="%", blacklist_categories=("Cs",))))
def test_text_without_a_token_is_given_as_it_is_the_same_as_by_the_full_scan(text):
    cfg = _cfg(["v"])
    # the shortcut for text with no "%"; the full scan, made to run by a token on a line after it (out of any
    # comment), copies the text too
    assert shell_script(text, cfg, "start") == (text, [])
    assert shell_script(text + "\n%%", cfg, "start") == (text + "\n%", [])
    assert expand(text, cfg, "start") == text
    assert expand(text + "%%", cfg, "start") == text + "%"
    assert expand_argv([text, text + "%%"], cfg, "start") == [text, text + "%"]


@pytest.mark.skipif(not os.access("/bin/bash", os.X_OK), reason="bash is not installed")
@pytest.mark.parametrize("text", ["echo $(( %{config/many} + 1 ))", 'echo "$((%{config/many}+1))"',
                                  "(( %{config/many} > 0 )) && echo yes", "echo $(( (%{config/many}) * 2 )) x"])
def test_a_value_in_shell_arithmetic_is_never_code_even_where_sh_is_bash(text, tmp_path):
    """bash evaluates a value it meets in arithmetic (``$(( ))``, ``(( ))``) as an expression, and an array
    subscript there as a command substitution: ``a[$(id)]`` ran id. Where /bin/sh is bash (Fedora, RHEL) that
    was a value grant's way to run commands as the method's user. An integer is put there as it is; any other
    value is not, and the shell refuses the token it sees instead (naming it)."""
    proof = tmp_path / "ran"
    script, params = shell_script(text, _cfg([f"a[$(touch {proof})]"]), "start")
    for sh in ("/bin/sh", "/bin/bash"):
        r = subprocess.run([sh, "-c", script, sh, *params], capture_output=True, text=True, check=False,
                           cwd=tmp_path)  # dash reads "(( x > 0 ))" as a subshell writing to a file "0"
        assert not proof.exists(), (sh, script, params)
        assert r.returncode != 0 and "%{config/many}" in r.stderr, (sh, r.stderr)
    for sh in ("/bin/sh", "/bin/bash"):
        script, params = shell_script("echo $(( %{config/many} + 1 )) $((%{config/none}2))", _cfg(["-41"]), "start")
        r = subprocess.run([sh, "-c", script, sh, *params], capture_output=True, text=True, check=True)
        assert r.stdout == "-40 2\n", (sh, script, r.stdout)
