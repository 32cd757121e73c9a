"""Observation paths beyond the compiled table: the cedarpy slow path (residual
policies), ring overflow recorded as Drop entries, and the inotify fallback."""

from __future__ import annotations

from pathlib import Path

from support import assert_one_line_error

from aegis import paths
from aegis.config import load_config, save_config
from aegis.ledger import open_ledger
from aegis.provision import create_config
from aegis.sandbox.linux import run_session

RESIDUAL_POLICY = """
@id("read-all")
permit (principal, action in [Aegis::Action::"FileRead", Aegis::Action::"DirList",
                              Aegis::Action::"ProcessSpawn", Aegis::Action::"ProcessExit"], resource);

@id("only-tee-writes")
permit (principal, action == Aegis::Action::"FileWrite", resource)
when { context.executable like "*/tee" && resource.path like "PROJECT/*" };
"""


def test_policy_outside_the_fragment_is_decided_by_cedarpy(tmp_path: Path, run_aegis) -> None:
    config = create_config(paths.config_dir("res"), "res", "default-deny", tmp_path)
    policy = RESIDUAL_POLICY.replace("PROJECT", str(tmp_path))
    (config.directory / "policies" / "default.cedar").write_text(policy)
    ok = run_aegis("run", "--config", "res", "--", "sh", "-c", "echo hi | tee by-tee.txt",
                   cwd=tmp_path)
    assert (tmp_path / "by-tee.txt").read_text() == "hi\n", ok.stderr
    denied = run_aegis("run", "--config", "res", "--", "sh", "-c", "echo hi > by-shell.txt", cwd=tmp_path)
    assert denied.returncode != 0
    assert not (tmp_path / "by-shell.txt").exists()
    writes = {e.resource: e for e in open_ledger(load_config("res")).query(action="FileWrite")}
    tee = writes[str(tmp_path / "by-tee.txt")]
    assert (tee.decision, tee.policy_ids) == ("allow", ["only-tee-writes"])
    assert tee.executable.endswith("/tee")
    assert writes[str(tmp_path / "by-shell.txt")].decision == "deny"
    ends = open_ledger(load_config("res")).sessions()
    assert all(s.counts.get("residual", 0) > 0 for s in ends)


def test_ring_overflow_is_recorded_as_drops_never_silently(tmp_path: Path) -> None:
    config = create_config(paths.config_dir("tiny"), "tiny", "permit-all", tmp_path)
    result = run_session(config, ["sh", "-c", "for i in $(seq 100); do cat /etc/hostname; done > /dev/null"],
                         ring_capacity=2, ring_wait_ms=0)
    assert result.exit_code == 0
    assert result.counts["dropped"] > 0
    ledger = open_ledger(load_config("tiny"))
    drops = list(ledger.query(action="Drop"))
    assert sum(e.details["count"] for e in drops) == result.counts["dropped"]
    observed = [e for e in ledger.query(session=result.session_id)
                if e.action not in ("Drop", "SessionStart", "SessionEnd", "PolicySnapshot", "ObserverNote")]
    # every record the supervisor wrote is in the ledger (but the root's exit_group, when
    # it fitted in the ring, replaced by its waitpid entry); the rest is in Drop entries
    written = len([e for e in observed if e.source != "waitpid"])
    assert result.counts["records"] - 1 <= written <= result.counts["records"]
    assert result.counts["records"] + result.counts["dropped"] >= 100  # at least one open per cat


def test_inotify_fallback_records_without_pids(tmp_path: Path, run_aegis) -> None:
    project = tmp_path / "project"
    project.mkdir()
    config = create_config(paths.wrap_dir("ino"), "ino", "permit-all", project)
    config.observer = "inotify"
    save_config(config)
    proc = run_aegis("wrap", "--name", "ino", "--", "sh", "-c", "echo x > made.txt; mkdir sub; rm made.txt",
                     cwd=project)
    assert proc.returncode == 0, proc.stderr
    ledger = open_ledger(load_config("ino"))
    events = [e for e in ledger.query() if e.source == "inotify"]
    seen = {(e.action, e.resource) for e in events}
    assert ("FileWrite", str(project / "made.txt")) in seen
    assert ("DirCreate", str(project / "sub")) in seen
    assert ("FileDelete", str(project / "made.txt")) in seen
    assert all(e.pid == 0 and "no pid attribution" in e.reason for e in events)
    assert ledger.sessions()[-1].observer == "inotify"


def test_paths_are_recorded_resolved_with_and_without_symlinks(tmp_path: Path, monkeypatch) -> None:
    """The supervisor's one-walk check (no symlink on the way) and its per-component
    resolution agree with the kernel: plain paths as written, symlinks as their target,
    a final symlink not followed by O_NOFOLLOW / unlink kept as the link itself."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "data.txt").write_text("x\n")
    (tmp_path / "dirlink").symlink_to(real)
    (tmp_path / "filelink").symlink_to(real / "data.txt")
    (tmp_path / "droplink").symlink_to(real / "data.txt")
    config = create_config(paths.config_dir("links"), "links", "permit-all", tmp_path)
    monkeypatch.chdir(tmp_path)
    script = ("cat real/data.txt dirlink/data.txt filelink > /dev/null; "
              "python3 -c \"import os\ntry: os.open('filelink', os.O_RDONLY | os.O_NOFOLLOW)\n"
              "except OSError: pass\"; rm droplink; cat missing/nothing 2>/dev/null; true")
    result = run_session(config, ["sh", "-c", script], snapshot=False)
    assert result.exit_code == 0
    events = list(open_ledger(load_config("links")).query(session=result.session_id))
    reads = [e.resource for e in events if e.action == "FileRead" and e.executable.endswith("/cat")]
    target = str(real / "data.txt")
    assert reads.count(target) == 3  # written plainly, through a directory link, through a file link
    assert str(tmp_path / "missing" / "nothing") in reads  # a path that does not exist: kept as written
    nofollow = [e.resource for e in events if e.action == "FileRead" and "python" in e.executable]
    assert str(tmp_path / "filelink") in nofollow and target not in nofollow
    deletes = [e.resource for e in events if e.action == "FileDelete"]
    assert deletes == [str(tmp_path / "droplink")] and (real / "data.txt").exists()


def test_observer_flag_chooses_the_mechanism_and_the_session_records_it(tmp_path: Path, run_aegis) -> None:
    proc = run_aegis("wrap", "--observer", "inotify", "--name", "pick", "--", "sh", "-c", "echo x > f.txt",
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run_aegis("wrap", "--name", "pick", "--", "true", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sessions = open_ledger(load_config("pick")).sessions()
    assert [s.observer for s in sessions] == ["inotify", "seccomp"]  # the flag is per session
    assert_one_line_error(run_aegis("wrap", "--observer", "none", "--name", "pick", "--", "true", cwd=tmp_path))
