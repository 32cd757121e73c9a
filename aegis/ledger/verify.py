"""Full integrity check: the chain entry by entry, then every signed checkpoint.

The chain is recomputed from the stored records (sha_chain.c checks a whole
batch of 50,000 per call while the next batch is read), so an edit to any field,
a moved byte, a missing, swapped or renumbered entry is found at its sequence
number. Checkpoints then catch what a consistent chain cannot show: entries cut
from the tail, or a database rebuilt with recomputed hashes.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from aegis.ledger.chain import GENESIS, HASH_LEN, chain_records, check_stored
from aegis.ledger.checkpoints import StoredNote, file_notes, ledger_notes
from aegis.ledger.model import VerifyResult
from aegis.ledger.signing import CheckpointBody, NoteVerifier
from aegis.ledger.storage import entries_table_sql

BATCH = 50_000
HEX_LEN = 2 * HASH_LEN


class _Problem(Exception):
    def __init__(self, seq: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.seq, self.reason, self.detail = seq, reason, detail


class _ChainChecker:
    """Checks batches of rows in order, carrying the chain from one batch to the next.

    The fast path hands a whole batch to C; only a batch that fails is read again
    column by column to say exactly which entry is bad and why.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.prev, self.next_seq, self.checked = GENESIS, 1, 0

    def check(self, rows: list[tuple[int, bytes]]) -> int | None:
        """None if the batch is good, else the last seq of the (bad) batch."""
        seqs, stored = zip(*rows, strict=True)
        consecutive = seqs[0] == self.next_seq and seqs[-1] - seqs[0] == len(rows) - 1
        bad, last = check_stored(self.prev, stored)
        if consecutive and bad is None:
            self.prev, self.next_seq, self.checked = last, seqs[-1] + 1, self.checked + len(rows)
            return None
        return seqs[-1]

    def locate(self, last_seq: int) -> _Problem:
        """The first bad entry of the batch ending at ``last_seq``, and why."""
        rows = self.conn.execute("SELECT seq, prev_hash, hash, CAST(record AS BLOB) FROM entries WHERE seq "
                                 "BETWEEN ? AND ? ORDER BY seq", (self.next_seq, last_seq)).fetchall()
        if not rows or rows[0][0] != self.next_seq:
            found = rows[0][0] if rows else last_seq
            return self._problem(self.next_seq, "gap", f"entry {self.next_seq} is missing (next stored entry "
                                 f"is {found})")
        computed = chain_records(self.prev, [r[3] for r in rows])[0].hex()
        prev, expected_seq = self.prev.hex(), self.next_seq
        for i, (seq, stored_prev, stored_hash, _record) in enumerate(rows):
            if seq != expected_seq:
                return self._problem(expected_seq, "gap",
                                     f"entry {expected_seq} is missing (next stored entry is {seq})")
            if stored_prev != prev:
                return self._problem(seq, "broken link",
                                     f"entry {seq} does not link to the hash of entry {seq - 1}")
            mine = computed[i * HEX_LEN:(i + 1) * HEX_LEN]
            if stored_hash != mine:
                return self._problem(seq, "hash mismatch",
                                     f"entry {seq}: stored hash differs from the hash of its contents")
            prev, expected_seq = mine, expected_seq + 1
        raise AssertionError(f"entries {self.next_seq}..{last_seq} failed in bulk but none differs")

    def _problem(self, seq: int, reason: str, detail: str) -> _Problem:
        self.checked += seq - self.next_seq
        return _Problem(seq, reason, detail)


def check_chain(conn: sqlite3.Connection) -> tuple[int, _Problem | None]:
    """(entries checked, first problem or None).

    Reading rows and hashing them overlap: the C hashing runs without the GIL in a
    worker thread while this thread fetches the next batch from SQLite.
    """
    checker = _ChainChecker(conn)
    cursor = conn.execute("SELECT seq, CAST(prev_hash || hash || record AS BLOB) FROM entries ORDER BY seq")
    bad_batch = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="aegis-verify") as pool:
        pending: Future[int | None] | None = None
        while rows := cursor.fetchmany(BATCH):
            if pending is not None and (bad_batch := pending.result()) is not None:
                break
            pending = pool.submit(checker.check, rows)
        else:
            bad_batch = pending.result() if pending is not None else None
    cursor.close()
    if bad_batch is None:
        return checker.checked, None
    return checker.checked, checker.locate(bad_batch)


def _check_note(conn: sqlite3.Connection, note: StoredNote, verifier: NoteVerifier | None, origin: str,
                last_seq: int) -> _Problem | None:
    where = "the ledger" if note.where == "ledger" else note.where
    if verifier is not None:
        body = verifier.verify(note.text)
        if body is None:
            try:
                size = CheckpointBody.parse(note.text.partition("\n\n")[0] + "\n").size
            except ValueError:
                size = 0
            return _Problem(size, "signature invalid", f"checkpoint in {where} has no valid signature "
                                                       f"by {verifier.name}")
    else:
        body = note.text.partition("\n\n")[0] + "\n"
    try:
        checkpoint = CheckpointBody.parse(body)
    except ValueError as exc:
        return _Problem(0, "checkpoint mismatch", f"malformed checkpoint in {where}: {exc}")
    if checkpoint.origin != origin:
        return _Problem(checkpoint.size, "checkpoint mismatch",
                        f"checkpoint in {where} is for {checkpoint.origin!r}, not {origin!r}")
    if checkpoint.size > last_seq:
        return _Problem(last_seq + 1, "checkpoint mismatch",
                        f"checkpoint in {where} covers {checkpoint.size} entries but the ledger has "
                        f"{last_seq}: entries were removed from the end")
    if checkpoint.size == 0:
        root = GENESIS.hex()
    else:
        row = conn.execute("SELECT hash FROM entries WHERE seq = ?", (checkpoint.size,)).fetchone()
        root = row[0] if row else None
    if root != checkpoint.root.hex():
        return _Problem(checkpoint.size, "checkpoint mismatch",
                        f"entry {checkpoint.size} differs from the signed checkpoint in {where}: "
                        "the ledger was rewritten")
    return None


def verify_ledger(conn: sqlite3.Connection, *, verifier: NoteVerifier | None, origin: str,
                  checkpoint_file: Path | None) -> VerifyResult:
    # The outside file first: every note in it covers entries already committed, so
    # the snapshot taken next holds them even while other writers keep appending.
    outside = file_notes(checkpoint_file)
    conn.execute("BEGIN")
    try:
        table = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'entries'").fetchone()
        if table is None or table[0] != entries_table_sql():
            return VerifyResult(0, 0, 1, "hash mismatch", "the entries table was redefined: its "
                                "columns are no longer derived from the hashed records")
        checked, problem = check_chain(conn)
        problems = [problem] if problem else []
        last_seq = conn.execute("SELECT coalesce(max(seq), 0) FROM entries").fetchone()[0]
        inside = ledger_notes(conn)
        seen = {n.text for n in inside}
        notes = inside + [n for n in outside if n.text not in seen]
        for note in notes:
            found = _check_note(conn, note, verifier, origin, last_seq)
            if found:
                problems.append(found)
    finally:
        conn.execute("COMMIT")
    result = VerifyResult(entries_checked=checked, checkpoints_checked=len(notes))
    if problems:
        first = min(problems, key=lambda p: p.seq)  # stable: a chain problem wins a tie
        result.first_bad_seq, result.reason, result.detail = first.seq, first.reason, first.detail
    return result
