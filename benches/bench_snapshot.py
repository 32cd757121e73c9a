"""Snapshot net cost on a 50,000-file tree: a cold walk (every file read and hashed),
an end-of-session walk of an unchanged tree (digests reused, nothing read) and the diff.

Run: PYTHONPATH=. .venv/bin/python -m pytest benches/bench_snapshot.py --benchmark-only
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aegis.nets.snapshot import diff_snapshots, encode_snapshot, take_snapshot

FILES = 50_000
PER_DIR = 100


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("snapshot-bench")
    for d in range(FILES // PER_DIR):
        sub = root / f"pkg{d // 50}" / f"mod{d}"
        sub.mkdir(parents=True)
        for f in range(PER_DIR):
            (sub / f"file{f}.py").write_bytes(os.urandom(64) * (1 + f % 8))
    # settle timestamps so the reuse rule (older than the racy window) applies
    old = 1_600_000_000_000_000_000
    for path in root.rglob("*"):
        os.utime(path, ns=(old, old), follow_symlinks=False)
    return root


def test_cold_snapshot_50k(benchmark, tree: Path) -> None:
    snap = benchmark.pedantic(take_snapshot, args=([tree],), rounds=3, iterations=1)
    assert snap.files_hashed == FILES


def test_end_snapshot_unchanged_50k(benchmark, tree: Path) -> None:
    start = take_snapshot([tree])
    start.taken_ns += 10_000_000_000  # as if the session lasted longer than the racy window
    end = benchmark.pedantic(take_snapshot, args=([tree],), kwargs={"reuse": start}, rounds=3, iterations=1)
    assert end.files_hashed == 0 and end.digests_reused == FILES


def test_diff_and_encode_50k(benchmark, tree: Path) -> None:
    start = take_snapshot([tree])
    end = take_snapshot([tree], reuse=start)

    def diff_and_encode() -> bytes:
        assert diff_snapshots(start, end) == []
        return encode_snapshot(end)

    blob = benchmark.pedantic(diff_and_encode, rounds=3, iterations=1)
    benchmark.extra_info["encoded_bytes"] = len(blob)
