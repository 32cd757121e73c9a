"""``aegis-bench`` / ``python -m aegis.bench``: run the suite, print the tables."""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from aegis.bench import micro
from aegis.bench.measure import Timing, completeness, time_all
from aegis.bench.runners import OBSERVERS, StraceRunner, make_runners
from aegis.bench.workloads import Scale, Workload, empty_dir, generate
from aegis.cli.output import echo_json, echo_table

REALISTIC_TARGET = 1.05
WORST_TARGETS = {"fanotify": 1.3, "seccomp": 1.8}
STRACE_SPEEDUP_TARGET = 5.0
STARTUP_NAME = "session start-up (true)"


Timings = dict[tuple[str, str], Timing]


def _ratio_rows(timings: Timings, workloads: list[Workload], runners: list) -> list[dict]:
    """One row per (workload, runner): median, ratio to bare, and the ratio with the
    runner's fixed per-session start-up (its median on `true`) taken out."""
    rows = []
    for w in workloads:
        bare = timings[(w.name, "bare")]
        bare_true = timings[(STARTUP_NAME, "bare")]
        for r in runners:
            t = timings[(w.name, r.name)]
            row: dict[str, Any] = {"workload": w.name, "kind": w.kind, "runner": r.name}
            if t.error or not t.samples:
                row["error"] = t.error or "no samples"
                rows.append(row)
                continue
            row["median_ms"] = t.median * 1e3
            row["runs"] = len(t.samples)
            if bare.samples and r.name != "bare":
                row["ratio"] = t.median / bare.median
                own_true = timings[(STARTUP_NAME, r.name)]
                if w.name != STARTUP_NAME and own_true.samples and bare_true.samples:
                    fixed = own_true.median - bare_true.median
                    row["net_ratio"] = max(t.median - fixed, 0.0) / bare.median
            target = _target(w, r.name)
            if target:
                row["target"] = target
            rows.append(row)
    return rows


def _target(w: Workload, runner: str) -> float | None:
    if not runner.startswith("aegis wrap") and not runner.startswith("fanotify"):
        return None
    if w.kind == "realistic":
        return REALISTIC_TARGET
    if w.kind == "worst case":
        return next((v for k, v in WORST_TARGETS.items() if k in runner), None)
    return None


def _strace_rows(timings: Timings, workloads: list[Workload], runners: list) -> list[dict]:
    rows = []
    for w in workloads:
        strace = timings.get((w.name, "strace -f"))
        if strace is None or not strace.samples or w.name == STARTUP_NAME:
            continue
        for r in runners:
            t = timings[(w.name, r.name)]
            if r.name in ("bare", "strace -f") or not t.samples:
                continue
            rows.append({"workload": w.name, "runner": r.name,
                         "strace_overhead_ms": (strace.median - timings[(w.name, "bare")].median) * 1e3,
                         "aegis_overhead_ms": (t.median - timings[(w.name, "bare")].median) * 1e3,
                         "speedup_vs_strace": strace.median / t.median, "target": STRACE_SPEEDUP_TARGET})
    return rows


