"""The agent cannot touch processes outside its sandbox: not the Aegis supervisor
(ptrace, process_vm_readv/writev, /proc/PID/mem, signals, /proc/PID/cwd), and not
any other process of the user (an outside victim holding a secret in memory)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from escape_support import Scenario, results

VICTIM = """
import ctypes, sys
buf = ctypes.create_string_buffer(sys.argv[1].encode())
print(ctypes.addressof(buf), flush=True)
for _ in sys.stdin:
    print(buf.value.decode(), flush=True)
"""
# A stand-in supervisor for the controls: its command line says "aegis" like the real one.
FAKE_SUPERVISOR = "import subprocess, sys  # aegis stand-in\nsys.exit(subprocess.call(sys.argv[1:]))"


class Victim:
    """A process outside the sandbox with a secret at a known address."""

    def __init__(self) -> None:
        self.secret = f"VICTIM-SECRET-{uuid.uuid4().hex}"
        self.proc = subprocess.Popen([sys.executable, "-c", VICTIM, self.secret], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.address = int(self.proc.stdout.readline())

    def memory(self) -> str:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def victim():
    made = Victim()
    yield made
    made.close()


def victim_attack(attacks, technique: str, victim: Victim, loot) -> list[object]:
    if technique == "kill":
        return [attacks["bypass"], "kill", victim.proc.pid]
    if technique.endswith("-write"):
        return [attacks["bypass"], technique, victim.proc.pid, hex(victim.address), "PWNED"]
    return [attacks["bypass"], technique, victim.proc.pid, hex(victim.address), len(victim.secret), loot]


VICTIM_TECHNIQUES = ["ptrace-read", "vm-read", "mem-read", "vm-write", "mem-write", "kill"]


def victim_untouched(victim: Victim, loot_text: str) -> list[str]:
    problems = []
    if not victim.alive():
        return ["the victim was killed"]
    if victim.secret in loot_text:
        problems.append("the victim's secret was read")
    if victim.memory() != victim.secret:
        problems.append("the victim's memory was written")
    return problems


@pytest.mark.parametrize("technique", VICTIM_TECHNIQUES)
def test_control_outside_process_is_reachable_without_aegis(scenario: Scenario, attacks, victim, technique):
    proc = scenario.run_plain(victim_attack(attacks, technique, victim, scenario.loot))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert victim_untouched(victim, scenario.loot_text()), "the control attack had no effect"


@pytest.mark.parametrize("technique", VICTIM_TECHNIQUES)
def test_outside_process_is_out_of_reach(any_mode_scenario: Scenario, attacks, victim, technique):
    """Landlock puts the agent in a domain of its own: ptrace-class access and (ABI 6)
    signals to processes outside it are refused by the kernel, in every mode."""
    s = any_mode_scenario
    proc = s.run(victim_attack(attacks, technique, victim, s.loot))
    assert results(proc.stdout), proc.stdout + proc.stderr
    assert victim_untouched(victim, s.loot_text()) == [], proc.stdout
    assert "OBTAINED" not in proc.stdout, proc.stdout


SUPERVISOR_TECHNIQUES = ["ptrace", "vm-read", "vm-write", "mem-read", "mem-write", "kill", "cwd"]


@pytest.mark.parametrize("technique", SUPERVISOR_TECHNIQUES)
def test_control_supervisor_attack_works_on_an_unprotected_parent(scenario: Scenario, attacks, technique):
    stand_in = [sys.executable, "-c", FAKE_SUPERVISOR]
    proc = scenario.run_plain([*stand_in, attacks["bypass"], "supervisor", technique])
    if technique == "kill":
        assert proc.returncode == -9, proc  # the stand-in supervisor was killed
    else:
        assert ("OBTAINED" in proc.stdout), proc.stdout + proc.stderr


@pytest.mark.parametrize("technique", SUPERVISOR_TECHNIQUES)
def test_supervisor_is_out_of_reach(any_mode_scenario: Scenario, attacks, technique):
    s = any_mode_scenario
    proc = s.run([attacks["bypass"], "supervisor", technique])
    assert results(proc.stdout), proc.stdout + proc.stderr
    assert "OBTAINED" not in proc.stdout, proc.stdout
    assert proc.returncode == 1, f"aegis did not finish normally with the attack's exit code: {proc}"
    assert s.verify().returncode == 0
