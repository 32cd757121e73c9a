"""Signed checkpoints: stored in the ledger and appended to a file outside it.

The outside copy is what catches a deleted tail or a database rebuilt with freshly
computed hashes: the rewritten file cannot also rewrite history it never held.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from aegis.errors import AegisError
from aegis.ledger.chain import GENESIS
from aegis.ledger.signing import CheckpointBody, NoteSigner, split_notes
from aegis.ledger.storage import HASH


@dataclass(frozen=True)
class StoredNote:
    """A checkpoint note and where it was found ("ledger" or the checkpoint file)."""

    text: str
    where: str


def write_checkpoint(conn: sqlite3.Connection, signer: NoteSigner, origin: str,
                     checkpoint_file: Path | None) -> str:
    """Sign (origin, size, tip hash) of the ledger now; store it in both places."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(f"SELECT seq, {HASH} FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        size, root = (row[0], row[1]) if row else (0, GENESIS)
        note = signer.sign(CheckpointBody(origin, size, root).text())
        conn.execute("INSERT INTO checkpoints (size, root, note, created_ns) VALUES (?, ?, ?, ?)",
                     (size, root.hex(), note, time.time_ns()))
        if checkpoint_file is not None:
            append_note(checkpoint_file, note)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return note


def append_note(path: Path, note: str) -> None:
    """Append ``note`` and its separating blank line with a single write, so a crash
    never leaves half a note."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, (note + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise AegisError(f"{path}: cannot append checkpoint: {exc}") from None


def ledger_notes(conn: sqlite3.Connection) -> list[StoredNote]:
    rows = conn.execute("SELECT note FROM checkpoints ORDER BY id")
    return [StoredNote(text, "ledger") for (text,) in rows]


def file_notes(checkpoint_file: Path | None) -> list[StoredNote]:
    if checkpoint_file is None:
        return []
    try:
        text = checkpoint_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise AegisError(f"{checkpoint_file}: cannot read checkpoints: {exc}") from None
    return [StoredNote(t, str(checkpoint_file)) for t in split_notes(text)]
