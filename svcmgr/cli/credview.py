"""The credential and limit lines of ``svcs -l``: who the start method runs as, with which
privileges, and the instance's resource limits (the ``context`` of a ``show`` reply).
Labels stay within SMF's column (11 characters), so the other lines keep their place."""

from __future__ import annotations

from typing import Any

from svcmgr.privileges import summary

__all__ = ["context_rows"]


def _ids(name: Any, num: Any) -> str:
    return f"{name} ({num})" if name is not None and str(name) != str(num) else str(num)


def context_rows(ctx: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(label, text) rows; nothing for a reply without a context."""
    if not ctx:
        return []
    if ctx.get("error"):
        return [("user", f"unresolved: {ctx['error']}")]
    groups = ctx.get("groups")
    rows = [("user", f"{_ids(ctx.get('user'), ctx.get('uid'))}, group {_ids(ctx.get('group'), ctx.get('gid'))}"
             + (f", groups {','.join(str(g) for g in groups)}" if groups is not None else ""))]
    declared = ctx.get("privileges")
    nnp = ", no_new_privileges" if ctx.get("no_new_privileges") else ""
    rows.append(("privileges", (f"{declared}: " if declared else "") + summary(ctx.get("capabilities")) + nnp))
    if ctx.get("limit_privileges") or ctx.get("bounding"):
        rows.append(("bounding", f"{ctx.get('limit_privileges', '')}: {summary(ctx.get('bounding'))}"))
    if ctx.get("umask"):
        rows.append(("umask", ctx["umask"]))
    for name, (soft, hard) in sorted((ctx.get("rlimits") or {}).items()):
        rows.append(("rlimit", f"{name} {soft}" + (f":{hard}" if hard != soft else "")))
    for _key, r in (ctx.get("resources") or {}).items():
        rows.append(("resource", f"{r['text']} ({r['where']})"))
    for note in ctx.get("notes") or []:
        rows.append(("note", note))
    p = ctx.get("process")
    if p:
        rows.append(("credentials", f"pid {p['pid']}: uid {p['uid']} gid {p['gid']} groups "
                     f"{','.join(str(g) for g in p['groups']) or '-'}; effective {summary(p['effective'])}; "
                     f"bounding {summary(p['bounding'])}; no_new_privs {int(p['no_new_privileges'])}"))
    return rows
