"""The boot imports ``--manifests`` in parts and starts services as it goes (``svcmgr.bootimport``):
what a later part brings is waited for, never judged missing; each file is refused on its own."""

from __future__ import annotations

from svcmgr.bootimport import FIRST_PART


def _transient(daemon, file: str, name: str, command: str, deps: str = "") -> None:
    daemon.manifest(file, f'name = "{name}"\nduration = "transient"\n[methods.start]\nexec = "{command}"\n{deps}')


def _require(fmri: str, grouping: str = "require_all") -> str:
    return f'[[dependencies]]\nname = "late"\ngrouping = "{grouping}"\nfmris = ["{fmri}"]\n'


def test_what_depends_on_a_later_manifest_waits_for_it(daemon, tmp_path):
    late, added = tmp_path / "late-ran", tmp_path / "adder-ran"
    early = [f"svc:/early/a{i:02d}:default" for i in range(FIRST_PART + 8)]
    for i in range(len(early)):  # sorted before the late ones: the first part, and some of the next
        _transient(daemon, f"a{i:02d}.toml", f"early/a{i:02d}", f"test -e {late}", _require("svc:/zz/late:default"))
    # read in the first part, late in a later one
    # optional_all: a dependency not imported yet is not "absent, so ignored" while the boot imports
    _transient(daemon, "0-optional.toml", "early/optional", f"test -e {late}",
               _require("svc:/zz/late:default", "optional_all"))
    # a manifest read last adds a dependency to one read first (SMF's dependents)
    _transient(daemon, "0-plain.toml", "early/plain", f"test -e {added}")
    _transient(daemon, "zz-adder.toml", "zz/adder", f"touch {added}",
               '[[dependents]]\nname = "adds"\ngrouping = "require_all"\nfmris = ["svc:/early/plain"]\n')
    _transient(daemon, "zz-late.toml", "zz/late", f"sleep 0.3; touch {late}")
    daemon.start()
    waiting = [*early, "svc:/early/optional:default", "svc:/early/plain:default"]
    for f in waiting:
        daemon.wait_state(f, "online")
    for f in waiting:
        assert daemon.log(f).count("Executing start method") == 1, (f, daemon.log(f))
    said = daemon.log_text()
    assert "failed" not in said and "maintenance" not in said, said[-3000:]
    assert "which is not imported" not in said  # waited-for parts are not reported missing
    assert f"imported {len(waiting) + 2} services" in said


def test_each_file_is_imported_or_refused_on_its_own(daemon):
    one = daemon.manifest("d1.toml", 'name = "dup/x"\nduration = "transient"\n[methods.start]\nexec = "true"\n')
    two = daemon.manifest("d2.toml", 'name = "dup/x"\nduration = "transient"\n[methods.start]\nexec = "false"\n')
    _transient(daemon, "e-cycle-a.toml", "cyc/a", "true", _require("svc:/cyc/b:default"))
    cyc_b = daemon.manifest("e-cycle-b.toml", 'name = "cyc/b"\nduration = "transient"\n[methods.start]\n'
                            'exec = "true"\n' + _require("svc:/cyc/a:default"))
    daemon.manifest("f-bad.toml", 'name = "bad/x"\nduration = "forever"\n')
    _transient(daemon, "g-ok.toml", "fine/ok", "true")
    daemon.start()
    daemon.wait_state("svc:/fine/ok:default", "online")
    daemon.wait_state("svc:/dup/x:default", "online")  # the first file's: exec "true"
    said = daemon.log_text()
    assert f"import refused: {two}: name: svc:/dup/x is also declared in {one}" in said
    assert f"import refused: {cyc_b}: dependencies: dependency cycle" in said
    assert "manifest refused: " in said and "f-bad.toml: duration" in said
    assert set(daemon.instances()) == {"svc:/dup/x:default", "svc:/cyc/a:default", "svc:/fine/ok:default"}
    assert daemon.state("svc:/cyc/a:default") == "offline"  # waits for cyc/b, which was refused
    assert "cyc/b:default, which is not imported (the instance will wait for it)" in said
