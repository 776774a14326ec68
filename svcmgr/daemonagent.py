"""A component that runs a daemon as a service from a configuration it renders (keepalived, HAProxy).

The cycle, shared by the VRRP and load-balancer agents: **plan** the items this node
runs (the manifests' declarations with the node's on top; ``plan``), **render**
them (``render``), and when the text differs from the running file **stage** it as
a candidate, have the daemon **check** it (``check_argv``, run through the daemon's
command runner) and then either **install** it (one rename) or keep the running one
and report the rejection (``ereport.<name>.config.rejected``, with the stage that
refused it: validate, render or config-test). Once a node has items, the daemon's
own service manifest is imported; an installed file is **reloaded** by the agent
(``installed``). Every import of a manifest sets the cycle going again
(``svcmgr.rendered.apply_loop``: a burst settles into one render).

A subclass names its daemon (the class constants), reads its items (``plan``,
``render``, ``follow``) and says what a reload is (``installed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from svcmgr.api import Caller, arg
from svcmgr.declared import Source
from svcmgr.events import Event
from svcmgr.files import read_text, write_atomic
from svcmgr.paths import shipped
from svcmgr.rendered import ConfigStatus, Files, RenderError, apply_loop, not_installed, run_check
from svcmgr.schema import FieldError

if TYPE_CHECKING:
    from svcmgr.component import Context
    from svcmgr.config import DaemonConfig

__all__ = ["CHECK_TIMEOUT", "DaemonAgent"]

log = logging.getLogger("svcmgr.daemonagent")

#: The most a daemon's check of a candidate may take.
CHECK_TIMEOUT = 20.0


class DaemonAgent:
    """The render, check, apply and reload cycle of one daemon's configuration."""

    #: the component's name: its socket operations are ``<name>.show`` and ``<name>.config``, its section
    #: of the node's configuration ``[<name>]`` and of a manifest ``[<name>]``
    name: ClassVar[str] = ""
    DAEMON: ClassVar[str] = ""  # as people write it: keepalived, HAProxy
    BINARY: ClassVar[str] = ""  # the command, and the key of the node's section that names it
    PROVIDES: ClassVar[str] = ""  # what the node goes without when the daemon is missing
    WHAT: ClassVar[str] = ""  # the configuration's name in a log line
    NOUN: ClassVar[str] = ""  # one item of the configuration: an instance, a frontend
    SERVICE: ClassVar[str] = ""  # the daemon's service
    MANIFEST: ClassVar[str] = ""  # its manifest, shipped in manifests/system
    SUBSCRIBE: ClassVar[tuple[str, ...]] = ()  # the event classes the agent follows

    def __init__(self, ctx: Context, settings: Any, binary: str | None, layout: Files) -> None:
        self.ctx = ctx
        self.settings = settings
        self.binary = binary
        self.layout = layout
        self.applied: list[Any] = []
        self.config = ConfigStatus()
        self.service_error: str | None = None
        self.wake = asyncio.Event()  # the configuration may have changed
        self._sub: Any = None

    # ------------------------------------------------------------------ what a subclass says
    def plan(self) -> tuple[list[Any], list[FieldError]]:
        """The items this node should run, or the errors that keep them from being applied."""
        raise NotImplementedError

    def render(self, items: list[Any]) -> str:
        """The configuration file's text. Raises RenderError."""
        raise NotImplementedError

    def check_argv(self) -> list[str]:
        """The daemon's check of ``layout.candidate``."""
        raise NotImplementedError

    def check_error(self, output: bytes) -> str:
        """What the check said, worth showing."""
        raise NotImplementedError

    def follow(self, items: list[Any]) -> None:
        """The agent's own state for the items that are now the running ones."""

    def stage(self, text: str, items: list[Any]) -> None:
        """Write the candidate before its check."""
        write_atomic(self.layout.candidate, text, 0o600)

    async def unchanged(self) -> None:
        """The running file is the wanted one (a reload still owed may be done now)."""

    async def installed(self, items: list[Any]) -> None:
        """A new file is in place: have the daemon read it."""

    def started(self) -> None:
        """The agent's own setup, once the daemon is there (subscribed, folders made)."""

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        """The agent's own tasks beside following events and applying."""
        return []

    def stopped(self) -> None:
        """The agent's own clean-up when it stops."""

    def on_event(self, ev: Event) -> None:
        raise NotImplementedError

    def listen(self, ev: Event) -> None:
        """Synchronous bus listener (an event as the engine decides it); must not raise."""

    # ------------------------------------------------------------------ lifecycle
    @property
    def available(self) -> bool:
        return self.binary is not None

    @property
    def reason(self) -> str | None:
        """Why the agent stays idle, or None."""
        if self.binary is not None:
            return None
        want = getattr(self.settings, self.BINARY, None) or self.BINARY
        return not_installed(self.DAEMON, want, self.PROVIDES)

    def setup(self) -> None:
        self.ctx.api.register(f"{self.name}.show", self.op_show)
        self.ctx.api.register(f"{self.name}.config", self.op_config)
        if not self.available:
            items, _ = self.plan()
            if items:
                log.warning("%d %s(s) declared, but %s", len(items), self.NOUN, self.reason)
            return
        self._sub = self.ctx.bus.subscribe(*self.SUBSCRIBE)
        self.ctx.bus.listen(self.listen)
        self.layout.make()
        self.started()

    async def run(self) -> None:
        if not self.available:
            return
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._events(), name=f"{self.name}-events")
                tg.create_task(apply_loop(self.wake, self.apply, self.WHAT), name=f"{self.name}-apply")
                for coro in self.tasks():
                    tg.create_task(coro)
        finally:
            self.stopped()
            if self._sub is not None:
                self._sub.close()

    def reconfigure(self, config: DaemonConfig) -> None:
        self.settings = config.section(self.name)
        self.wake.set()

    def statistics(self) -> dict[str, Any]:
        return {"available": self.available, "config": self.config.status, "checks": self.config.checks,
                "rejections": self.config.rejections, "reloads": self.config.reloads}

    async def _events(self) -> None:
        assert self._sub is not None
        async for ev in self._sub:
            try:
                self.on_event(ev)
            except Exception:
                log.exception("%s: handling %s failed", self.name, ev.cls)

    # ------------------------------------------------------------------ the cycle
    def sources(self) -> list[Source]:
        """Every imported service that declares a ``[<name>]`` section."""
        out = []
        for service, spec in self.ctx.services.specs().items():
            decl = spec.extensions.get(self.name)
            if decl is not None:
                out.append(Source(service, tuple(str(f) for f in spec.instance_fmris()), decl))
        return out

    def prepare(self) -> tuple[str | None, list[Any], str | None, str]:
        """(text, items, error, stage) of the configuration this node should run."""
        items, errors = self.plan()
        if errors:
            return None, items, "\n".join(str(e) for e in errors), "validate"
        try:
            return self.render(items), items, None, ""
        except RenderError as e:
            return None, items, str(e), "render"

    async def apply(self) -> str:
        """Render, check and install the configuration; 'unchanged', 'applied' or 'rejected'."""
        text, items, error, stage = self.prepare()
        if text is None:
            self.reject(stage, error or "", None)
            return "rejected"
        if self.is_current(text, items):
            await self.unchanged()
            return "unchanged"
        ok, out = await run_check(self.ctx.run, self.check_argv(), CHECK_TIMEOUT)
        result = self.checked(text, items, ok, out)
        if result == "applied":
            await self.installed(items)
        return result

    def is_current(self, text: str, items: list[Any]) -> bool:
        """True when the daemon already runs this text (or has nothing to run); else stage the candidate."""
        if text == read_text(self.layout.conf) or (not items and not os.path.exists(self.layout.conf)):
            self.took(items, changed=False)
            return True
        self.stage(text, items)
        return False

    def checked(self, text: str, items: list[Any], ok: bool, out: bytes) -> str:
        """Install the candidate the check passed, or keep the running file; 'applied' or 'rejected'."""
        self.config.checks += 1
        if not ok:
            with contextlib.suppress(OSError):
                os.replace(self.layout.candidate, self.layout.rejected)
            self.reject("config-test", self.check_error(out), text)
            return "rejected"
        os.replace(self.layout.candidate, self.layout.conf)
        self.took(items, changed=True)
        return "applied"

    def took(self, items: list[Any], *, changed: bool) -> None:
        """These items run now (``changed``: a new file was just installed)."""
        self.applied = items
        self.config.applied(changed=changed, present=bool(items) or os.path.exists(self.layout.conf))
        self.follow(items)
        if items:
            self.ensure_service()
        if changed:
            log.info("%s configuration applied: %d %s(s) (%s)", self.DAEMON, len(items), self.NOUN,
                     ", ".join(i.name for i in items) or "none")

    def reject(self, stage: str, error: str, text: str | None) -> None:
        if not self.config.reject(stage, error):
            return
        log.error("%s configuration rejected (%s), keeping the running one:\n%s", self.WHAT, stage, error)
        self.ctx.bus.emit(f"ereport.{self.name}.config.rejected", self.SERVICE, stage=stage, error=error[:4000],
                          file=self.layout.rejected if text is not None else None)

    def ensure_service(self) -> None:
        """Import the daemon's manifest once the node has items (again if the binary changed)."""
        path = getattr(self.settings, "manifest", None) or shipped("system", self.MANIFEST)
        if path is None:
            self.service_error = f"cannot find the {self.DAEMON} service manifest (manifests/system/{self.MANIFEST})"
        else:
            self.service_error = self.ctx.services.import_manifest(path, {self.BINARY.upper(): self.binary or
                                                                          self.BINARY})
        if self.service_error:
            log.error("%s service manifest: %s", self.DAEMON, self.service_error)

    # ------------------------------------------------------------------ operations
    def service_state(self) -> str:
        inst = self.ctx.services.instance(self.SERVICE)
        return inst.state.value if inst is not None else "absent"

    def config_view(self) -> dict[str, Any]:
        return self.config.view(self.layout.conf, self.layout.rejected)

    def head(self) -> dict[str, Any]:
        """What every answer starts with: whether the daemon is there, and why not."""
        return {"available": self.available, "reason": self.reason, "node": self.ctx.node}

    def service_view(self) -> dict[str, Any]:
        """The daemon, its service and its configuration's status, for ``<name>.show``."""
        return {self.BINARY: self.binary, "service": self.SERVICE, "service_state": self.service_state(),
                "service_error": self.service_error, "config": self.config_view()}

    async def op_show(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    #: ``<name>.config`` flags, each naming another file to show than the running one
    CONFIG_FILES: ClassVar[Sequence[str]] = ("rejected",)

    async def op_config(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"rejected": bool?}`` (and the agent's other ``CONFIG_FILES``) -> the running configuration
        (or that file)."""
        flags = [f for f in self.CONFIG_FILES if arg(req, f, bool, False)]
        out = self.head()
        if not self.available:
            return out
        path = getattr(self.layout, flags[0]) if flags else self.layout.conf
        out.update({"path": path, "text": read_text(path), "config": self.config_view(), **self.config_extra()})
        return out

    def config_extra(self) -> dict[str, Any]:
        """More for ``<name>.config``."""
        return {}
