"""Observation cost on the open-heavy worst case (``grep -r`` over a generated tree),
per runner, with pytest-benchmark: bare, the fanotify observer alone, ``aegis wrap``
with the seccomp observer, and strace. Compare the means in the table pytest-benchmark
prints (the full suite with ratios is ``python -m aegis.bench``).

    AEGIS_NATIVE_LIB=... PYTHONPATH=. .venv/bin/pytest benches/bench_observer.py --benchmark-only
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aegis.bench.runners import BareRunner, FanotifyOnlyRunner, Runner, StraceRunner, WrapRunner
from aegis.bench.workloads import Workload, make_grep_tree

FILES = 5_000
ROUNDS = 5


@pytest.fixture(scope="module")
def grep_workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    root = tmp_path_factory.mktemp("bench-observer")
    tree = make_grep_tree(root, FILES)
    return Workload(f"grep -r ({FILES} files)", "worst case", ("grep", "-r", "aegis-needle", "."), tree, tree)


@pytest.fixture(scope="module")
def bench_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-observer-home")


def _measure(benchmark, runner: Runner, workload: Workload) -> None:  # noqa: ANN001 (pytest-benchmark fixture)
    runner.prepare([workload])
    if runner.unavailable:
        pytest.skip(runner.unavailable)
    benchmark.pedantic(runner.run, args=(workload,), rounds=ROUNDS, iterations=1, warmup_rounds=1)


def test_grep_bare(benchmark, grep_workload: Workload) -> None:
    _measure(benchmark, BareRunner("bare"), grep_workload)


def test_grep_fanotify_observer(benchmark, grep_workload: Workload) -> None:
    _measure(benchmark, FanotifyOnlyRunner(), grep_workload)


@pytest.mark.parametrize("observer", ["seccomp", "fanotify"])
def test_grep_aegis_wrap(benchmark, grep_workload: Workload, bench_home: Path, observer: str,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_HOME", str(bench_home))
    _measure(benchmark, WrapRunner(observer), grep_workload)


def test_grep_strace(benchmark, grep_workload: Workload, tmp_path: Path) -> None:
    _measure(benchmark, StraceRunner(tmp_path), grep_workload)
    assert os.path.getsize(StraceRunner(tmp_path).trace_file(grep_workload)) > 0
