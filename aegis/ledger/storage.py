"""The ledger's SQLite file: schema, version check, connection settings.

One file per config, WAL mode (readers never block the writer), and
``synchronous=NORMAL`` (a commit survives a process crash; a power cut may lose
the last transactions but never corrupts the chain). Sessions and policy
snapshots are views over the chained entries, not separate tables, so there is
nothing outside the chain to edit.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aegis.errors import AegisError
from aegis.ledger.canonical import FIELD_INDEX
from aegis.ledger.model import KIND_EVENT, KIND_POLICY, KIND_SESSION

FORMAT = "aegis-ledger"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
PAGE_SIZE = 16384

# Filterable fields as generated columns: derived from the hashed record, so an
# index can never disagree with what the chain covers.
_GENERATED = ",\n".join(
    f"    {name} {'INTEGER' if name == 'ts_ns' else 'TEXT'} "
    f"GENERATED ALWAYS AS (json_extract(record, '$[{FIELD_INDEX[name]}]')) VIRTUAL"
    for name in ("ts_ns", "kind", "session_id", "action", "resource", "decision"))

# Every index costs each append a b-tree insert, and ingest speed matters more than
# the speed of an ad-hoc filter (a scan of a million entries takes well under a
# second). So: sessions' entries by id, and the few bookkeeping entries (sessions,
# policy snapshots) in a partial index; queries for them repeat this exact term so
# SQLite can use it.
BOOKKEEPING = f"kind != '{KIND_EVENT}'"

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (
    seq INTEGER PRIMARY KEY,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
{_GENERATED}
);
CREATE INDEX entries_session ON entries (session_id);
CREATE INDEX entries_bookkeeping ON entries (kind, action) WHERE {BOOKKEEPING};
CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY,
    size INTEGER NOT NULL,
    root TEXT NOT NULL,
    note TEXT NOT NULL,
    created_ns INTEGER NOT NULL
);
CREATE VIEW sessions AS SELECT * FROM entries WHERE kind = '{KIND_SESSION}';
CREATE VIEW policy_snapshots AS SELECT * FROM entries WHERE kind = '{KIND_POLICY}';
"""


@contextmanager
def database_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's complaints about a damaged file into a one-line AegisError."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise AegisError(f"{path}: ledger database error: {exc}") from None


def entries_table_sql() -> str:
    """The CREATE statement of the entries table exactly as SQLite keeps it; verify
    checks it so the generated columns cannot be swapped for editable ones."""
    return next(s.strip() for s in _SCHEMA.split(";") if "CREATE TABLE entries" in s)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the ledger at ``path``; raise AegisError in one line if
    it is not a ledger, is damaged, or was written by a newer Aegis."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Created here, owner-only, so SQLite's -wal and -shm files inherit the mode.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600))
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
    except (OSError, sqlite3.Error) as exc:
        raise AegisError(f"{path}: cannot open ledger: {exc}") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _prepare(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise AegisError(f"{path}: not a readable Aegis ledger ({exc})") from None
    except AegisError:
        conn.close()
        raise
    return conn


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise AegisError(f"{path}: ledger schema version {version} is newer than this Aegis supports "
                         f"({SCHEMA_VERSION}); upgrade Aegis")
    if version == 0:
        # Entries are a few hundred bytes; 16 KiB pages cut the per-page cost of
        # appends and scans by about a fifth. Only possible before WAL mode and the
        # first table, and ignored by SQLite for an existing database.
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    if version == 0:
        _create(conn, path)
    fmt = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    if fmt is None or fmt[0] != FORMAT:
        raise AegisError(f"{path}: not an Aegis ledger")


def _create(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-check inside the lock: another process may have created it meanwhile.
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise AegisError(f"{path}: not an Aegis ledger (an unrelated SQLite database)")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO meta (key, value) VALUES ('format', ?)", (FORMAT,))
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
