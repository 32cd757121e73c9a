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
SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 30_000
PAGE_SIZE = 16384


def field_sql(name: str) -> str:
    """The SQL expression reading field ``name`` out of an entry's hashed record.

    Filters and indexes read the record itself, never a copy of it in another
    column, so nothing they see can disagree with what the chain covers. (Version 1
    kept the fields as generated columns, but SQLite computes every generated
    column of a row on insert, which cost a third of the ingest time.)
    """
    return f"json_extract(record, '$[{FIELD_INDEX[name]}]')"


# Every index costs each append a b-tree insert, and ingest speed matters more than
# the speed of an ad-hoc filter (a scan of a million entries takes well under a
# second). So: sessions' entries by id, and the few bookkeeping entries (sessions,
# policy snapshots) in a partial index; queries for them repeat this exact term so
# SQLite can use it.
KIND = field_sql("kind")
BOOKKEEPING = f"{KIND} != '{KIND_EVENT}'"
# The hash column as bytes, whatever a tamperer stored in it (text that is not
# UTF-8 would fail to read as a Python str).
HASH = "CAST(hash AS BLOB)"
# The sequence number of the newest entry, 0 when there is none.
LAST_SEQ = "SELECT coalesce(max(seq), 0) FROM entries"

# An entry is its record and its chain hash (32 bytes), which covers the hash of
# the entry before it: the previous hash is read from that entry, not stored twice.
_ENTRIES_TABLE = """CREATE TABLE entries (
    seq INTEGER PRIMARY KEY,
    record TEXT NOT NULL,
    hash BLOB NOT NULL
)"""

# Everything but the entries table and meta: files of older versions get these anew.
_DERIVED = f"""
CREATE INDEX entries_session ON entries ({field_sql('session_id')});
CREATE INDEX entries_bookkeeping ON entries ({KIND}, {field_sql('action')}) WHERE {BOOKKEEPING};
CREATE VIEW sessions AS SELECT * FROM entries WHERE {KIND} = '{KIND_SESSION}';
CREATE VIEW policy_snapshots AS SELECT * FROM entries WHERE {KIND} = '{KIND_POLICY}';
"""

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
{_ENTRIES_TABLE};
CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY,
    size INTEGER NOT NULL,
    root TEXT NOT NULL,
    note TEXT NOT NULL,
    created_ns INTEGER NOT NULL
);
{_DERIVED}
"""

_DROP_DERIVED = ["DROP VIEW sessions", "DROP VIEW policy_snapshots", "DROP INDEX entries_session",
                 "DROP INDEX entries_bookkeeping"]
# Version 1 -> 2: the generated columns go (they were virtual: no stored data changes).
_V1_GENERATED = ("ts_ns", "kind", "session_id", "action", "resource", "decision")
_DROP_V1_GENERATED = [f"ALTER TABLE entries DROP COLUMN {name}" for name in _V1_GENERATED]
# Version 2 -> 3: hashes become 32-byte BLOBs and the stored copy of the previous
# hash goes, once every stored copy is found to be the previous entry's hash.
_BROKEN_V2_LINK = ("SELECT min(b.seq) FROM entries b LEFT JOIN entries a ON a.seq = b.seq - 1 "
                   "WHERE b.seq = 1 AND b.prev_hash != ? OR b.seq > 1 AND b.prev_hash != a.hash")
_MIGRATION_BATCH = 50_000


@contextmanager
def database_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's complaints about a damaged file into a one-line AegisError."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise AegisError(f"{path}: ledger database error: {exc}") from None


# (name, declared type, not null, primary key, hidden) of each column, as
# PRAGMA table_xinfo reports them; hidden is non-zero for generated columns.
_ENTRIES_COLUMNS = [("seq", "INTEGER", 0, 1, 0), ("record", "TEXT", 1, 0, 0), ("hash", "BLOB", 1, 0, 0)]
_V2_ENTRIES_COLUMNS = [("seq", "INTEGER", 0, 1, 0), ("record", "TEXT", 1, 0, 0), ("prev_hash", "TEXT", 1, 0, 0),
                       ("hash", "TEXT", 1, 0, 0)]


def entries_table_intact(conn: sqlite3.Connection, columns: list[tuple] = _ENTRIES_COLUMNS) -> bool:
    """Whether the entries table has exactly its own columns; verify checks it so the
    table cannot be swapped for one with other (or computed) columns."""
    rows = conn.execute("PRAGMA table_xinfo(entries)").fetchall()
    return [(name, kind, notnull, pk, hidden) for _cid, name, kind, notnull, _default, pk, hidden in rows] \
        == columns


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the ledger at ``path``; raise AegisError in one line if
    it is not a ledger, is damaged, or was written by a newer Aegis."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Created here, owner-only, so SQLite's -wal and -shm files inherit the mode.
        # Only when it does not exist: closing any descriptor of a file drops all of this
        # process's POSIX locks on it, including those of another open connection, which
        # would then checkpoint and delete the WAL under its feet.
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600))
        except FileExistsError:
            pass
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
    if version < SCHEMA_VERSION:
        _create_or_upgrade(conn, path)
    fmt = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    if fmt is None or fmt[0] != FORMAT:
        raise AegisError(f"{path}: not an Aegis ledger")


def _create_or_upgrade(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-check inside the lock: another process may have done it meanwhile.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise AegisError(f"{path}: not an Aegis ledger (an unrelated SQLite database)")
            _run(conn, _SCHEMA.split(";"))
            conn.execute("INSERT INTO meta (key, value) VALUES ('format', ?)", (FORMAT,))
        else:
            _run(conn, _DROP_DERIVED + (_DROP_V1_GENERATED if version == 1 else []))
            _drop_prev_hash(conn, path)
            _run(conn, _DERIVED.split(";"))
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _run(conn: sqlite3.Connection, statements: list[str]) -> None:
    for statement in statements:
        if statement.strip():
            conn.execute(statement)


def _drop_prev_hash(conn: sqlite3.Connection, path: Path) -> None:
    """Rewrite a version 2 entries table as version 3: hashes as bytes, no previous hash.

    What only version 2 could show is checked first: a redefined table, or a stored
    previous hash that is not its predecessor's hash. Such a file was tampered with
    and is left as it is.
    """
    if not entries_table_intact(conn, _V2_ENTRIES_COLUMNS):
        raise AegisError(f"{path}: cannot upgrade the ledger: its entries table was redefined (it was "
                         "tampered with); the file is left unchanged")
    broken = conn.execute(_BROKEN_V2_LINK, (bytes(32).hex(),)).fetchone()[0]
    if broken is not None:
        raise AegisError(f"{path}: cannot upgrade the ledger: entry {broken} does not link to entry "
                         f"{broken - 1} (it was tampered with); the file is left unchanged")
    conn.execute("ALTER TABLE entries RENAME TO entries_v2")
    conn.execute(_ENTRIES_TABLE)
    rows = conn.execute("SELECT seq, record, hash FROM entries_v2 ORDER BY seq")
    while batch := rows.fetchmany(_MIGRATION_BATCH):
        conn.executemany("INSERT INTO entries (seq, record, hash) VALUES (?, ?, ?)",
                         [(seq, record, _hash_bytes(digest)) for seq, record, digest in batch])
    conn.execute("DROP TABLE entries_v2")


def _hash_bytes(stored: object) -> bytes:
    """A version 2 hash (64 lowercase hex digits) as its bytes. Anything else is kept
    as the bytes of its text, which no chain hash equals, so verify still reports it."""
    try:
        digest = bytes.fromhex(stored)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        digest = b""
    return digest if len(digest) == 32 and digest.hex() == stored else str(stored).encode()
