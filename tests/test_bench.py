"""The benchmark harness runs end to end in --quick mode and reports ratios
(functional only: no timing thresholds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import aegis_import_root

from aegis.bench.cli import bench, print_report
from aegis.bench.measure import strace_opened


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    scratch = tmp_path_factory.mktemp("bench")
    # The workloads are ordinary programs (`python -m pytest` imports from its cwd): they get
    # an ordinary environment, not the -P semantics the test session gives child Pythons.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    env["PYTHONPATH"] = aegis_import_root()
    proc = subprocess.run([sys.executable, "-m", "aegis.bench", "--quick", "--json", "--observers", "seccomp",
                           "--keep", str(scratch)], capture_output=True, text=True, env=env, timeout=600,
                          cwd=scratch)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_quick_run_measures_every_workload_bare_and_wrapped(quick_results: dict) -> None:
    rows = {(r["workload"], r["runner"]): r for r in quick_results["overhead"]}
    workloads = {w for w, _ in rows}
    for prefix in ("grep -r", "git status", "git log", "pytest", "python imports", "session start-up"):
        assert any(w.startswith(prefix) for w in workloads), prefix
    for workload in workloads:
        bare = rows[(workload, "bare")]
        assert bare["median_ms"] > 0 and bare["runs"] == 1
        wrapped = rows[(workload, "aegis wrap (seccomp)")]
        assert "error" not in wrapped, wrapped
        assert wrapped["ratio"] == pytest.approx(wrapped["median_ms"] / bare["median_ms"])
        snapshot = rows[(workload, "aegis wrap (seccomp + snapshot)")]  # the snapshot net's cost, on its own row
        assert "error" not in snapshot and snapshot["median_ms"] > 0, snapshot
    grep = next(r for (w, n), r in rows.items() if w.startswith("grep -r") and n == "aegis wrap (seccomp)")
    assert grep["target"] == 1.8


@pytest.mark.slow
def test_quick_run_reports_completeness_against_strace(quick_results: dict) -> None:
    if "strace -f" in quick_results["unavailable"]:
        pytest.skip("strace is not installed")
    rows = {r["runner"]: r for r in quick_results["completeness"]["rows"]}
    seccomp = rows["aegis wrap (seccomp)"]
    # every file grep opened below the tree, as strace saw it, is in the ledger
    assert seccomp["strace"] > 1000 and seccomp["missing"] == 0, seccomp
    assert quick_results["vs_strace"], "no strace comparison rows"


@pytest.mark.slow
def test_quick_run_has_startup_ledger_decision_and_memory_figures(quick_results: dict) -> None:
    for section in ("startup", "ledger", "decisions", "memory"):
        assert "error" not in quick_results[section], (section, quick_results[section])
    assert quick_results["ledger"]["verified"] is True
    assert quick_results["decisions"]["mismatches"] == 0
    assert quick_results["memory"]["recorded"] >= quick_results["memory"]["agent_opens"]
    assert quick_results["memory"]["peak_rss_mb"] > 0


@pytest.mark.slow
def test_the_report_prints_a_table_with_ratios(quick_results: dict) -> None:
    runner = CliRunner()
    result = runner.invoke(bench, ["--help"])
    assert result.exit_code == 0 and "--quick" in result.output and "--json" in result.output

    import click

    @click.command()
    def show() -> None:
        print_report(quick_results)

    out = runner.invoke(show).output
    assert "Observation overhead" in out and "ratio" in out and "aegis wrap (seccomp)" in out
    assert any(line.startswith("grep -r") and "x" in line for line in out.splitlines())
    assert "Completeness on grep -r" in out and "Start-up:" in out and "Ledger:" in out


def test_strace_opened_reads_returned_fd_paths(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text(
        '101 openat(AT_FDCWD</t>, "a", O_RDONLY) = 3</t/a>\n'
        '101 openat(3</t>, "missing", O_RDONLY) = -1 ENOENT (No such file or directory)\n'
        '102 openat(AT_FDCWD</t>, "d", O_RDONLY|O_DIRECTORY <unfinished ...>\n'
        '102 <... openat resumed>) = 4</t/d>\n'
        '101 execve("/usr/bin/grep", ["grep"], 0x7ffd /* 10 vars */) = 0\n'
        '101 newfstatat(3</t/a>, "", {st_mode=S_IFREG|0644, st_size=3, ...}, AT_EMPTY_PATH) = 0\n')
    assert strace_opened(trace) == {"/t/a", "/t/d"}