def run_suite(quick: bool, runs: int | None, observers: tuple[str, ...], scratch: Path,
              progress: bool = True) -> dict[str, Any]:
    """Everything, measured in one process run; returns the JSON-ready results."""
    scale = Scale.quick() if quick else Scale.full()
    runs = runs or (1 if quick else 5)
    started = time.time()
    workloads = generate(scratch, scale)
    startup_dir = empty_dir(scratch, "startup")
    workloads.insert(0, Workload(STARTUP_NAME, "start-up", ("true",), startup_dir, startup_dir))
    runners = make_runners(scratch, observers)
    for runner in runners:
        runner.prepare(workloads)
    timings = time_all(workloads, runners, runs, warmup=0 if quick else 1, progress=progress)
    grep = next(w for w in workloads if w.kind == "worst case")
    strace = next(r for r in runners if isinstance(r, StraceRunner))
    results: dict[str, Any] = {
        "machine": {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg": os.getloadavg()},
        "quick": quick, "runs": runs, "scale": scale.__dict__,
        "overhead": _ratio_rows(timings, workloads, runners),
        "vs_strace": _strace_rows(timings, workloads, runners),
        "completeness": {"workload": grep.name, "rows": completeness(grep, runners, strace, timings)},
        "unavailable": {r.name: r.unavailable for r in runners if r.unavailable},
    }
    if progress:
        print("aegis-bench: start-up, ledger, decisions, memory", file=sys.stderr)
    results["startup"] = micro.startup(3 if quick else 10, startup_dir)
    results["ledger"] = micro.ledger_rates(20_000 if quick else 1_000_000)
    results["decisions"] = micro.decision_speed(2_000 if quick else 100_000)
    results["memory"] = micro.session_memory(20_000 if quick else 1_000_000, empty_dir(scratch, "memory"))
    results["elapsed_s"] = time.time() - started
    return results


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(results: dict[str, Any]) -> None:
    m = results["machine"]
    click.echo(f"Aegis benchmarks: kernel {m['kernel']}, {m['cpus']} CPUs, Python {m['python']}, "
               f"load {m['load_avg'][0]:.2f}; median of {results['runs']} run(s)"
               f"{' (--quick)' if results['quick'] else ''}")
    click.echo("\nObservation overhead (wall time; ratio = median / bare median; net = without the "
               "runner's fixed start-up, its median on `true`)")
    rows = []
    for r in results["overhead"]:
        if "error" in r:
            rows.append([r["workload"], r["runner"], r["error"], "", "", ""])
            continue
        rows.append([r["workload"], r["runner"], _fmt(r["median_ms"], ".1f"), _fmt(r.get("ratio")) + "x",
                     _fmt(r.get("net_ratio")) + "x" if "net_ratio" in r else "", _fmt(r.get("target")) + "x"
                     if r.get("target") else ""])
    echo_table(["workload", "runner", "median ms", "ratio", "net", "target"], rows, {2: 70})
    if results["vs_strace"]:
        click.echo("\nAgainst strace -f -e trace=file,process (speed-up = strace median / Aegis median)")
        echo_table(["workload", "runner", "strace +ms", "aegis +ms", "speed-up"],
                   [[r["workload"], r["runner"], _fmt(r["strace_overhead_ms"], ".1f"),
                     _fmt(r["aegis_overhead_ms"], ".1f"), _fmt(r["speedup_vs_strace"]) + "x"]
                    for r in results["vs_strace"]])
    comp = results["completeness"]
    click.echo(f"\nCompleteness on {comp['workload']}: files below the tree opened (strace) "
               "vs recorded (Aegis)")
    echo_table(["runner", "strace", "aegis", "missing", "extra"],
               [[r["runner"], r.get("error", r.get("strace")), r.get("aegis", ""), r.get("missing", ""),
                 r.get("extra", "")] for r in comp["rows"]])
    s = results["startup"]
    click.echo("\nStart-up: " + (s["error"] if "error" in s else
                                 f"`aegis run -- true` {s['aegis_ms']:.1f} ms vs bare {s['bare_ms']:.1f} ms "
                                 f"(+{s['overhead_ms']:.1f} ms; target <= {s['target_ms']} ms)"))
    led = results["ledger"]
    click.echo("Ledger: " + (led["error"] if "error" in led else
                             f"ingest {led['ingest_per_s']:,.0f} events/s, verify {led['verify_per_s']:,.0f} "
                             f"entries/s ({led['events']:,} events; 1M verify ~ "
                             f"{led['verify_1m_s_estimate']:.2f} s; targets >= 250,000/s and <= 2 s)"))
    d = results["decisions"]
    click.echo("Decisions: " + (d["error"] if "error" in d else
                                f"compiled {d['compiled_us']:.2f} us vs cedarpy {d['cedarpy_us']:.1f} us per "
                                f"request ({d['speedup']:.0f}x; target >= 100x), {d['mismatches']} "
                                f"mismatches over {d['requests']} requests"))
    mem = results["memory"]
    click.echo("Memory: " + (mem["error"] if "error" in mem else
                             f"peak RSS of Aegis {mem['peak_rss_mb']:.1f} MB during a "
                             f"{mem['agent_opens']:,}-open session ({mem['observer']}: "
                             f"{mem['recorded']:,} recorded, {mem['dropped']:,} dropped; "
                             f"target <= {mem['target_mb']} MB)"))
    for name, why in results["unavailable"].items():
        click.echo(f"not available: {name}: {why}")
    click.echo(f"\n({results['elapsed_s']:.0f} s)")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quick", is_flag=True, help="CI-sized: small trees, one run each, small micro benchmarks.")
@click.option("--runs", type=click.IntRange(1, 50), default=None,
              help="Timed runs per pair (default 5; 1 with --quick).")
@click.option("--observers", default=",".join(OBSERVERS), show_default=True,
              help="Comma-separated observers to run `aegis wrap` with.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON (for comparing versions).")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Generate the workloads in this directory and keep it (default: a temporary directory).")
def bench(quick: bool, runs: int | None, observers: str, as_json: bool, keep: Path | None) -> None:
    """Measure Aegis's overhead against bare runs and strace, in one run.

    Generates the workloads (Python imports, pytest, git on ~5,000 files, grep -r
    over ~13,000 files), runs each bare, under `aegis wrap` per observer, under the
    fanotify observer alone and under strace, interleaved, and prints medians and
    ratios; then completeness against strace, start-up, ledger, decision and memory
    figures. Aegis state goes to a throw-away AEGIS_HOME inside the scratch directory.
    """
    chosen = tuple(o.strip() for o in observers.split(",") if o.strip())
    scratch = keep or Path(tempfile.mkdtemp(prefix="aegis-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    old_home = os.environ.get("AEGIS_HOME")
    os.environ["AEGIS_HOME"] = str(scratch / "aegis-home")
    try:
        results = run_suite(quick, runs, chosen, scratch, progress=not as_json)
    finally:
        if old_home is None:
            os.environ.pop("AEGIS_HOME", None)
        else:
            os.environ["AEGIS_HOME"] = old_home
        if keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    if as_json:
        echo_json(results)
    else:
        print_report(results)


def main() -> None:
    bench.main(prog_name="aegis-bench")

