"""Fail closed: when `aegis` is killed with SIGKILL while the agent runs, the agent
(and a daemon it started) is terminated and writes nothing more; the ledger still
verifies and the session shows as interrupted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from escape_support import Scenario
from support import alive

pytestmark = pytest.mark.slow

GRACE_NS = 200_000_000  # a write already inside the kernel when the kill lands may still complete


def lines(log: Path) -> list[tuple[str, int]]:
    out = []
    for line in log.read_text().splitlines() if log.exists() else []:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out.append((parts[0], int(parts[1])))
    return out


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def pids(pidfile: Path) -> list[int]:
    return [int(p) for p in pidfile.read_text().split()] if pidfile.exists() else []


def kill_aegis_mid_session(proc: subprocess.Popen, log: Path, pidfile: Path) -> int:
    """Wait for the agent under ``proc`` (aegis) to write, SIGKILL aegis; returns the kill time (ns)."""
    try:
        ok = wait_for(lambda: sum(1 for k, _ in lines(log) if k == "D") >= 5 and len(pids(pidfile)) >= 2, 30)
        assert ok, f"the agent never got going under aegis: exit {proc.poll()}"
        killed_at = time.time_ns()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    return killed_at


def assert_nothing_outlived(log: Path, pidfile: Path, killed_at: int) -> None:
    """Every agent process is gone and nothing was written after the kill."""
    try:
        gone = wait_for(lambda: not any(alive(p) for p in pids(pidfile)), 5)
        late = [(k, ts) for k, ts in lines(log) if ts > killed_at + GRACE_NS]
        survivors = [p for p in pids(pidfile) if alive(p)]
        assert gone, f"agent processes survived the death of aegis: {survivors}"
        assert late == [], f"{len(late)} writes happened after aegis was killed (first: {late[:3]})"
    finally:
        for pid in pids(pidfile):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_control_agent_keeps_writing_when_its_parent_dies(scenario: Scenario, attacks):
    log, pidfile = scenario.project / "log", scenario.project / "pids"
    stand_in = subprocess.Popen(["/bin/sh", "-c", '"$@"; :', "sh", attacks["failclosed"], log, pidfile],
                                cwd=scenario.project, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(pids(pidfile)) >= 2 and len(lines(log)) >= 5, 10)
        killed_at = time.time_ns()
        stand_in.kill()
        stand_in.wait()
        time.sleep(0.5)
        assert any(ts > killed_at + GRACE_NS for _, ts in lines(log)), "the control agent stopped by itself"
    finally:
        for pid in pids(pidfile):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_kill_9_of_aegis_stops_the_agent_and_its_daemon(scenario: Scenario, attacks):
    s = scenario
    log, pidfile = s.project / "log", s.project / "pids"
    proc = s.popen([attacks["failclosed"], log, pidfile], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    assert_nothing_outlived(log, pidfile, kill_aegis_mid_session(proc, log, pidfile))

    verify = s.verify()
    assert verify.returncode == 0, verify.stdout + verify.stderr
    sessions = s.sessions()
    assert sessions and sessions[-1].state == "interrupted", [x.state for x in sessions]
    assert sessions[-1].details["containment"] == "pid namespace"


def test_kill_9_of_unprivileged_aegis_stops_the_agent_and_its_daemon(attacks, unprivileged):
    """The same as uid 65534: the PID namespace is owned by a new user namespace."""
    work = Path(tempfile.mkdtemp(prefix="aegis-failclosed-", dir="/tmp"))
    try:
        os.chmod(work, 0o755)
        for sub in ("home", "project"):
            (work / sub).mkdir()
            os.chown(work / sub, 65534, 65534)
        agent = work / "failclosed"
        shutil.copy(attacks["failclosed"], agent)
        log, pidfile = work / "project" / "log", work / "project" / "pids"
        env = {**os.environ, "AEGIS_HOME": str(work / "home"), "HOME": str(work / "home")}
        aegis = [*unprivileged, sys.executable, "-m", "aegis"]
        subprocess.run([*aegis, "init", "nobody", "--policy", "workspace-write", "--dir", str(work / "project")],
                       env=env, cwd=work / "project", check=True, capture_output=True)
        proc = subprocess.Popen([*aegis, "run", "--config", "nobody", "--", str(agent), str(log), str(pidfile)],
                                env=env, cwd=work / "project", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        assert_nothing_outlived(log, pidfile, kill_aegis_mid_session(proc, log, pidfile))
        sessions = subprocess.run([*aegis, "audit", "sessions", "nobody", "--json"], env=env, cwd=work,
                                  capture_output=True, text=True, check=True)
        assert '"interrupted"' in sessions.stdout and "pid namespace in a user namespace" in sessions.stdout
    finally:
        shutil.rmtree(work, ignore_errors=True)
