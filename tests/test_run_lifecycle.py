"""Session lifecycle: Ctrl-C / SIGTERM end the session cleanly, daemons never
outlive it unobserved, and the exit code is the command's."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import alive

from aegis.config import load_config
from aegis.ledger import open_ledger


def wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


# The shell's pid as this test sees it: the session has its own PID namespace, so $$
# counts inside it, but /proc is the host's, and the shell itself opens /proc/self.
HOST_PID = "read pid rest < /proc/self/stat; echo $pid"


@pytest.mark.parametrize(("signum", "expected"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_ends_the_session_and_the_agent(tmp_path: Path, signum: int, expected: int) -> None:
    marker = tmp_path / "agent.pid"
    command = ["run", "--policy", "workspace-write", "--", "sh", "-c", f"{HOST_PID} > {marker}; exec sleep 60"]
    aegis = subprocess.Popen([sys.executable, "-m", "aegis", *command],
                             cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_for(marker)
    agent = int(marker.read_text())
    aegis.send_signal(signum)
    _, err = aegis.communicate(timeout=30)
    assert aegis.returncode == expected, err
    assert "Traceback" not in err
    assert not alive(agent)
    ledger = open_ledger(load_config("sh"))
    session = ledger.sessions()[-1]
    assert session.state == "interrupted"
    assert ledger.verify().ok


def test_daemon_is_observed_then_ended_with_the_session(tmp_path: Path, run_aegis) -> None:
    marker = tmp_path / "daemon.pid"
    note = tmp_path / "daemon-wrote"
    script = (f"setsid sh -c '{HOST_PID} > {marker}; echo hi > {note}; exec sleep 300' "
              "< /dev/null > /dev/null 2>&1 & sleep 0.5; echo parent-done")
    start = time.monotonic()
    proc = run_aegis("wrap", "--name", "daemon", "--", "sh", "-c", script, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "parent-done"
    assert time.monotonic() - start < 30
    daemon = int(marker.read_text())
    assert not alive(daemon)
    events = list(open_ledger(load_config("daemon")).query())
    writes = [e for e in events if e.action == "FileWrite" and e.resource == str(note)]
    assert writes and writes[0].pid == daemon  # observed while it ran
    ended = [e for e in events if e.action == "ObserverNote" and e.resource == "session end"]
    assert ended and daemon in ended[-1].details["ended_processes"]


def test_terminal_passes_through_to_an_interactive_agent(tmp_path: Path) -> None:
    """In a TTY the agent reads the terminal, sees it as a terminal, and gets Ctrl-C itself."""
    import pexpect

    script = 'test -t 0 && echo is-a-tty; read x; echo "got $x"; sleep 30'
    args = ["-m", "aegis", "run", "--policy", "workspace-write", "--", "sh", "-c", script]
    child = pexpect.spawn(sys.executable, args, cwd=str(tmp_path), timeout=30, encoding="utf-8")
    child.expect("is-a-tty")
    child.sendline("hello")
    child.expect("got hello")
    time.sleep(0.3)
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert open_ledger(load_config("sh")).sessions()[-1].state == "interrupted"


def test_agent_never_continues_unobserved_when_aegis_dies(tmp_path: Path) -> None:
    """SIGKILL to Aegis: the root process dies with it (parent-death signal) and a
    background process loses every notified syscall (ENOSYS): it can no longer open,
    create or run anything."""
    marker = tmp_path / "started"
    late = tmp_path / "written-after-aegis-died"
    script = (f"(sleep 1; echo late > {late}; touch {late}.2) & echo $! > {marker}; exec sleep 60")
    command = [sys.executable, "-m", "aegis", "wrap", "--name", "doomed", "--", "sh", "-c", script]
    aegis = subprocess.Popen(command, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    wait_for(marker)
    background = int(marker.read_text())
    aegis.kill()
    aegis.wait(timeout=10)
    deadline = time.monotonic() + 10
    while alive(background) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not late.exists() and not Path(f"{late}.2").exists()
    ledger = open_ledger(load_config("doomed"))  # reopening marks the session interrupted
    assert ledger.sessions()[-1].state == "interrupted"
