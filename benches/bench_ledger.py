"""Ledger throughput: batched ingest against a naive baseline, verify and export of
a million entries.

1. Ingest: events/s appended in batches of 10,000 (canonical encoding, C chaining,
   one INSERT statement per chunk of 1,000 run by SQLite on a worker thread while
   the next chunk is encoded, commit), against the obvious implementation in the
   same run: hashlib per entry and one INSERT per row, commit per batch.
   Target: >= 250,000 events/s.
2. ``Ledger.verify`` of 1,000,000 entries. Target: <= 2 s. And the quick check
   ``aegis status`` runs (``verify(since_checkpoint=True)``): the newest checkpoint
   is at entry 950,000, so it rehashes the last 50,000.
3. ``aegis audit export NAME --format jsonl`` of those 1,000,000 entries as a real
   process: wall time and peak RSS (bounded: it streams).

    AEGIS_NATIVE_LIB=... PYTHONPATH=. .venv/bin/pytest benches/bench_ledger.py --benchmark-only -s

Numbers are wall time on a shared 2-core machine; CPU time is printed too, since
other processes competing for the cores inflate wall time but not CPU time.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis.config import load_config_dir
from aegis.ledger import Event, Ledger, open_ledger
from aegis.provision import create_config

BATCH = 10_000
INGEST_EVENTS = 200_000
MILLION = 1_000_000
SIGNED = 950_000  # the million ledger's checkpoint
REPO = Path(__file__).resolve().parents[1]


def make_events(n: int, start: int = 0) -> list[Event]:
    return [Event(action="FileRead", resource=f"/home/dev/project/src/module{i % 500}/file{i}.py",
                  decision="allow" if i % 10 else "deny", session_id="5f0c6a52-8f43-4d2e-9b7a-0d1f2f3e4a5b",
                  pid=4242, ppid=4200, executable="/usr/bin/python3.11", source="openat",
                  policy_ids=["workspace-read"]) for i in range(start, start + n)]


def ingest_aegis(path: Path, events: list[Event]) -> None:
    with Ledger.open(path) as ledger:
        for i in range(0, len(events), BATCH):
            ledger.append(events[i:i + BATCH])


def ingest_baseline(path: Path, events: list[Event]) -> None:
    """The naive ledger: every field a column, hashlib per row, one INSERT per row."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    columns = ("seq INTEGER PRIMARY KEY, ts_ns INTEGER, session_id TEXT, principal TEXT, action TEXT, "
               "resource TEXT, pid INTEGER, ppid INTEGER, executable TEXT, source TEXT, decision TEXT, "
               "policy_ids TEXT, errors TEXT, reason TEXT, details TEXT, prev_hash TEXT, hash TEXT")
    conn.execute(f"CREATE TABLE entries ({columns})")
    conn.execute("CREATE INDEX entries_session ON entries (session_id)")
    prev, seq = "0" * 64, 0
    for i in range(0, len(events), BATCH):
        conn.execute("BEGIN IMMEDIATE")
        for e in events[i:i + BATCH]:
            seq += 1
            row = (seq, e.ts_ns or time.time_ns(), e.session_id, e.principal, e.action, e.resource, e.pid,
                   e.ppid, e.executable, e.source, e.decision, json.dumps(e.policy_ids), json.dumps(e.errors),
                   e.reason, json.dumps(e.details, sort_keys=True))
            digest = hashlib.sha256((prev + json.dumps(row)).encode()).hexdigest()
            conn.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (*row, prev, digest))
            prev = digest
        conn.execute("COMMIT")
    conn.close()


