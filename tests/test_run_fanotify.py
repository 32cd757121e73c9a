"""`aegis run --observer fanotify` (root): Landlock decides files in the kernel, fanotify
records them asynchronously, the supervisor still decides what no Landlock right covers,
and Aegis's own directories are hidden from the agent by its mount namespace."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from support import assert_one_line_error

from aegis import paths
from aegis.config import load_config
from aegis.ledger import open_ledger
from aegis.observer import fanotify
from aegis.provision import create_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not fanotify.available(),
                                reason="the fanotify observer needs root and a cgroup v2 mount")

# Read everything, write only the project: what Landlock enforces exactly.
EXACT_POLICY = """
@id("read-all")
permit (principal, action in [Aegis::Action::"FileRead", Aegis::Action::"DirList",
                              Aegis::Action::"ProcessSpawn", Aegis::Action::"ProcessExit"], resource);

@id("write-project")
permit (principal, action in [Aegis::Action::"FileWrite", Aegis::Action::"FileDelete",
                              Aegis::Action::"DirCreate"], resource)
when { resource.path like "PROJECT/*" };
"""
AGENT = ("cat README.md > copy.txt; echo outside > {outside}; ls -A {home}; chmod 600 copy.txt; "
         "rm copy.txt; cat {home}/fan/aegis.toml; exit 0")


@pytest.fixture
def outside() -> Path:
    """A path no template lets the agent write (not under a temp directory)."""
    base = Path(tempfile.mkdtemp(prefix="aegis-fanotify-", dir="/var/lib"))
    yield base / "outside.txt"
    shutil.rmtree(base)


def test_files_are_enforced_by_the_kernel_and_recorded_by_fanotify(tmp_path: Path, run_aegis, outside) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("hello\n")
    config = create_config(paths.config_dir("fan"), "fan", "default-deny", project)
    (config.directory / "policies" / "default.cedar").write_text(EXACT_POLICY.replace("PROJECT", str(project)))
    script = AGENT.format(outside=outside, home=paths.aegis_home())
    proc = run_aegis("run", "--config", "fan", "--observer", "fanotify", "--", "sh", "-c", script, cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert not outside.exists()                        # Landlock refused the write outside the project
    assert proc.stdout == ""                           # the Aegis home looks empty, its config unreadable
    assert "No such file or directory" in proc.stderr

    ledger = open_ledger(load_config("fan"))
    session = ledger.sessions()[-1]
    assert session.observer == "fanotify" and session.details["containment"] == "pid namespace"
    events = list(ledger.query(session=session.id))
    by_source = {(e.action, e.resource): e for e in events}
    read = by_source[("FileRead", str(project / "README.md"))]
    assert read.source == "fanotify" and read.pid > 0 and read.executable.endswith("/cat")
    assert by_source[("FileDelete", str(project / "copy.txt"))].source == "fanotify"
    # chmod is no Landlock right: the supervisor decided it, with the deciding policy
    chmod = next(e for e in events if e.resource == str(project / "copy.txt") and e.source == "fchmodat")
    assert chmod.decision == "allow" and chmod.policy_ids
    # the refused write is a kernel denial, harvested from the audit log (Landlock ABI >= 7)
    kernel = [e for e in events if e.action == "KernelDenial"]
    if session.details["landlock_abi"] >= 7:
        # (creating a file is refused on its directory: Landlock logs that)
        assert any(e.resource in (str(outside), str(outside.parent)) for e in kernel), kernel
    assert ledger.verify().ok


def test_a_policy_the_kernel_cannot_enforce_exactly_is_refused(tmp_path: Path, run_aegis) -> None:
    """workspace-write forbids ~/.ssh and */.env inside the readable tree: only the
    supervisor can carve those out, so it must see every open."""
    create_config(paths.config_dir("ww"), "ww", "workspace-write", tmp_path)
    proc = run_aegis("run", "--config", "ww", "--observer", "fanotify", "--", "true", cwd=tmp_path)
    assert_one_line_error(proc)
    assert "the kernel allows more than the policy for FileRead" in proc.stderr
    assert "--observer seccomp" in proc.stderr


def test_running_from_inside_the_aegis_home_is_refused(tmp_path: Path, run_aegis) -> None:
    create_config(paths.config_dir("inside"), "inside", "permit-all", tmp_path)
    proc = run_aegis("run", "--config", "inside", "--observer", "fanotify", "--", "true",
                     cwd=paths.config_dir("inside"))
    assert_one_line_error(proc)
    assert "cannot hide" in proc.stderr


def test_the_agent_starts_in_the_session_cgroup(tmp_path: Path, run_aegis) -> None:
    """Born there (clone3 CLONE_INTO_CGROUP), not moved in: its first instruction already
    runs in the cgroup named after the session, which is gone once the session ended."""
    create_config(paths.config_dir("born"), "born", "permit-all", tmp_path)
    proc = run_aegis("run", "--config", "born", "--observer", "fanotify", "--", "cat", "/proc/self/cgroup",
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    session = open_ledger(load_config("born")).sessions()[-1]
    assert f"0::/{fanotify.CGROUP_PARENT}/{session.id}" in proc.stdout.splitlines()
    assert not (fanotify.cgroup2_root() / fanotify.CGROUP_PARENT / session.id).exists()
