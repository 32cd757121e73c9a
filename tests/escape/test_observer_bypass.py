"""Going around the observer instead of through it: io_uring (kernel-side opens
that seccomp never sees), other syscall ABIs (i386 `int $0x80`, x32), new user and
mount namespaces to shed the filter or remap a path, joining another namespace,
and executing from memory (memfd + execveat), which must still be recorded as a
ProcessSpawn."""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import uuid

import pytest
from escape_support import Scenario, assert_secret_safe, results

READ_ATTACKS = ["io-uring", "int80", "x32", "setns"]


def read_attack(scenario: Scenario, attacks, name: str) -> list[object]:
    return [attacks["bypass"], name, scenario.secret_file, scenario.secret, scenario.loot]


def kernel_has_x32(attacks, tmp_path) -> bool:
    probe = tmp_path / "probe"
    probe.write_text("x\n")
    out = subprocess.run([attacks["bypass"], "x32", probe, "x", tmp_path / "loot"], capture_output=True,
                         text=True)
    return out.returncode == 0


# setns has no control: joining PID 1's namespaces from the initial ones changes nothing without Aegis.
@pytest.mark.parametrize("name", ["io-uring", "int80", "x32", "userns-mount"])
def test_control_bypass_reads_the_secret_without_aegis(scenario: Scenario, attacks, name: str, tmp_path):
    if name == "x32" and not kernel_has_x32(attacks, tmp_path):
        pytest.skip("this kernel has no x32 ABI (CONFIG_X86_X32_ABI off): the x32 attack cannot succeed "
                    "anywhere; the sandboxed test still checks the outcome")
    argv = read_attack(scenario, attacks, name)
    if name == "userns-mount":
        decoy = scenario.home / ".ssx" / "id_rsa"
        argv = [attacks["bypass"], name, scenario.secret_file, decoy, scenario.secret, scenario.loot]
    proc = scenario.run_plain(argv)
    assert proc.returncode == 0 and scenario.secret in scenario.loot_text(), proc.stdout + proc.stderr


@pytest.mark.parametrize("name", READ_ATTACKS)
def test_bypass_does_not_read_the_secret(scenario: Scenario, attacks, name: str):
    proc = scenario.run(read_attack(scenario, attacks, name))
    # A filter that kills a foreign-ABI syscall outright (SIGSYS) is a block too.
    killed_by_filter = proc.returncode == 128 + signal.SIGSYS
    assert results(proc.stdout) or killed_by_filter, f"the attack did not run:\n{proc.stdout}\n{proc.stderr}"
    assert_secret_safe(scenario, proc)


def refused(scenario: Scenario) -> list[tuple[str, str, int]]:
    """The filter's refusals in the ledger: (syscall, deciding policy, errno)."""
    return [(e.resource, e.policy_ids[0], e.details["errno"]) for e in scenario.entries(action="SyscallDenied")]


def test_io_uring_setup_is_refused_and_recorded(scenario: Scenario, attacks):
    proc = scenario.run(read_attack(scenario, attacks, "io-uring"))
    outcome = results(proc.stdout)
    assert outcome and outcome[0][1] == "BLOCKED" and "io_uring_setup" in outcome[0][2], proc.stdout
    assert ("io_uring_setup", "aegis-syscall-filter", errno.EPERM) in refused(scenario)


def test_every_refusal_of_the_filter_is_in_the_ledger_with_its_process(scenario: Scenario):
    """F10: the filter's own refusals (no Cedar action decides them) are recorded as
    SyscallDenied with the process that tried; clone3's ENOSYS, which only makes libc
    fall back to clone on every fork, is not."""
    script = ("import ctypes, os, socket\n"
              "libc = ctypes.CDLL(None, use_errno=True)\n"
              "for family, kind in ((socket.AF_INET, socket.SOCK_DGRAM), (socket.AF_PACKET, socket.SOCK_RAW)):\n"
              "    try:\n        socket.socket(family, kind)\n    except OSError as e:\n        print(e.errno)\n"
              "print(libc.ptrace(16, os.getppid(), 0, 0), ctypes.get_errno())\n"   # PTRACE_ATTACH
              "print(libc.unshare(0x10000000), ctypes.get_errno())\n"             # CLONE_NEWUSER
              "pid = os.fork()\n"
              "if pid == 0:\n    os._exit(0)\n"
              "os.waitpid(pid, 0)\nprint(os.getpid())\n")
    proc = scenario.run(["python3", "-c", script])
    *codes, agent = proc.stdout.split()
    assert codes == [str(errno.EACCES), str(errno.EACCES), "-1", str(errno.EPERM), "-1", str(errno.EPERM)], \
        proc.stdout + proc.stderr
    got = refused(scenario)
    assert got == [("socket", "aegis-syscall-filter", errno.EACCES), ("socket", "aegis-syscall-filter", errno.EACCES),
                   ("ptrace", "aegis-syscall-filter", errno.EPERM), ("unshare", "aegis-syscall-filter", errno.EPERM)]
    entries = scenario.entries(action="SyscallDenied")
    assert {e.executable for e in entries} == {entries[0].executable} and "python3" in entries[0].executable
    assert entries[2].details["arg0"] == 16  # what was asked: PTRACE_ATTACH
    assert all(e.decision == "deny" and e.pid > 0 for e in entries)
    assert agent  # the fork went through clone3's ENOSYS and clone, unrecorded


def test_new_user_and_mount_namespace_does_not_shed_the_policy(scenario: Scenario, attacks):
    """unshare(CLONE_NEWUSER|CLONE_NEWNS), then read the secret directly and through a
    bind mount over an allowed file (the supervisor resolves paths in its own mount
    namespace, so a private mount would make the decoy's name lead to the secret)."""
    decoy = scenario.home / ".ssx" / "id_rsa"
    proc = scenario.run([attacks["bypass"], "userns-mount", scenario.secret_file, decoy, scenario.secret,
                         scenario.loot])
    assert results(proc.stdout), proc.stdout + proc.stderr
    assert_secret_safe(scenario, proc)
    assert decoy.read_text() == "decoy, not a secret\n"


@pytest.mark.parametrize("variant", ["memfd-exec", "memfd-proc-exec"])
def test_control_memfd_exec_runs(scenario: Scenario, attacks, variant: str):
    marker = f"memfd-{uuid.uuid4().hex[:8]}"
    proc = scenario.run_plain([attacks["bypass"], variant, marker])
    assert f"MEMFD-RAN {marker}" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("variant", ["memfd-exec", "memfd-proc-exec"])
def test_memfd_exec_is_recorded_as_process_spawn(scenario: Scenario, attacks, variant: str):
    """A program executed from an anonymous memory file is still a ProcessSpawn in the ledger."""
    marker = f"memfd-{uuid.uuid4().hex[:8]}"
    proc = scenario.run([attacks["bypass"], variant, marker])
    spawns = [e for e in scenario.entries(action="ProcessSpawn") if marker in json.dumps(e.to_dict())]
    # The attack's own argv names the marker too: the memfd exec is the spawn whose argv[0] is the marker.
    memfd_spawns = [e for e in spawns if "MEMFD-RAN" in json.dumps(e.to_dict())]
    assert memfd_spawns, (f"no ProcessSpawn for the memfd exec in the ledger (stdout: {proc.stdout!r}); "
                          f"spawns: {[e.to_dict() for e in scenario.entries(action='ProcessSpawn')][-5:]}")
    if f"MEMFD-RAN {marker}" in proc.stdout:
        assert any(e.decision == "allow" for e in memfd_spawns), "it ran, but the ledger says it was denied"
