"""Reading entries back: filters as SQL over the hashed records, rows as Entry."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aegis.ledger.canonical import decode_record
from aegis.ledger.model import KIND_EVENT, Entry
from aegis.ledger.storage import BOOKKEEPING, HASH, KIND, LAST_SEQ, database_errors, field_sql

SELECT_ENTRIES = f"SELECT seq, record, {HASH} FROM entries"
_HASH_OF = f"SELECT {HASH} FROM entries WHERE seq = ?"
_GENESIS_HEX = "00" * 32

@dataclass
class EntryFilter:
    """Which entries to read; every criterion given must hold."""

    last: int | None = None
    action: str | None = None
    decision: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    session: str | None = None
    path_glob: str | None = None
    after_seq: int | None = None
    kind: str | None = None

    def _where(self) -> tuple[list[str], list[Any]]:
        """Conditions (and their parameters) of every criterion but ``last``."""
        where, params = [], []
        for column, op, value in ((field_sql("action"), "=", self.action),
                                  (field_sql("decision"), "=", self.decision),
                                  (field_sql("ts_ns"), ">=", self.since_ns), (field_sql("ts_ns"), "<", self.until_ns),
                                  (field_sql("session_id"), "=", self.session),
                                  (field_sql("resource"), "GLOB", self.path_glob),
                                  ("seq", ">", self.after_seq), (KIND, "=", self.kind)):
            if value is not None:
                where.append(f"{column} {op} ?")
                params.append(value)
        if self.kind not in (None, KIND_EVENT):
            where.append(BOOKKEEPING)
        return where, params

    def page_sql(self, after: int, upper: int, limit: int) -> tuple[str, list[Any]]:
        """The SELECT of up to ``limit`` matching entries with after < seq <= upper,
        ascending seq (``last`` is applied by the caller through ``after``)."""
        where, params = self._where()
        where.append("seq > ? AND seq <= ?")
        return (f"{SELECT_ENTRIES} WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
                [*params, after, upper, limit])

    def last_start_sql(self, upper: int) -> tuple[str, list[Any]]:
        """The SELECT of the seq of the ``last``-th newest matching entry up to ``upper``
        (no row when fewer match)."""
        where, params = self._where()
        where.append("seq <= ?")
        return (f"SELECT seq FROM entries WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT 1 OFFSET ?",
                [*params, upper, (self.last or 1) - 1])


class EntryReader:
    """Rows of SELECT_ENTRIES, read in ascending seq, as Entry.

    An entry's previous hash is the hash of the entry before it: the row just read
    when the rows are consecutive (an export reads every row once), else looked up.
    The first entry's is all zeros; one after a missing entry has none.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._seq: int | None = None
        self._hash = ""

    def look_up_gaps(self, rows: list[tuple[int, str, bytes]]) -> dict[int, str]:
        """The previous hash of each row that does not follow the row read before it,
        by seq. Call it in the rows' read transaction, after every earlier row was
        turned into an Entry and before ``entries(rows, ...)``."""
        gaps = {}
        before = self._seq
        for seq, _record, _digest in rows:
            if seq != 1 and seq - 1 != before:
                found = self._conn.execute(_HASH_OF, (seq - 1,)).fetchone()
                gaps[seq] = found[0].hex() if found else ""
            before = seq
        return gaps

    def entries(self, rows: list[tuple[int, str, bytes]], gaps: dict[int, str]) -> Iterator[Entry]:
        """``rows`` as Entry, lazily (no database access: ``gaps`` has what is looked up)."""
        for seq, record, digest in rows:
            prev_hash = _GENESIS_HEX if seq == 1 else gaps.get(seq, self._hash)
            self._seq, self._hash = seq, digest.hex()
            (ts_ns, kind, session_id, principal, action, resource, pid, ppid, executable, source, decision,
             policy_ids, errors, reason, details) = decode_record(record)
            # Positional, in Entry's field order: keyword arguments cost a fifth more per row.
            yield Entry(action, resource, decision, session_id, principal, pid, ppid, executable, source, policy_ids,
                        errors, reason, details, ts_ns, seq, kind, prev_hash, self._hash)


@contextmanager
def _batch(conn: sqlite3.Connection, lock: threading.RLock, path: Path) -> Iterator[None]:
    """One read transaction under ``lock``: a batch's statements share one snapshot
    (and one WAL read lock rather than one per statement), and none stays open."""
    with lock, database_errors(path):
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")


def iter_entries(conn: sqlite3.Connection, lock: threading.RLock, path: Path, entry_filter: EntryFilter,
                 batch: int = 1000) -> Iterator[Entry]:
    """Matching entries as of the call, in ascending seq, read in batches (constant memory).

    Each batch is read in one transaction while holding ``lock``, the lock of the
    connection's write transactions, and pages on seq. Nothing stays open between
    batches: an open statement would keep a read transaction on the connection, and a
    write begun on it from another thread (or this one, mid-iteration) would have to
    upgrade that read, which SQLite refuses at once with "database is locked" when
    another connection wrote meanwhile, without waiting.
    """
    if entry_filter.last == 0:
        return
    with _batch(conn, lock, path):
        upper = conn.execute(LAST_SEQ).fetchone()[0]
        after = 0
        if entry_filter.last is not None:
            start = conn.execute(*entry_filter.last_start_sql(upper)).fetchone()
            after = start[0] - 1 if start else 0
    reader = EntryReader(conn)
    while True:
        with _batch(conn, lock, path):
            rows = conn.execute(*entry_filter.page_sql(after, upper, batch)).fetchall()
            gaps = reader.look_up_gaps(rows)
        if not rows:
            return
        yield from reader.entries(rows, gaps)
        after = rows[-1][0]
