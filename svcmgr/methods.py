"""How a method is executed: its command line, environment, working directory and credentials.

SMF's conventions: a shell string that is one simple command runs as ``exec
<command>`` (no shell left waiting above the service); ``SMF_FMRI``, ``SMF_METHOD``
and ``SMF_RESTARTER`` in the environment; tokens (``%i``, ``%{pg/prop}``) expanded
as values, never as code (``svcmgr.tokens``). Used by the restarter for methods and
command probes; nothing here starts a process.
"""

from __future__ import annotations

import os
import shlex

from svcmgr import tokens
from svcmgr.credentials import Credentials
from svcmgr.fmri import RESTARTER as RESTARTER_FMRI
from svcmgr.paths import Paths
from svcmgr.spec import Exec, InstanceConfig

__all__ = ["RESTARTER_FMRI", "MethodContext", "credentials", "simple_command"]


_SHELL_WORDS = frozenset({"if", "then", "else", "elif", "fi", "while", "until", "for", "do", "done", "case",
                          "esac", "{", "}", "!", "exec", "cd", "export", "set", "unset", "trap", ".", "source",
                          "eval", "ulimit", "umask", "wait", "read", "shift", "return", "exit", "alias", "local"})
_CONTROL = frozenset({";", "&", "|", "&&", "||", "(", ")", ";;", "|&"})


def simple_command(text: str) -> bool:
    """Whether a method string is one simple command, which SMF runs as ``exec <command>``
    (no shell left waiting above the service). Lists, pipes, compound commands, builtins and
    leading assignments run as written."""
    if "\n" in text or "$(" in text or "`" in text:
        return False  # to be safe, substitutions run as written
    try:
        lex = shlex.shlex(text, posix=True, punctuation_chars=";&|()")
        lex.whitespace_split = True
        words = list(lex)
    except ValueError:
        return False
    if not words or words[0] in _SHELL_WORDS or "=" in words[0]:
        return False
    for i, w in enumerate(words):
        if w == "&" and i and words[i - 1].endswith((">", "<")):
            continue  # 2>&1, <&3: a redirection, not a background job
        if w in _CONTROL or set(w) <= set(";&|()"):
            return False
    return True


def credentials(cfg: InstanceConfig, method: str) -> Credentials:
    """Who a method runs as and with which privileges; raises LookupError for a missing name."""
    ctx = cfg.method_context(method)
    return Credentials.resolve(ctx.user, ctx.group, ctx.security)


class MethodContext:
    """The daemon's side of every method's context: its paths and the environment it passes on."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.base_env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")}
        for k in ("LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV"):
            if k in os.environ:
                self.base_env[k] = os.environ[k]
        #: a method run with no user's: the daemon's own, taken at start like ``base_env``
        self.own_user = {k: os.environ[k] for k in ("HOME", "USER", "LOGNAME") if k in os.environ}
        #: what follows SMF_FMRI and SMF_METHOD in every method's environment (the same for all)
        self.fixed_env = {"SMF_RESTARTER": RESTARTER_FMRI, "SVCMGR_RUN_DIR": paths.run,
                          "SVCMGR_LIB_DIR": paths.lib, "SVCMGR_LOG_DIR": paths.log}

    def env(self, cfg: InstanceConfig, method: str, user: Credentials, marker: str | None) -> dict[str, str]:
        """The environment of ``method``; ``marker`` names the contract it runs in (None for a probe)."""
        ctx = cfg.method_context(method)
        env = dict(self.base_env)
        if user.name:
            env.update({"USER": user.name, "LOGNAME": user.name, "HOME": user.home or "/"})
        else:
            env.update(self.own_user)
        env["SMF_FMRI"] = str(cfg.fmri)
        env["SMF_METHOD"] = method
        env.update(self.fixed_env)
        if marker is not None:
            env["SVCMGR_CONTRACT"] = marker
        if cfg.readiness.kind == "notify" and method == "start":
            env["NOTIFY_SOCKET"] = self.paths.notify_socket
        for k, v in ctx.environment.items():
            env[k] = tokens.expand(v, cfg, method)
        return env

    @staticmethod
    def argv(cfg: InstanceConfig, method: str, ex: Exec) -> list[str]:
        if ex.kind == "argv":
            return tokens.expand_argv(ex.argv, cfg, method)
        text, params = tokens.shell_script(ex.shell, cfg, method)  # values as parameters, never as code
        script = f"exec {text}" if simple_command(text) else text
        return ["/bin/sh", "-c", script, "/bin/sh", *params] if params else ["/bin/sh", "-c", script]

    @staticmethod
    def cwd(cfg: InstanceConfig, method: str, user: Credentials) -> str:
        wd = cfg.method_context(method).working_directory
        if wd == ":default":
            return user.home or os.path.expanduser("~") or "/"
        return wd or "/"
