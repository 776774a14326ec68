"""The web dashboard (``[web] listen``): services, the live graph, fault cases, virtual IPs and the fleet.

Off unless the node's configuration names a listen address. Read-only unless actions are
switched on with credentials; every read and action goes through the control socket's
operations (``Api.call``) as the viewer, so ``svcmgr.authz`` decides as it does for the
commands. See docs/dashboard.md and docs/security.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from svcmgr.web.config import section

if TYPE_CHECKING:
    from svcmgr.component import Context

__all__ = ["create"]


def create(ctx: Context) -> Any:
    """The dashboard component, or None when ``[web] listen`` is absent or empty."""
    cfg = section(ctx.config)
    if not cfg.listen:
        return None
    from svcmgr.web.server import Dashboard  # here: the server and its templates only with [web] listen

    return Dashboard(ctx, cfg)
