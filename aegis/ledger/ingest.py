"""Appending a batch of events to the entries table, with no Python per row.

A batch is encoded in chunks. Each chunk is one buffer of newline-separated
canonical records (``encode_lines``, or already encoded by the observers' C
encoder, aegis/observer/lines.py) that C chains in one call (``chain_lines``,
which also writes where each record starts and its length) and SQLite inserts in
one statement that slices each record and its hash out of the blobs. A record is
stored as exactly the bytes that were hashed (a slice of the hashed buffer, cast
to TEXT), never re-rendered.

The statement runs on a worker thread while this thread encodes the next chunk:
SQLite runs without the GIL, so on two cores encoding and inserting overlap.
"""

from __future__ import annotations

import functools
import queue
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from aegis.ledger.canonical import encode_lines
from aegis.ledger.chain import HASH_LEN, chain_lines

CHUNK = 1000  # events per statement: small enough to overlap well, large enough to amortise a statement

# One row per record: json_each over :rows, a JSON array of n zeros, numbers them
# 0..n-1 (SQLite has no generate_series built in; json_each is cheaper per row than
# a recursive CTE). :records, :spans and :chain are bound as BLOBs: substr on a BLOB
# counts bytes from where it is asked to start, while on TEXT it walks the
# characters from the start.
INSERT_CHUNK = (
    "INSERT INTO entries (seq, record, hash) SELECT :first + key, "
    "CAST(substr(:records, CAST(substr(:spans, 20 * key + 1, 10) AS INTEGER), "
    "CAST(substr(:spans, 20 * key + 11, 10) AS INTEGER)) AS TEXT), substr(:chain, 32 * key + 1, 32) "
    "FROM json_each(:rows)")


@functools.lru_cache(maxsize=4)
def _rows(n: int) -> str:
    return "[" + ",".join("0" * n) + "]"


class _Inserter(threading.Thread):
    """Runs the chunk inserts handed to ``insert`` one after another, in order.

    ``insert`` returns once the worker has taken the chunk: the worker then holds
    the GIL only until SQLite starts, so the caller's next Python runs alongside
    the insert rather than waiting for the interpreter's switch interval.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(name="aegis-ledger-insert", daemon=True)
        self._conn = conn
        self._chunks: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._taken = threading.Semaphore(0)
        self.error: BaseException | None = None

    def run(self) -> None:
        while (params := self._chunks.get()) is not None:
            self._taken.release()
            if self.error is None:  # after a failure, drain without inserting
                try:
                    self._conn.execute(INSERT_CHUNK, params)
                except BaseException as exc:  # re-raised in the appending thread
                    self.error = exc

    def insert(self, params: dict[str, Any]) -> bool:
        """Hand a chunk over; False (handing nothing) once an insert has failed."""
        if self.error is not None:
            return False
        self._chunks.put(params)
        self._taken.acquire()
        return True

    def finish(self) -> None:
        """Wait for every insert handed over; raise the first failure."""
        self._chunks.put(None)
        self.join()
        if self.error is not None:
            raise self.error


def insert_events(conn: sqlite3.Connection, events: Sequence[Any], kind: str, principal: str, now: int,
                  first: int, prev: bytes) -> None:
    """Insert ``events`` as entries ``first``, ``first + 1``, ... chained after the
    hash ``prev``. The caller holds the write transaction."""
    chunks = [events[i:i + CHUNK] for i in range(0, len(events), CHUNK)]
    insert_lines(conn, ((encode_lines(chunk, kind, principal, now), len(chunk)) for chunk in chunks), first, prev,
                 several=len(chunks) > 1)


def insert_lines(conn: sqlite3.Connection, chunks: Iterable[tuple[bytes, int]], first: int, prev: bytes, *,
                 several: bool) -> None:
    """Insert canonical records, given as chunks of (newline-separated records, how
    many), as entries ``first``, ``first + 1``, ... chained after the hash ``prev``;
    ``several`` when there may be more than one chunk, to overlap them on a worker
    thread. The caller holds the write transaction."""
    def params(records: bytes, n: int, seq: int, prev: bytes) -> tuple[dict[str, Any], bytes]:
        chain, spans = chain_lines(prev, records, n)
        return {"first": seq, "rows": _rows(n), "records": records, "spans": spans, "chain": chain}, \
            chain[-HASH_LEN:]

    if not several:
        for records, n in chunks:
            chunk_params, prev = params(records, n, first, prev)
            conn.execute(INSERT_CHUNK, chunk_params)
            first += n
        return
    inserter = _Inserter(conn)
    inserter.start()
    try:
        for records, n in chunks:
            chunk_params, prev = params(records, n, first, prev)
            if not inserter.insert(chunk_params):
                break
            first += n
    finally:
        inserter.finish()
