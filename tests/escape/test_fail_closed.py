"""Fail closed: when `aegis` is killed with SIGKILL while the agent runs, the agent
(and a daemon it started) is terminated and writes nothing more; the ledger still
verifies and the session shows as interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from escape_support import Scenario, open_finding

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


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def pids(pidfile: Path) -> list[int]:
    return [int(p) for p in pidfile.read_text().split()] if pidfile.exists() else []


def run_and_kill(s: Scenario, attacks, command: list[object], log: Path, pidfile: Path) -> int:
    """Start the agent under Aegis, wait for it to write, SIGKILL aegis; returns the kill time (ns)."""
    proc = s.popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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


@open_finding("F1", "a daemonised descendant outlives `kill -9 aegis` and keeps writing")
def test_kill_9_of_aegis_stops_the_agent_and_its_daemon(scenario: Scenario, attacks):
    s = scenario
    log, pidfile = s.project / "log", s.project / "pids"
    killed_at = run_and_kill(s, attacks, [attacks["failclosed"], log, pidfile], log, pidfile)
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

    verify = s.verify()
    assert verify.returncode == 0, verify.stdout + verify.stderr
    sessions = s.sessions()
    assert sessions and sessions[-1].state == "interrupted", [x.state for x in sessions]
