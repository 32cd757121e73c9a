"""`aegis run` / `aegis wrap` enforce the policy on real processes and record what
happened, with the acting pid and executable, in the ledger."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from aegis.config import load_config
from aegis.ledger import open_ledger


def entries(name: str, **filters):
    ledger = open_ledger(load_config(name))
    try:
        return list(ledger.query(**filters))
    finally:
        ledger.close()


def chown_tree(path: Path, uid: int) -> None:
    for root, _, files in os.walk(path):
        os.chown(root, uid, uid)
        for f in files:
            os.chown(os.path.join(root, f), uid, uid)


@pytest.fixture(params=["root", "nobody"])
def as_user(request, tmp_path: Path, monkeypatch):
    """(command prefix, work directory): the current user in tmp_path, or uid 65534 in a
    directory (and Aegis home) it owns. The same results are expected from both."""
    if request.param == "root":
        yield [], tmp_path
        return
    prefix = request.getfixturevalue("unprivileged")
    work = Path(tempfile.mkdtemp(prefix="aegis-nobody-", dir="/tmp"))
    os.chmod(work, 0o755)
    (work / "home").mkdir(mode=0o700)
    os.chown(work / "home", 65534, 65534)
    monkeypatch.setenv("AEGIS_HOME", str(work / "home"))
    yield prefix, work
    shutil.rmtree(work, ignore_errors=True)


def run_cli(run_aegis, prefix: list[str], *args: str, cwd: Path):
    if not prefix:
        return run_aegis(*args, cwd=cwd)
    import subprocess
    import sys

    return subprocess.run([*prefix, sys.executable, "-m", "aegis", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_allow_read_only(run_aegis, as_user) -> None:
    as_user, work = as_user
    project = work / "project"
    project.mkdir()
    target = project / "notes.txt"
    target.write_text("original\n")
    if as_user:
        chown_tree(project, 65534)

    cat = run_cli(run_aegis, as_user, "run", "--", "cat", "notes.txt", cwd=project)
    assert cat.returncode == 0, cat.stderr
    assert cat.stdout == "original\n"
    reads = [e for e in entries("cat", action="FileRead") if e.resource == str(target)]
    assert len(reads) == 1 and reads[0].decision == "allow"
    assert reads[0].executable == shutil.which("cat") or os.path.realpath(shutil.which("cat"))
    spawn = [e for e in entries("cat", action="ProcessSpawn") if e.resource.endswith("/cat")]
    assert spawn and spawn[0].pid == reads[0].pid  # the spawned cat is the reader

    write = run_cli(run_aegis, as_user, "run", "--config", "cat", "--", "sh", "-c", "echo x > notes.txt",
                    cwd=project)
    assert write.returncode != 0
    assert target.read_text() == "original\n"
    denied = [e for e in entries("cat", action="FileWrite", decision="deny") if e.resource == str(target)]
    assert len(denied) == 1
    assert denied[0].executable == os.path.realpath(shutil.which("sh"))
    assert denied[0].pid > 0

    rm = run_cli(run_aegis, as_user, "run", "--config", "cat", "--", "rm", "notes.txt", cwd=project)
    assert rm.returncode != 0
    assert target.exists()
    deletes = [e for e in entries("cat", action="FileDelete", decision="deny") if e.resource == str(target)]
    assert len(deletes) == 1 and deletes[0].executable == os.path.realpath(shutil.which("rm"))


@pytest.fixture
def fake_home(monkeypatch):
    """A $HOME outside the temporary directories (which workspace-write lets the agent write)."""
    home = Path(tempfile.mkdtemp(prefix="aegis-test-home-", dir=Path.home()))
    monkeypatch.setenv("HOME", str(home))
    yield home
    shutil.rmtree(home, ignore_errors=True)


def test_workspace_write(tmp_path: Path, run_aegis, fake_home: Path) -> None:
    home = fake_home
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "id_rsa"
    key.write_text("SECRET\n")
    project = tmp_path / "project"
    project.mkdir()

    ok = run_aegis("run", "--policy", "workspace-write", "--", "sh", "-c", "echo built > out.txt",
                   cwd=project)
    assert ok.returncode == 0, ok.stderr
    assert (project / "out.txt").read_text() == "built\n"

    outside = run_aegis("run", "--config", "sh", "--", "sh", "-c", f"echo x > {home}/dropped", cwd=project)
    assert outside.returncode != 0
    assert not (home / "dropped").exists()

    secret = run_aegis("run", "--config", "sh", "--", "cat", str(key), cwd=project)
    assert secret.returncode != 0
    assert "SECRET" not in secret.stdout
    hits = [e for e in entries("sh", action="FileRead", decision="deny") if e.resource == str(key)]
    assert len(hits) == 1
    assert hits[0].policy_ids == ["forbid-secrets"]
    writes = [e for e in entries("sh", action="FileWrite") if e.resource == str(project / "out.txt")]
    assert writes and writes[0].decision == "allow" and writes[0].policy_ids == ["write-project"]


def test_aegis_home_is_unreachable_even_in_permit_all(tmp_path: Path, run_aegis, aegis_home: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    link = project / "innocent"
    probe = ("cat $AEGIS_HOME/wraps/spy/aegis.toml; ls $AEGIS_HOME; "
             f"ln -s $AEGIS_HOME/wraps/spy/ledger.db {link}; cat {link} > /dev/null; "
             "echo junk >> $AEGIS_HOME/wraps/spy/ledger.db; echo done")
    first = run_aegis("wrap", "--name", "spy", "--", "sh", "-c", "true", cwd=project)
    assert first.returncode == 0, first.stderr
    proc = run_aegis("wrap", "--name", "spy", "--", "sh", "-c", probe, cwd=project)
    assert proc.returncode == 0 and proc.stdout.strip() == "done"
    assert "Permission denied" in proc.stderr
    guarded = [e for e in entries("spy", decision="deny") if e.policy_ids == ["aegis-home-guard"]]
    resources = {e.resource for e in guarded}
    assert str(aegis_home / "wraps" / "spy" / "aegis.toml") in resources
    assert str(aegis_home / "wraps" / "spy" / "ledger.db") in resources  # through the symlink too
    assert str(aegis_home) in resources
    assert open_ledger(load_config("spy")).verify().ok
    assert not (aegis_home / "wraps" / "spy" / "ledger.db").read_bytes().endswith(b"junk\n")


def test_wrap_accumulates_sessions_and_policy_really_blocks(tmp_path: Path, run_aegis) -> None:
    out = tmp_path / "w.txt"
    for text in ("one", "two"):
        proc = run_aegis("wrap", "--name", "agent", "--", "sh", "-c", f"echo {text} > {out}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "two\n"
    blocked = run_aegis("wrap", "--name", "agent", "--policy", "allow-read-only", "--", "sh", "-c",
                        f"echo three > {out}", cwd=tmp_path)
    assert blocked.returncode != 0
    assert out.read_text() == "two\n"
    sessions = open_ledger(load_config("agent")).sessions()
    assert len(sessions) == 3


def test_exit_code_and_signal(tmp_path: Path, run_aegis) -> None:
    assert run_aegis("run", "--", "sh", "-c", "exit 42", cwd=tmp_path).returncode == 42
    killed = run_aegis("run", "--config", "sh", "--", "sh", "-c", "kill -TERM $$", cwd=tmp_path)
    assert killed.returncode == 143
    exits = [e for e in entries("sh", action="ProcessExit") if e.source == "waitpid"]
    assert [e.details.get("exit_code") for e in exits] == [42, None]
    assert exits[1].details["signal"] == 15


def assert_one_line_error(proc) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("aegis: error: ")


def test_bad_input_is_a_one_line_error(tmp_path: Path, run_aegis) -> None:
    assert_one_line_error(run_aegis("run", "--", "no-such-program-xyz", cwd=tmp_path))
    assert_one_line_error(run_aegis("run", "--config", "missing", "--", "true", cwd=tmp_path))
    assert run_aegis("run", "--", "true", cwd=tmp_path).returncode == 0
    assert_one_line_error(run_aegis("wrap", "--", "true", cwd=tmp_path))  # 'true' is an init config now
