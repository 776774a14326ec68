"""Random service graphs for the model-based tests: one description, written out twice.

``graphs()`` is a hypothesis strategy for a ``GraphSpec``: a few services (daemons,
transient services, milestones; some with a second instance, some disabled), each with
up to three dependency groups of every grouping and restart_on value naming earlier
services, their instances, or things never imported (absent members), and some starts
scripted to fail (retried, repeatedly, or fatally). ``GraphSpec.manifests`` writes the
TOML manifests svcmgr imports; ``GraphSpec.model_instances`` the same graph for the
reference model (``smfgraph``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from smfgraph import Group, Instance

__all__ = ["GROUPINGS", "RESTART_ON", "GraphSpec", "ServiceSpec", "graphs"]

GROUPINGS = ("require_all", "require_any", "optional_all", "exclude_all")
RESTART_ON = ("none", "error", "restart", "refresh")
KINDS = ("daemon", "daemon", "daemon", "transient", "milestone")
SCRIPTS = ((), (), (), ("retry",), ("retry", "retry", "retry"), ("fatal",))


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # t/s3
    kind: str  # daemon | transient | milestone
    enabled: dict[str, bool]  # instance name -> enabled
    groups: tuple[Group, ...] = ()
    limit: int = 5  # restart.limit (period: the default 40 minutes)
    scripts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # instance name -> first starts

    @property
    def fmri(self) -> str:
        return f"svc:/{self.name}"

    def instance_fmris(self) -> list[str]:
        return [f"{self.fmri}:{n}" for n in self.enabled]


@dataclass(frozen=True)
class GraphSpec:
    services: tuple[ServiceSpec, ...]

    def fmris(self) -> list[str]:
        return sorted(f for s in self.services for f in s.instance_fmris())

    def milestones(self) -> list[str]:
        return sorted(f for s in self.services if s.kind == "milestone" for f in s.instance_fmris())

    def daemons(self) -> set[str]:
        return {f for s in self.services if s.kind == "daemon" for f in s.instance_fmris()}

    def scripts(self) -> dict[str, tuple[str, ...]]:
        return {f"{s.fmri}:{n}": sc for s in self.services for n, sc in s.scripts.items() if sc}

    def model_instances(self) -> list[Instance]:
        return [Instance(f"{s.fmri}:{n}", s.groups, enabled=on, has_process=s.kind == "daemon", limit=s.limit)
                for s in self.services for n, on in s.enabled.items()]

    def manifests(self, start: str) -> dict[str, str]:
        """File name -> TOML text; ``start`` is the start method's exec of a daemon (a TOML value)."""
        out = {}
        for s in self.services:
            lines = [f'name = "{s.name}"']
            if s.kind == "milestone":
                lines.append('type = "milestone"')
            else:
                if s.kind == "transient":
                    lines.append('duration = "transient"')
                exec_ = start if s.kind == "daemon" else '["true"]'
                lines += ["[methods.start]", f"exec = {exec_}"]
            lines += ["[restart]", f"limit = {s.limit}"]
            for g in s.groups:
                fmris = ", ".join(f'"{m}"' for m in g.members)
                lines += ["[[dependencies]]", f'name = "{g.name}"', f'grouping = "{g.grouping}"',
                          f'restart_on = "{g.restart_on}"', f"fmris = [{fmris}]"]
            for n, on in s.enabled.items():
                lines += [f"[instances.{n}]", f"enabled = {'true' if on else 'false'}"]
            out[s.name.replace("/", "-") + ".toml"] = "\n".join(lines) + "\n"
        return out


@st.composite
def _member(draw: st.DrawFn, earlier: list[ServiceSpec]) -> str:
    """An entity of a dependency group: an earlier service, one of its instances, or nothing imported."""
    if not earlier or draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(["svc:/t/ghost", "svc:/t/ghost:default", f"svc:/{earlier[0].name}:nope"]
                                    if earlier else ["svc:/t/ghost"]))
    s = draw(st.sampled_from(earlier))
    if draw(st.booleans()):
        return s.fmri
    return f"{s.fmri}:{draw(st.sampled_from(sorted(s.enabled)))}"


@st.composite
def graphs(draw: st.DrawFn, max_services: int = 7) -> GraphSpec:
    services: list[ServiceSpec] = []
    for i in range(draw(st.integers(2, max_services))):
        kind = draw(st.sampled_from(KINDS))
        names = ["default"] + (["b"] if draw(st.integers(0, 4)) == 0 else [])
        enabled = {n: draw(st.integers(0, 5)) > 0 for n in names}
        groups = []
        for k in range(draw(st.integers(0, 3)) if services else 0):
            members = tuple(draw(st.lists(_member(services), min_size=1, max_size=3, unique=True)))
            groups.append(Group(f"d{k}", draw(st.sampled_from(GROUPINGS)), draw(st.sampled_from(RESTART_ON)),
                                members))
        scripts = {n: draw(st.sampled_from(SCRIPTS)) for n in names} if kind == "daemon" else {}
        services.append(ServiceSpec(f"t/s{i}", kind, enabled, tuple(groups), draw(st.sampled_from([5, 2])),
                                    scripts))
    return GraphSpec(tuple(services))
