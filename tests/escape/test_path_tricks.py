"""Symlinks, hard links, renames, `..`, `/proc/self/root`, `/proc/self/cwd`,
`/proc/PID/fd/N`, an `O_PATH` descriptor re-opened through /proc, `openat` with a
dirfd opened earlier, a dirfd or cwd carried across exec, and file handles: none
may reach ~/.ssh/id_rsa, which the workspace-write policy forbids."""

from __future__ import annotations

import os
import sys

import pytest
from escape_support import Scenario, assert_secret_safe

TECHNIQUES = [
    "direct", "dotdot", "slashes", "symlink", "dir-symlink", "symlink-chain", "hardlink", "rename-file",
    "rename-dir", "proc-self-root", "proc-self-cwd", "chdir-into", "proc-fd-dir", "opath-dir", "opath-reopen",
    "openat-dirfd", "open-by-handle", "chroot-openat2", "fd-across-exec", "cwd-across-exec",
]
ROOT_ONLY = {"open-by-handle": "open_by_handle_at needs CAP_DAC_READ_SEARCH",
             "chroot-openat2": "chroot needs CAP_SYS_CHROOT"}
# Refused before any path is known (seccomp errno, no notification): nothing to attribute.
NO_PATH_IN_LEDGER = {"open-by-handle", "chroot-openat2"}


def attack(scenario: Scenario, attacks, technique: str) -> list[str]:
    s = scenario
    return [attacks["paths"], technique, s.secret_file, s.home, s.project, s.secret, s.loot]


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_control_trick_reads_the_secret_without_aegis(scenario: Scenario, attacks, technique: str):
    if technique in ROOT_ONLY and os.geteuid() != 0:
        pytest.skip(f"{ROOT_ONLY[technique]} (CI runs as root)")
    proc = scenario.run_plain(attack(scenario, attacks, technique))
    # (after chroot the loot file is out of reach: the secret shows in the report line instead)
    obtained = scenario.secret in scenario.loot_text() or scenario.secret in proc.stdout
    assert proc.returncode == 0 and obtained, proc.stdout + proc.stderr


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_trick_does_not_reach_the_secret(scenario: Scenario, attacks, technique: str):
    proc = scenario.run(attack(scenario, attacks, technique))
    assert "RESULT" in proc.stdout, f"the attack did not run:\n{proc.stdout}\n{proc.stderr}"
    assert_secret_safe(scenario, proc)
    assert (scenario.home / ".ssh" / "id_rsa").is_file(), "the secret was moved away"
    if technique not in NO_PATH_IN_LEDGER:
        ssh = str(scenario.home / ".ssh")
        denied = [e.resource for e in scenario.entries(decision="deny")]
        assert any(r == ssh or r.startswith(ssh + "/") for r in denied), (
            f"no denial naming the canonical path under {ssh} in the ledger: {denied[:20]}")


def test_o_path_descriptor_of_an_allowed_directory_can_be_opened(scenario: Scenario):
    """Not an attack: the precondition of the O_PATH tricks above. Without it they
    'fail' for the wrong reason (and real programs using O_PATH break)."""
    code = "import os, sys; os.open(sys.argv[1], os.O_PATH | os.O_DIRECTORY); print('OPENED')"
    proc = scenario.run([sys.executable, "-c", code, scenario.home])
    assert "OPENED" in proc.stdout, proc.stdout + proc.stderr
