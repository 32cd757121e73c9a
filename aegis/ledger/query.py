"""Reading entries back: filters as SQL over the hashed records, rows as Entry."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aegis.ledger.canonical import decode_record
from aegis.ledger.model import KIND_EVENT, Entry
from aegis.ledger.storage import BOOKKEEPING, HASH, KIND, database_errors, field_sql

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

    def sql(self) -> tuple[str, list[Any]]:
        """The SELECT (ascending seq) and its parameters."""
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
        sql = SELECT_ENTRIES + (" WHERE " + " AND ".join(where) if where else "")
        if self.last is not None:
            params.append(self.last)
            return f"SELECT * FROM ({sql} ORDER BY seq DESC LIMIT ?) ORDER BY seq", params
        return sql + " ORDER BY seq", params


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

    def entry(self, row: tuple[int, str, bytes]) -> Entry:
        seq, record, digest = row
        if seq == 1:
            prev_hash = _GENESIS_HEX
        elif seq - 1 == self._seq:
            prev_hash = self._hash
        else:
            found = self._conn.execute(_HASH_OF, (seq - 1,)).fetchone()
            prev_hash = found[0].hex() if found else ""
        self._seq, self._hash = seq, digest.hex()
        (ts_ns, kind, session_id, principal, action, resource, pid, ppid, executable, source, decision,
         policy_ids, errors, reason, details) = decode_record(record)
        # Positional, in Entry's field order: keyword arguments cost a fifth more per row.
        return Entry(action, resource, decision, session_id, principal, pid, ppid, executable, source, policy_ids,
                     errors, reason, details, ts_ns, seq, kind, prev_hash, self._hash)


def iter_entries(conn: sqlite3.Connection, path: Path, entry_filter: EntryFilter,
                 batch: int = 1000) -> Iterator[Entry]:
    """Matching entries in ascending seq, read in batches (constant memory)."""
    sql, params = entry_filter.sql()
    reader = EntryReader(conn)
    with database_errors(path):
        cursor = conn.execute(sql, params)
        while rows := cursor.fetchmany(batch):
            yield from map(reader.entry, rows)
