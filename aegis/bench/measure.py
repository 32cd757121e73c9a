"""Timing every (workload, runner) pair in interleaved rounds, and comparing the
files Aegis saw open with the files strace saw open."""

from __future__ import annotations

import re
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aegis.bench.runners import FanotifyOnlyRunner, RunFailed, Runner, StraceRunner, WrapRunner
from aegis.bench.workloads import Workload

OPEN_ACTIONS = ("FileRead", "DirList", "FileWrite")
# "12 openat(AT_FDCWD</x>, "f", O_RDONLY) = 3</x/f>" and "<... openat resumed>) = 3</x/f>"
_STRACE_OPEN = re.compile(r"\b(?:open|openat|openat2|creat)(?:\(| resumed>).*= \d+<(.+)>$")


@dataclass
class Timing:
    workload: Workload
    runner: Runner
    samples: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def time_all(workloads: list[Workload], runners: list[Runner], runs: int, warmup: int = 1,
             progress: bool = False) -> dict[tuple[str, str], Timing]:
    """``warmup`` + ``runs`` rounds; each round runs every pair once, so slow drifts in
    machine load hit every runner alike. A pair that fails once is not retried."""
    timings = {(w.name, r.name): Timing(w, r, error=r.unavailable) for w in workloads for r in runners}
    for round_no in range(warmup + runs):
        if progress:
            print(f"aegis-bench: round {round_no + 1}/{warmup + runs}", file=sys.stderr)
        for workload in workloads:
            for runner in runners:
                t = timings[(workload.name, runner.name)]
                if t.error:
                    continue
                try:
                    elapsed = runner.run(workload)
                except RunFailed as exc:
                    t.error = f"failed: {exc}"
                    continue
                if round_no >= warmup:
                    t.samples.append(elapsed)
    return timings


def strace_opened(trace: Path) -> set[str]:
    """Paths strace saw opened successfully (``-y`` prints the path of the returned fd)."""
    seen = set()
    for line in trace.read_text(errors="replace").splitlines():
        match = _STRACE_OPEN.search(line)
        if match:
            seen.add(match.group(1))
    return seen


def _below(paths: Iterable[str], tree: Path) -> set[str]:
    prefix = f"{tree}/"
    return {p for p in paths if p == str(tree) or p.startswith(prefix)}


def aegis_opened(runner: Runner, workload: Workload) -> set[str] | None:
    """Paths the runner's observer recorded as opened in its last run of ``workload``."""
    if isinstance(runner, FanotifyOnlyRunner):
        return {resource for action, resource in runner.seen.get(workload.name, []) if action in OPEN_ACTIONS}
    if isinstance(runner, WrapRunner) and workload.name in runner.last_session:
        from aegis.config import load_config_dir
        from aegis.ledger import open_ledger
        from aegis.paths import wrap_dir

        ledger = open_ledger(load_config_dir(wrap_dir(runner.wrap_name(workload))))
        try:
            return {e.resource for e in ledger.query(session=runner.last_session[workload.name])
                    if e.action in OPEN_ACTIONS}
        finally:
            ledger.close()
    return None


def completeness(workload: Workload, runners: list[Runner], strace: StraceRunner,
                 timings: dict[tuple[str, str], Timing]) -> list[dict[str, Any]]:
    """Per observer: files below the workload's tree opened according to strace, how
    many of them Aegis recorded, and what Aegis has that strace does not (from each
    runner's last run of the workload, when all its runs succeeded)."""
    trace = strace.trace_file(workload)
    if strace.unavailable or not trace.exists():
        return [{"runner": strace.name, "error": strace.unavailable or "no strace run"}]
    expected = _below(strace_opened(trace), workload.tree)
    rows = []
    for runner in runners:
        if runner.unavailable or not isinstance(runner, WrapRunner | FanotifyOnlyRunner):
            continue
        error = timings[(workload.name, runner.name)].error
        if error:
            rows.append({"runner": runner.name, "error": error})
            continue
        seen = aegis_opened(runner, workload)
        if seen is None:
            rows.append({"runner": runner.name, "error": "no completed run"})
            continue
        seen = _below(seen, workload.tree)
        rows.append({"runner": runner.name, "strace": len(expected), "aegis": len(seen & expected),
                     "missing": len(expected - seen), "extra": len(seen - expected),
                     "missing_examples": sorted(expected - seen)[:3]})
    return rows
