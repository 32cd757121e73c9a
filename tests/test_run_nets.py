"""The completeness nets in real sessions: Landlock denials the supervisor never sees
come back from the kernel's audit records, and the snapshot diff records what changed
on disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from aegis.config import load_config
from aegis.ledger import open_ledger
from aegis.nets.landlock_audit import harvest_status


def entries(name: str) -> list:
    ledger = open_ledger(load_config(name))
    try:
        return list(ledger.query())
    finally:
        ledger.close()


def aegis(*args: str, cwd: Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "aegis", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_kernel_denial_the_supervisor_does_not_see_is_harvested(tmp_path: Path) -> None:
    status = harvest_status()
    if not status.available:
        pytest.skip(status.reason)
    # mknod is not a notified syscall: only Landlock (make_fifo, read-only policy) stops it.
    proc = aegis("run", "--policy", "allow-read-only", "--", "mkfifo", str(tmp_path / "fifo"), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert not (tmp_path / "fifo").exists()
    found = entries("mkfifo")
    denials = [e for e in found if e.action == "KernelDenial"]
    assert len(denials) == 1, [(e.action, e.resource) for e in found]
    root_exit = next(e for e in found if e.action == "ProcessExit" and e.source == "waitpid")
    assert denials[0].resource == str(tmp_path)
    assert denials[0].details["blockers"] == ["fs.make_fifo"]
    assert denials[0].pid == root_exit.pid and denials[0].executable.endswith("mkfifo")
    assert not [e for e in found if e.action != "KernelDenial" and e.decision == "deny"]
    note = next(e for e in found if e.action == "ObserverNote" and e.resource == "kernel-denials")
    assert note.details["available"] is True and note.details["harvested"] == 1


def test_unprivileged_session_records_that_harvesting_is_unavailable(unprivileged: list[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    work = Path(tempfile.mkdtemp(prefix="aegis-nets-", dir="/tmp"))
    try:
        os.chmod(work, 0o755)
        home = work / "home"
        home.mkdir()
        os.chown(home, 65534, 65534)
        env_prefix = (*unprivileged, "env", f"AEGIS_HOME={home}")
        proc = aegis("run", "--", "true", cwd=work, prefix=env_prefix)
        assert proc.returncode == 0, proc.stderr
        monkeypatch.setenv("AEGIS_HOME", str(home))
        note = next(e for e in entries("true") if e.resource == "kernel-denials")
        assert note.details["available"] is False
        assert note.reason.startswith("kernel denial harvesting unavailable")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_file_changed_by_the_session_is_a_file_change(tmp_path: Path) -> None:
    (tmp_path / "kept.txt").write_text("old\n")
    script = "echo new > kept.txt; echo made > made.txt; rm -f gone.txt"
    (tmp_path / "gone.txt").write_text("bye\n")
    proc = aegis("run", "--policy", "workspace-write", "--", "sh", "-c", script, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    changes = {e.resource: e for e in entries("sh") if e.action == "FileChange"}
    assert {p: e.details["change"] for p, e in changes.items()} == {
        str(tmp_path / "kept.txt"): "modified", str(tmp_path / "made.txt"): "created",
        str(tmp_path / "gone.txt"): "deleted"}
    assert not any(e.details["unobserved"] for e in changes.values())  # the observer saw each one


def test_no_snapshot_flag_skips_the_snapshot_net(tmp_path: Path) -> None:
    proc = aegis("wrap", "--no-snapshot", "--", "sh", "-c", "echo x > f.txt", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "f.txt").read_text() == "x\n"
    found = entries("sh")
    assert not [e for e in found if e.action == "FileChange" or e.resource == "file-changes"]
    assert [e for e in found if e.action == "FileWrite" and e.resource == str(tmp_path / "f.txt")]
