"""Path races (TOCTOU): a second thread changes what a path means between the
supervisor's check and the kernel's use of it. The forbidden content must never
be obtained and the forbidden state never changed, however long the race runs."""

from __future__ import annotations

import pytest
from escape_support import Scenario, assert_secret_safe, results, same_length_sibling

pytestmark = pytest.mark.slow


def stats(stdout: str) -> dict[str, int]:
    for line in stdout.splitlines():
        if line.startswith("STATS "):
            return {k: int(v) for k, v in (kv.split("=") for kv in line.split()[2:])}
    raise AssertionError(f"the attack printed no STATS line:\n{stdout}")


def test_control_race_program_reads_the_secret_when_nothing_stops_it(scenario: Scenario, attacks):
    decoy = scenario.home / ".ssx" / "id_rsa"
    proc = scenario.run_plain([attacks["toctou"], "path-read", 2, decoy, scenario.secret_file,
                               scenario.secret, scenario.loot])
    assert proc.returncode == 0 and scenario.secret in scenario.loot_text(), proc.stdout


def test_path_buffer_flip_never_reads_the_secret(scenario: Scenario, attacks):
    """Two threads: one open()s a buffer, the other flips one byte of it between
    ~/.ssx/id_rsa (allowed decoy) and ~/.ssh/id_rsa (forbidden), for 10 s."""
    decoy = scenario.home / ".ssx" / "id_rsa"
    proc = scenario.run([attacks["toctou"], "path-read", 10, decoy, scenario.secret_file, scenario.secret,
                         scenario.loot], timeout=180)
    assert_secret_safe(scenario, proc)
    counts = stats(proc.stdout)
    assert counts["allowed"] > 0, f"the race never read the decoy, so it did not really run: {counts}"
    assert counts["denied"] > 0, f"no open of the forbidden side was refused: {counts}"
    assert scenario.denials_of(scenario.secret_file, "FileRead"), "the refused reads are not in the ledger"


def test_openat2_with_a_resolve_flag_never_reads_the_secret(scenario: Scenario, attacks):
    """The same flip under openat2(..., RESOLVE_NO_MAGICLINKS): resolve flags must not
    send the open back to the kernel, which would read the buffer a second time."""
    decoy = scenario.home / ".ssx" / "id_rsa"
    proc = scenario.run([attacks["toctou"], "openat2-read", 4, decoy, scenario.secret_file, scenario.secret,
                         scenario.loot], timeout=120)
    assert_secret_safe(scenario, proc)
    assert stats(proc.stdout)["allowed"] > 0, proc.stdout


def test_cwd_flip_never_reads_the_secret(scenario: Scenario, attacks):
    """open("id_rsa") while another thread chdir()s between ~/.ssx and ~/.ssh."""
    proc = scenario.run([attacks["toctou"], "cwd-read", 4, scenario.home / ".ssx", scenario.home / ".ssh",
                         "id_rsa", scenario.secret, scenario.loot], timeout=120)
    assert_secret_safe(scenario, proc)
    assert stats(proc.stdout)["allowed"] > 0, proc.stdout


def test_dirfd_flip_never_reads_the_secret(scenario: Scenario, attacks):
    """openat(N, ".ssh/id_rsa") while another thread dup2()s N between a decoy home and the real one."""
    decoy_home = scenario.base / "decoy-home"
    (decoy_home / ".ssh").mkdir(parents=True)
    (decoy_home / ".ssh" / "id_rsa").write_text("decoy, not a secret\n")
    proc = scenario.run([attacks["toctou"], "dirfd-read", 4, decoy_home, scenario.home, ".ssh/id_rsa",
                         scenario.secret, scenario.loot], timeout=120)
    assert_secret_safe(scenario, proc)
    assert stats(proc.stdout)["allowed"] > 0, proc.stdout


def test_symlink_flip_never_reads_the_secret(scenario: Scenario, attacks):
    """open(project/link) while another thread atomically swaps the link between the decoy and the secret."""
    proc = scenario.run([attacks["toctou"], "symlink-read", 4, scenario.project / "link",
                         scenario.home / ".ssx" / "id_rsa", scenario.secret_file, scenario.secret,
                         scenario.loot],
                        timeout=120)
    assert_secret_safe(scenario, proc)
    assert stats(proc.stdout)["allowed"] > 0, proc.stdout


def test_control_write_race_creates_the_policy_file_when_nothing_stops_it(scenario: Scenario, attacks):
    target = scenario.config_dir / "policies" / "escape.cedar"
    allowed = same_length_sibling(scenario.project, target, "w")
    proc = scenario.run_plain([attacks["toctou"], "path-write", 2, allowed, target, "// planted\n"])
    assert proc.returncode == 0 and "planted" in target.read_text(), proc.stdout


def test_path_buffer_flip_cannot_plant_a_policy_in_the_aegis_home(any_mode_scenario: Scenario, attacks):
    """Race an O_CREAT open between a project file and AEGIS_HOME/.../policies/escape.cedar
    (a permit-all policy there would widen the next session). `wrap` with permit-all
    lets the agent write almost anywhere, so only the self-protection stands in the way."""
    s = any_mode_scenario
    s.warm_up("toctou-warm-up")
    target = s.config_dir / "policies" / "escape.cedar"
    allowed = same_length_sibling(s.project, target, "w")
    proc = s.run([attacks["toctou"], "path-write", 5, allowed, target,
                  "permit (principal, action, resource);\n"], timeout=120)
    assert not target.exists(), f"the agent planted {target}:\n{proc.stdout}"
    assert "OBTAINED" not in proc.stdout, proc.stdout
    assert stats(proc.stdout)["allowed"] > 0, proc.stdout
    assert s.denials_of(target), "the refused writes into the Aegis home are not in the ledger"


def test_path_buffer_flip_cannot_delete_a_file_only_the_supervisor_guards(scenario: Scenario, attacks):
    """Race unlink() between a project file and the project's .env, which `workspace-write`
    forbids inside the writable project: the kernel would let it go, the supervisor must
    not. (The Aegis home, the first target of this race, F8, is now hidden from the agent
    by the session's mount namespace as well.)"""
    s = scenario
    s.warm_up("toctou-warm-up")
    target = s.project / ".env"
    target.write_text("API_KEY=secret\n")
    allowed = same_length_sibling(s.project, target, "u")
    proc = s.run([attacks["toctou"], "path-unlink", 10, allowed, target], timeout=120)
    assert target.exists() and target.read_text() == "API_KEY=secret\n", f"the .env was deleted:\n{proc.stdout}"
    assert ("path-unlink", "BLOCKED", "race not won in time") in results(proc.stdout), proc.stdout
    assert stats(proc.stdout)["allowed"] > 0, proc.stdout