def _timed(benchmark, tmp_path: Path, ingest, label: str) -> float:
    events = make_events(INGEST_EVENTS)
    paths = iter(tmp_path / f"{label}{i}.db" for i in range(100))
    cpu: list[float] = []

    def run(path: Path) -> None:
        start = time.process_time()
        ingest(path, events)
        cpu.append(time.process_time() - start)

    benchmark.pedantic(run, setup=lambda: ((next(paths),), {}), rounds=3, iterations=1)
    rate = INGEST_EVENTS / benchmark.stats.stats.min
    print(f"\n{label}: {rate:,.0f} events/s (best of 3, wall), {INGEST_EVENTS / min(cpu):,.0f} events/s "
          f"(CPU time)")
    benchmark.extra_info["events_per_second"] = rate
    return rate


def test_ingest_batched(benchmark, tmp_path: Path) -> None:
    _timed(benchmark, tmp_path, ingest_aegis, "aegis ingest")


def test_ingest_baseline_hashlib_per_row(benchmark, tmp_path: Path) -> None:
    _timed(benchmark, tmp_path, ingest_baseline, "baseline ingest (hashlib, row by row)")


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """AEGIS_HOME with config "bench" whose ledger holds 1,000,000 entries."""
    home = tmp_path_factory.mktemp("bench-home")
    old = os.environ.get("AEGIS_HOME")
    os.environ["AEGIS_HOME"] = str(home)
    try:
        create_config(home / "bench", "bench", "workspace-write", tmp_path_factory.mktemp("project"))
        with open_ledger(load_config_dir(home / "bench")) as ledger:
            for start in range(0, MILLION, 50_000):
                ledger.append(make_events(50_000, start))
                if start + 50_000 == SIGNED:
                    ledger.checkpoint()
        yield home
    finally:
        if old is None:
            os.environ.pop("AEGIS_HOME", None)
        else:
            os.environ["AEGIS_HOME"] = old


def test_verify_million(benchmark, million: Path) -> None:
    with open_ledger(load_config_dir(million / "bench")) as ledger:
        cpu: list[float] = []

        def run():
            start = time.process_time()
            result = ledger.verify()
            cpu.append(time.process_time() - start)
            return result

        result = benchmark.pedantic(run, rounds=3, iterations=1)
    assert result.ok and result.entries_checked == MILLION
    print(f"\nverify 1,000,000 entries: {benchmark.stats.stats.min:.2f} s (best of 3, wall), "
          f"{min(cpu):.2f} s CPU (both threads)")


def test_verify_since_checkpoint(benchmark, million: Path) -> None:
    with open_ledger(load_config_dir(million / "bench")) as ledger:
        result = benchmark.pedantic(lambda: ledger.verify(since_checkpoint=True), rounds=3, iterations=1)
    assert result.ok and result.entries_checked == MILLION - SIGNED and result.trusted_entries == SIGNED
    print(f"\nquick verify (checkpoint at {SIGNED:,} of {MILLION:,} entries): "
          f"{benchmark.stats.stats.min * 1000:.0f} ms")


def _vm_hwm_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def test_export_million_bounded_memory(benchmark, million: Path) -> None:
    env = {**os.environ, "AEGIS_HOME": str(million), "PYTHONPATH": str(REPO)}
    peak_kb: list[int] = []
    command = [sys.executable, "-m", "aegis", "audit", "export", "bench", "--format", "jsonl"]

    def run() -> None:
        # VmHWM of the running child, not ru_maxrss: that one also counts the pages the
        # child shared with this (large) parent between fork and exec.
        with open(os.devnull, "wb") as sink:
            proc = subprocess.Popen(command, stdout=sink, env=env)
            high = 0
            while proc.poll() is None:
                high = max(high, _vm_hwm_kb(proc.pid))
                time.sleep(0.2)
        assert proc.returncode == 0
        peak_kb.append(high)

    benchmark.pedantic(run, rounds=1, iterations=1)
    peak_mb = peak_kb[0] / 1024
    print(f"\nexport 1,000,000 entries as JSONL: {benchmark.stats.stats.min:.1f} s, "
          f"peak RSS {peak_mb:.0f} MB")
    benchmark.extra_info["peak_rss_mb"] = peak_mb
    assert peak_mb < 100
