"""Several writer processes and a writer killed with SIGKILL: the chain never
forks, batches are all-or-nothing, and the ledger still verifies."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from ledger_helpers import open_test_ledger

WRITER = """
import sys
from pathlib import Path
from aegis.ledger import Event, Ledger
d, tag, batches, size = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ledger = Ledger.open(d / "ledger.db", key_dir=d / "keys", checkpoint_file=d / "checkpoints.log",
                     origin="aegis/test")
if sys.argv[5] == "session":
    ledger.begin_session(command=["writer", tag], cwd="/", policy_hash="", observer="none", config="t")
print("ready", flush=True)
i = 0
while batches < 0 or i < batches:
    ledger.append([Event("FileRead", f"/{tag}/{i}/{j}", "allow", source=tag) for j in range(size)])
    i += 1
"""


def start_writer(directory: Path, tag: str, batches: int, size: int,
                 session: bool = False) -> subprocess.Popen:
    args = [str(directory), tag, str(batches), str(size), "session" if session else "-"]
    return subprocess.Popen([sys.executable, "-c", WRITER, *args], stdout=subprocess.PIPE, text=True,
                            env=os.environ)


def test_concurrent_writers_never_fork_the_chain(tmp_path: Path) -> None:
    open_test_ledger(tmp_path).close()
    writers = [start_writer(tmp_path, tag, batches=40, size=50) for tag in ("a", "b", "c")]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    with open_test_ledger(tmp_path) as ledger:
        entries = list(ledger.query())
        result = ledger.verify()
    assert result.ok and result.entries_checked == 3 * 40 * 50
    assert [e.seq for e in entries] == list(range(1, 6001))
    assert all(e.prev_hash == before.hash for before, e in zip(entries, entries[1:], strict=False))
    # Batches interleave but are never split: each run of 50 belongs to one writer.
    for start in range(0, 6000, 50):
        assert len({e.source for e in entries[start:start + 50]}) == 1


def count_events(directory: Path) -> int:
    with sqlite3.connect(directory / "ledger.db") as conn:
        return conn.execute("SELECT count(*) FROM entries WHERE json_extract(record, '$[1]') = 'event'").fetchone()[0]


def test_sigkill_mid_batch_leaves_a_verifiable_ledger(tmp_path: Path) -> None:
    open_test_ledger(tmp_path).close()
    size = 20_000
    for round_ in range(3):
        writer = start_writer(tmp_path, f"k{round_}", batches=-1, size=size, session=True)
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        committed = count_events(tmp_path)
        deadline = time.monotonic() + 60
        while count_events(tmp_path) == committed and time.monotonic() < deadline:
            time.sleep(0.02)  # wait for one batch to land, then kill during a later one
        time.sleep(0.05 + 0.1 * round_)
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(timeout=30) == -signal.SIGKILL
    events = count_events(tmp_path)
    assert events >= 3 * size and events % size == 0  # every batch landed whole or not at all
    with open_test_ledger(tmp_path) as ledger:
        sessions = ledger.sessions()
        result = ledger.verify()
    assert result.ok, result
    assert [s.state for s in sessions] == ["interrupted"] * 3
