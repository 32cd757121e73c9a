"""Thread safety as docs/api.md states it: threads appending to one aegis.Ledger,
another process appending to the same file, and several Sandbox runs at once all
extend one unforked, verifiable chain."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from support import aegis_import_root

import aegis
from aegis.ledger.ledger import Ledger as FileLedger

THREADS = 6
BATCHES = 20
BATCH = 5


def _append_from_threads(ledger: aegis.Ledger, tag: str) -> list[list[int]]:
    seqs: list[list[int]] = [[] for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        barrier.wait()
        for batch in range(BATCHES):
            events = [aegis.Event(action="ToolCall", resource=f"{tag}-{index}-{batch}-{i}", decision="allow")
                      for i in range(BATCH)]
            seqs[index].extend(ledger.append(events))
            list(ledger.query(last=3))  # reads interleaved with other threads' writes

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return seqs


def test_threads_and_another_process_append_to_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    other = (f"import aegis\nwith aegis.Ledger.open({str(path)!r}) as l:\n"
             "    for i in range(100): l.record('ToolCall', f'proc-{i}', 'deny')\n")
    process = subprocess.Popen([sys.executable, "-c", other], env={**os.environ, "PYTHONPATH": aegis_import_root()})
    with aegis.Ledger.open(path) as ledger, aegis.Ledger.open(path) as second_handle:
        seqs = _append_from_threads(ledger, "t")
        seqs += _append_from_threads(second_handle, "u")
        assert process.wait(timeout=60) == 0
        total = 2 * THREADS * BATCHES * BATCH + 100
        assert ledger.size() == total
        flat = sorted(s for per_thread in seqs for s in per_thread)
        assert len(set(flat)) == len(flat) == total - 100
        for per_thread in seqs:  # each batch got consecutive numbers (one transaction)
            for start in range(0, len(per_thread), BATCH):
                chunk = per_thread[start:start + BATCH]
                assert chunk == list(range(chunk[0], chunk[0] + BATCH))
        entries = list(ledger.query())
        assert [e.seq for e in entries] == list(range(1, total + 1))
        assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
        result = ledger.verify()
        assert result.ok and result.entries_checked == total


def test_concurrent_sandbox_runs_and_appends_form_one_chain(tmp_path: Path) -> None:
    aegis.create_config("threads", template="workspace-write", project_dir=tmp_path)
    sandbox = aegis.Sandbox("threads")
    codes: dict[int, int] = {}

    def run(index: int) -> None:
        proc = sandbox.run(["sh", "-c", f"for i in 1 2 3; do echo {index} > f{index}-$i.txt; done; exit {index}"],
                           cwd=tmp_path, stdout=subprocess.DEVNULL)
        codes[index] = proc.wait(timeout=60)

    with aegis.Ledger.open("threads") as ledger:
        runners = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for t in runners:
            t.start()
        _append_from_threads(ledger, "agent")
        for t in runners:
            t.join()
        sandbox.close()
        assert codes == {i: i for i in range(4)}
        sessions = ledger.sessions()
        assert sorted(s.exit_code for s in sessions) == [0, 1, 2, 3]
        assert all(s.state == "finished" for s in sessions)
        for session in sessions:
            writes = {Path(e.resource).name for e in ledger.query(session=session.id, action="FileWrite")}
            assert {f"f{session.exit_code}-{i}.txt" for i in (1, 2, 3)} <= writes
        entries = list(ledger.query())
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
        assert ledger.verify().ok


def test_a_query_left_half_read_does_not_lock_out_writes(tmp_path: Path) -> None:
    """An iteration paused between batches holds no read transaction: appending on
    its connection after another connection (here, as if another process) wrote
    used to fail at once with "database is locked": SQLite refuses to upgrade a
    stale read to a write, without waiting."""
    path = tmp_path / "ledger.db"
    with aegis.Ledger.open(path) as ledger, FileLedger.open(path) as other_connection:
        ledger.append([aegis.Event(action="ToolCall", resource=f"r{i}", decision="allow") for i in range(2500)])
        entries = ledger.query()
        first = next(entries)
        other_connection.append([aegis.Event(action="ToolCall", resource="other", decision="deny")])
        assert ledger.record("ToolCall", "mine", "allow") == 2502
        rest = list(entries)
        assert [e.seq for e in (first, *rest)] == list(range(1, 2501))  # the entries as of the call
        assert [e.resource for e in ledger.query(last=2)] == ["other", "mine"]
        assert [e.seq for e in ledger.query(last=3, decision="allow")] == [2499, 2500, 2502]
