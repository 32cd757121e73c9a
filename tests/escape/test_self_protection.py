"""Self-protection: in every mode, including `aegis wrap` with permit-all (which
otherwise blocks nothing), the agent cannot read, write, truncate, chmod, rename
or delete Aegis's own state (ledger, keys, checkpoints, policies, config), nor
plant a policy, whether by direct path, symlink, hard link, or through the Aegis
process's /proc entries (cwd, root, fd)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from escape_support import Scenario

pytestmark = pytest.mark.slow

# For the /proc controls: a parent whose command line says "aegis" and whose cwd is the config directory.
# It holds its state files open, as Aegis holds its ledger.
STAND_IN = ("import os, subprocess, sys  # aegis stand-in\n"
            "os.chdir(sys.argv[1]); held = [open(p, 'rb') for p in os.listdir('.') if os.path.isfile(p)]\n"
            "sys.exit(subprocess.call(sys.argv[2:]))")


def targets_for(technique: str, s: Scenario) -> list[str]:
    files = [p for p in sorted(s.config_dir.rglob("*")) if p.is_file()]
    dirs = [s.config_dir / "policies", s.config_dir / "keys", s.config_dir, s.aegis_home]
    if technique == "create":
        return [str(d) for d in dirs]
    if technique in ("chmod", "rename"):
        return [str(p) for p in [*files, *dirs]]
    if technique == "proc-cwd":  # Aegis runs with its cwd in the config directory
        return [str(p.relative_to(s.config_dir)) for p in files]
    if technique == "proc-fd":
        return ["-"]
    return [str(p) for p in files]


TECHNIQUES = ["read", "write", "truncate", "create", "chmod", "rename", "delete", "symlink", "dir-symlink",
              "hardlink", "proc-cwd", "proc-root", "proc-fd"]


def attack_all(s: Scenario, attacks, technique: str, marker: str) -> list[object]:
    loop = 'p=$1; t=$2; shift 2; for f in "$@"; do "$p" "$t" "$f" "$PROJECT" "$LOOT" "$MARKER"; done'
    env = [f"PROJECT={s.project}", f"LOOT={s.loot}", f"MARKER={marker}"]
    return ["/usr/bin/env", *env, "/bin/sh", "-c", loop, "sh", attacks["selfprotect"], technique,
            *targets_for(technique, s)]


def modes(paths: list[Path]) -> dict[Path, int]:
    return {p: p.lstat().st_mode for p in paths if p.exists()}


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_control_technique_works_on_unprotected_files(scenario: Scenario, attacks, technique: str):
    """The same attack against the state `aegis init` made, without Aegis running: it succeeds."""
    s = scenario
    marker = f"PWNED-{uuid.uuid4().hex[:8]}"
    argv = attack_all(s, attacks, technique, marker)
    if technique.startswith("proc-"):
        argv = [sys.executable, "-c", STAND_IN, s.config_dir, *argv]
    proc = s.run_plain(argv)
    assert "OBTAINED" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_aegis_state_is_out_of_reach(any_mode_scenario: Scenario, attacks, technique: str):
    s = any_mode_scenario
    canary = f"CANARY-{uuid.uuid4().hex}"
    s.warm_up(canary)  # puts the canary into the ledger (the session's command)
    first = s.state_files()
    s.warm_up(canary)
    s.aegis_cwd = s.config_dir
    before = s.state_files()
    # What Aegis itself rewrites in a harmless session (ledger, WAL, checkpoints, snapshots...):
    # those may change, but must not vanish, be emptied, or carry what the agent wrote.
    aegis_written = {p for p, data in before.items() if first.get(p) != data}
    all_paths = [*before, *(p for p in s.aegis_home.rglob("*") if p.is_dir()), s.aegis_home]
    modes_before = modes(all_paths)
    marker = f"PWNED-{uuid.uuid4().hex[:8]}"

    proc = s.run(attack_all(s, attacks, technique, marker))
    assert "RESULT" in proc.stdout, f"the attack did not run:\n{proc.stdout}\n{proc.stderr}"
    problems = [line for line in proc.stdout.splitlines() if " OBTAINED " in line]

    after = s.state_files()
    for path, content in before.items():
        if path not in after:
            problems.append(f"{path} is gone")
        elif path in aegis_written:
            if content and not after[path]:
                problems.append(f"{path} was emptied")
        elif after[path] != content:
            problems.append(f"{path} was changed")
    written = f"{marker}-WRITTEN".encode()
    problems += [f"{p} contains what the agent wrote" for p, data in after.items() if written in data]
    problems += [f"{p} was planted" for p in after if p.name == "escape.cedar"]
    problems += [f"mode of {p} changed" for p, m in modes(all_paths).items() if modes_before.get(p) != m]
    loot = s.loot.read_bytes() if s.loot.exists() else b""
    if canary.encode() in loot:
        problems.append("the ledger's content was read")
    problems += [f"the content of {p} was read" for p, data in before.items()
                 if len(data) >= 32 and data[:64] in loot]
    assert problems == [], "\n".join(problems) + f"\n--- agent output:\n{proc.stdout}"
    assert s.verify().returncode == 0, "the ledger no longer verifies"
    if technique in ("read", "write", "truncate", "create", "delete", "rename"):
        home = str(s.aegis_home)
        denied = [e.resource for e in s.entries(decision="deny")]
        assert any(r.startswith(home) for r in denied), "no refused access to the Aegis home in the ledger"

