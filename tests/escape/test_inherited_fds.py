"""Inherited descriptors: the agent (and what it starts) sees only stdin, stdout
and stderr; no descriptor of Aegis (ledger, ring, listener, key, sockets) leaks."""

from __future__ import annotations

import subprocess

from escape_support import Scenario


def fds(stdout: str, who: str) -> dict[int, str]:
    out = {}
    for line in stdout.splitlines():
        parts = line.split(" ", 4)
        if len(parts) == 5 and parts[0] == "FD" and parts[1] == who:
            out[int(parts[2])] = parts[4]
    return out


def test_control_detector_sees_a_leaked_descriptor(scenario: Scenario, attacks):
    ledger = scenario.config_dir / "ledger.db"
    with open(ledger, "rb") as leaked:
        proc = subprocess.run([attacks["fds"]], pass_fds=(leaked.fileno(),), capture_output=True, text=True,
                              input="")
    assert str(ledger) in fds(proc.stdout, "agent").values(), proc.stdout
    assert str(ledger) in fds(proc.stdout, "child").values(), proc.stdout


def test_agent_sees_only_its_standard_descriptors(any_mode_scenario: Scenario, attacks):
    s = any_mode_scenario
    proc = s.run([attacks["fds"]])
    for who in ("agent", "child"):
        seen = fds(proc.stdout, who)
        assert set(seen) == {0, 1, 2}, f"{who} inherited extra descriptors: {seen}"
        assert not any(str(s.aegis_home) in target for target in seen.values()), seen
