"""Integrity check: the chain entry by entry, then every signed checkpoint.

The chain is recomputed from the stored records (sha_chain.c checks a whole
batch of 50,000 per call while the next batch is read), so an edit to any field,
a moved byte, a missing, swapped or renumbered entry is found at its sequence
number. Checkpoints then catch what a consistent chain cannot show: entries cut
from the tail, or a database rebuilt with recomputed hashes.

The quick form (``since_checkpoint``) checks every checkpoint the same way but
recomputes the chain only after the newest one that is validly signed and still
matches: the entries it covers are trusted by its signature rather than rehashed.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from aegis.ledger.chain import GENESIS, check_entries
from aegis.ledger.checkpoints import StoredNote, file_notes, ledger_notes
from aegis.ledger.model import Checkpoint, VerifyResult
from aegis.ledger.signing import CheckpointBody, NoteVerifier
from aegis.ledger.storage import HASH, LAST_SEQ, entries_table_intact

BATCH = 50_000


class _Problem(Exception):
    def __init__(self, seq: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.seq, self.reason, self.detail = seq, reason, detail


@dataclass
class _Chain:
    """Where a chain check starts: the first seq and the chain hash before it."""

    next_seq: int = 1
    prev: bytes = GENESIS


def _first_gap(conn: sqlite3.Connection, start: int) -> int | None:
    """The smallest missing seq at or after ``start`` below the last entry, or None.

    seq is the integer primary key, so count == max - start + 1 means every number
    in between is there; only a ledger with a hole pays for finding it.
    """
    count, last = conn.execute("SELECT count(*), coalesce(max(seq), ?) FROM entries WHERE seq >= ?",
                               (start - 1, start)).fetchone()
    if count == last - start + 1:
        return None
    if conn.execute("SELECT 1 FROM entries WHERE seq = ?", (start,)).fetchone() is None:
        return start
    return conn.execute("SELECT min(seq) + 1 FROM entries a WHERE seq >= ? AND NOT EXISTS "
                        "(SELECT 1 FROM entries b WHERE b.seq = a.seq + 1)", (start,)).fetchone()[0]


def _bad_entry(conn: sqlite3.Connection, seq: int) -> _Problem:
    """Why entry ``seq`` failed the check. It is a broken link when the entry itself
    is intact, its hash being the chain hash of its record after some other entry
    (or at the start): it was moved, copied or inserted. Otherwise its record or
    its hash was edited. Only a failed check pays for this search."""
    stored, record = conn.execute(f"SELECT {HASH}, CAST(record AS BLOB) FROM entries WHERE seq = ?",
                                  (seq,)).fetchone()
    leaf = hashlib.sha256(b"\x00" + record).digest()
    others = (digest for (digest,) in conn.execute(f"SELECT {HASH} FROM entries WHERE seq != ?", (seq,)))
    if any(hashlib.sha256(prev + leaf).digest() == stored for prev in chain([GENESIS], others)):
        return _Problem(seq, "broken link", f"entry {seq} does not follow entry {seq - 1}: it was moved, "
                                            "copied or inserted")
    return _Problem(seq, "hash mismatch", f"entry {seq}: stored hash differs from the hash of its contents")


def check_chain(conn: sqlite3.Connection, start: _Chain) -> tuple[int, _Problem | None]:
    """(entries checked, first problem or None) from ``start`` to the last entry.

    Rows carry no seq: the gap check above proves the range is contiguous, so a
    row's position is its seq. Reading rows and hashing them overlap: the C hashing
    runs without the GIL in a worker thread while this thread fetches the next batch.
    """
    outside = conn.execute("SELECT min(seq) FROM entries WHERE seq < 1").fetchone()[0]
    if start.next_seq == 1 and outside is not None:
        return 0, _Problem(outside, "gap", f"entry {outside} is outside the chain (it starts at entry 1)")
    gap = _first_gap(conn, start.next_seq)
    end = gap if gap is not None else conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM entries").fetchone()[0]
    state = _Chain(start.next_seq, start.prev)

    def check(rows: list[tuple[bytes]]) -> int | None:
        """None if the batch is good, else the seq of its first bad entry."""
        bad, last = check_entries(state.prev, list(chain.from_iterable(rows)))
        state.prev, state.next_seq = last, state.next_seq + (len(rows) if bad is None else bad)
        return None if bad is None else state.next_seq

    cursor = conn.execute("SELECT CAST(hash || record AS BLOB) FROM entries "
                          "WHERE seq >= ? AND seq < ? ORDER BY seq", (start.next_seq, end))
    bad_seq = None
    # Imported here: concurrent.futures pulls in logging, which `aegis run` start-up need not pay for.
    from concurrent.futures import Future, ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="aegis-verify") as pool:
        pending: Future[int | None] | None = None
        while rows := cursor.fetchmany(BATCH):
            if pending is not None and (bad_seq := pending.result()) is not None:
                break
            pending = pool.submit(check, rows)
        else:
            bad_seq = pending.result() if pending is not None else None
    cursor.close()
    checked = state.next_seq - start.next_seq
    if bad_seq is not None:
        return checked, _bad_entry(conn, bad_seq)
    if gap is not None:
        found = conn.execute("SELECT min(seq) FROM entries WHERE seq > ?", (gap,)).fetchone()[0]
        return checked, _Problem(gap, "gap", f"entry {gap} is missing (next stored entry is {found})")
    return checked, None


def read_checkpoints(conn: sqlite3.Connection, verifier: NoteVerifier | None,
                     checkpoint_file: Path | None) -> list[Checkpoint]:
    """Every checkpoint in the ledger (oldest first), then those only in the checkpoint
    file, parsed; malformed notes are left out (``verify`` reports them)."""
    created = dict(conn.execute("SELECT note, created_ns FROM checkpoints"))
    found = []
    for note in _notes(conn, checkpoint_file):
        try:
            body = CheckpointBody.parse(note.text.partition("\n\n")[0] + "\n")
        except ValueError:
            continue
        valid = None if verifier is None else verifier.verify(note.text) is not None
        found.append(Checkpoint(origin=body.origin, size=body.size, root=body.root.hex(), where=note.where,
                                signature_valid=valid, created_ns=created.get(note.text)))
    return found


def _notes(conn: sqlite3.Connection, checkpoint_file: Path | None) -> list[StoredNote]:
    # The outside file first: every note in it covers entries already committed, so
    # the snapshot taken next holds them even while other writers keep appending.
    outside = file_notes(checkpoint_file)
    inside = ledger_notes(conn)
    seen = {n.text for n in inside}
    return inside + [n for n in outside if n.text not in seen]


def _check_note(conn: sqlite3.Connection, note: StoredNote, verifier: NoteVerifier | None, origin: str,
                last_seq: int) -> tuple[CheckpointBody | None, _Problem | None]:
    """(the checkpoint if it was signed by ``verifier`` and matches, its problem if any)."""
    where = "the ledger" if note.where == "ledger" else note.where
    if verifier is not None:
        body = verifier.verify(note.text)
        if body is None:
            try:
                size = CheckpointBody.parse(note.text.partition("\n\n")[0] + "\n").size
            except ValueError:
                size = 0
            return None, _Problem(size, "signature invalid", f"checkpoint in {where} has no valid signature "
                                                             f"by {verifier.name}")
    else:
        body = note.text.partition("\n\n")[0] + "\n"
    try:
        checkpoint = CheckpointBody.parse(body)
    except ValueError as exc:
        return None, _Problem(0, "checkpoint mismatch", f"malformed checkpoint in {where}: {exc}")
    if checkpoint.origin != origin:
        return None, _Problem(checkpoint.size, "checkpoint mismatch",
                              f"checkpoint in {where} is for {checkpoint.origin!r}, not {origin!r}")
    if checkpoint.size > last_seq:
        return None, _Problem(last_seq + 1, "checkpoint mismatch",
                              f"checkpoint in {where} covers {checkpoint.size} entries but the ledger has "
                              f"{last_seq}: entries were removed from the end")
    if checkpoint.size == 0:
        root = GENESIS
    else:
        row = conn.execute(f"SELECT {HASH} FROM entries WHERE seq = ?", (checkpoint.size,)).fetchone()
        root = row[0] if row else None
    if root != checkpoint.root:
        return None, _Problem(checkpoint.size, "checkpoint mismatch",
                              f"entry {checkpoint.size} differs from the signed checkpoint in {where}: "
                              "the ledger was rewritten")
    return (checkpoint if verifier is not None else None), None


def verify_ledger(conn: sqlite3.Connection, *, verifier: NoteVerifier | None, origin: str,
                  checkpoint_file: Path | None, since_checkpoint: bool = False) -> VerifyResult:
    notes = _notes(conn, checkpoint_file)
    conn.execute("BEGIN")
    try:
        if not entries_table_intact(conn):
            return VerifyResult(0, 0, 1, "hash mismatch", "the entries table was redefined: it no longer "
                                "holds exactly the hashed records and their hashes")
        last_seq = conn.execute(LAST_SEQ).fetchone()[0]
        note_problems, start = [], _Chain()
        for note in notes:
            good, problem = _check_note(conn, note, verifier, origin, last_seq)
            if problem:
                note_problems.append(problem)
            elif since_checkpoint and good is not None and good.size >= start.next_seq:
                start = _Chain(good.size + 1, good.root)
        checked, problem = check_chain(conn, start)
    finally:
        conn.execute("COMMIT")
    problems = ([problem] if problem else []) + note_problems  # a chain problem wins a tie
    result = VerifyResult(entries_checked=checked, checkpoints_checked=len(notes),
                          trusted_entries=start.next_seq - 1)
    if problems:
        first = min(problems, key=lambda p: p.seq)  # min is stable
        result.first_bad_seq, result.reason, result.detail = first.seq, first.reason, first.detail
    return result
