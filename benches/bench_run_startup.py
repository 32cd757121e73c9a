"""`aegis run -- true` start-up to exit (target ≤ 150 ms), next to bare `true` and
`python -c pass`, with pytest-benchmark. The config (and its compiled-policy cache)
is created by a first run outside the measurement.

    AEGIS_NATIVE_LIB=... PYTHONPATH=. .venv/bin/pytest benches/bench_run_startup.py --benchmark-only
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROUNDS = 20


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty project directory; Aegis's state in a fresh home next to it."""
    previous = os.environ.get("AEGIS_HOME")
    os.environ["AEGIS_HOME"] = str(tmp_path_factory.mktemp("startup-home"))
    yield tmp_path_factory.mktemp("startup-project")
    if previous is None:
        del os.environ["AEGIS_HOME"]
    else:
        os.environ["AEGIS_HOME"] = previous


def _run(argv: list[str], cwd: Path) -> None:
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


@pytest.mark.parametrize("what", ["true", "python -c pass", "aegis run -- true",
                                  "aegis run --no-snapshot -- true"])
def test_startup(benchmark, project: Path, what: str) -> None:
    argv = {"true": ["true"], "python -c pass": [sys.executable, "-c", "pass"],
            "aegis run -- true": [sys.executable, "-m", "aegis", "run", "--", "true"],
            "aegis run --no-snapshot -- true": [sys.executable, "-m", "aegis", "run", "--no-snapshot", "--",
                                                "true"]}[what]
    _run(argv, project)  # creates the config and the policy cache on first use
    benchmark.pedantic(_run, args=(argv, project), rounds=ROUNDS, iterations=1)
