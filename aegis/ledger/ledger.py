"""The audit ledger: an append-only, hash-chained log of everything an agent did.

Writers take ``BEGIN IMMEDIATE`` (SQLite's write lock), read the tip inside it and
append a whole batch in one transaction, so any number of processes can append to
one ledger without forking the chain, and a crash mid-batch leaves the previous
commit intact.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from aegis.errors import AegisError
from aegis.ledger import storage
from aegis.ledger.canonical import FIELD_INDEX, policy_hash
from aegis.ledger.chain import GENESIS, HASH_LEN
from aegis.ledger.checkpoints import write_checkpoint
from aegis.ledger.ingest import insert_events, insert_lines
from aegis.ledger.model import (
    KIND_EVENT,
    KIND_POLICY,
    KIND_SESSION,
    POLICY_SNAPSHOT,
    SESSION_END,
    SESSION_START,
    Checkpoint,
    Entry,
    Event,
    PolicyVersion,
    Session,
    VerifyResult,
)
from aegis.ledger.query import SELECT_ENTRIES, EntryFilter, EntryReader, iter_entries
from aegis.ledger.sessions import fold_sessions, owner_of, process_alive, process_token
from aegis.ledger.signing import PRIVATE_KEY_FILE, VERIFIER_KEY_FILE, NoteSigner, NoteVerifier
from aegis.ledger.storage import BOOKKEEPING, HASH, KIND, LAST_SEQ, field_sql
from aegis.ledger.verify import read_checkpoints, verify_ledger

DECISIONS = ("allow", "deny", "info")
# Run at every open, so it must not scan the entries: the kind terms steer both
# halves to the partial index.
_ACTION, _SESSION = field_sql("action"), field_sql("session_id")
_SESSION_ENTRY = f"{BOOKKEEPING} AND {KIND} = '{KIND_SESSION}'"
_OPEN_SESSIONS = (f"{SELECT_ENTRIES} WHERE {_SESSION_ENTRY} AND {_ACTION} = '{SESSION_START}' "
                  f"AND {_SESSION} NOT IN (SELECT {_SESSION} FROM entries WHERE {_SESSION_ENTRY} "
                  f"AND {_ACTION} = '{SESSION_END}') ORDER BY seq")
_LAST_POLICY_HASH = (f"SELECT json_extract(record, '$[{FIELD_INDEX['details']}].hash') FROM entries "
                     f"WHERE {BOOKKEEPING} AND {KIND} = '{KIND_POLICY}' AND {_ACTION} = '{POLICY_SNAPSHOT}' "
                     "ORDER BY seq DESC LIMIT 1")


class Ledger:
    """One ledger file. Open with ``Ledger.open`` or ``open_ledger(config)``."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, principal: str, origin: str,
                 key_dir: Path | None, checkpoint_file: Path | None) -> None:
        self.path = path
        self.principal = principal
        self.origin = origin
        self.key_dir = key_dir
        self.checkpoint_file = checkpoint_file
        self._conn = conn
        self._keys: tuple[NoteSigner | None, NoteVerifier | None] | None = None
        self._lock = threading.RLock()  # one transaction at a time on this connection

    @classmethod
    def open(cls, path: Path, *, principal: str = "", key_dir: Path | None = None,
             checkpoint_file: Path | None = None, origin: str = "") -> Ledger:
        """Open (creating if needed) the ledger at ``path``. With ``key_dir`` holding the
        signing key, checkpoints are signed and verified; ``checkpoint_file`` is the
        outside copy of every checkpoint."""
        path = Path(path)
        ledger = cls(path, storage.connect(path), principal=principal, origin=origin or f"aegis/{path.stem}",
                     key_dir=key_dir, checkpoint_file=checkpoint_file)
        if os.access(path, os.W_OK):
            try:
                with storage.database_errors(path):
                    ledger._end_abandoned_sessions()
            except BaseException:
                ledger.close()
                raise
        return ledger

    def _load_keys(self) -> tuple[NoteSigner | None, NoteVerifier | None]:
        """(signer, verifier) from the key directory, loaded when first needed: with the
        private key, both; with only the public verifier key, a verifier."""
        if self._keys is None:
            signer = verifier = None
            if self.key_dir is not None:
                if os.access(self.key_dir / PRIVATE_KEY_FILE, os.R_OK):
                    signer = NoteSigner.load(self.key_dir, self.origin)
                    verifier = signer.verifier()
                elif (self.key_dir / VERIFIER_KEY_FILE).exists():
                    verifier = NoteVerifier.load(self.key_dir, self.origin)
            self._keys = (signer, verifier)
        return self._keys

    def can_sign(self) -> bool:
        return self._load_keys()[0] is not None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------

    @contextmanager
    def _write_transaction(self) -> Iterator[None]:
        with self._lock, storage.database_errors(self.path):
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise AegisError(f"{self.path}: cannot write to the ledger: {exc}") from None
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _check_decisions(events: Sequence[Event]) -> None:
        bad = {e.decision for e in events}.difference(DECISIONS)
        if bad:
            event = next(e for e in events if e.decision in bad)
            raise AegisError(f"ledger event {event.action!r}: decision must be one of "
                             f"{', '.join(DECISIONS)}, got {event.decision!r}")

    def _tip(self) -> tuple[int, bytes]:
        """(sequence number of the next entry, chain hash it follows); the caller holds
        the write transaction, so the tip read here is still the tip when it commits."""
        tip = self._conn.execute(f"SELECT seq, {HASH} FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        first, prev = (tip[0] + 1, tip[1]) if tip else (1, GENESIS)
        if len(prev) != HASH_LEN:
            raise AegisError(f"{self.path}: the hash of entry {first - 1} is damaged, cannot append after it "
                             "(see aegis audit verify)")
        return first, prev

    def _insert_locked(self, events: Sequence[Event], kind: str) -> list[int]:
        """Encode, chain and insert ``events``; the caller holds the write transaction."""
        self._check_decisions(events)
        first, prev = self._tip()
        insert_events(self._conn, events, kind, self.principal, time.time_ns(), first, prev)
        return list(range(first, first + len(events)))

    def _append(self, events: Sequence[Event], kind: str) -> list[int]:
        if not events:
            return []
        with self._write_transaction():
            return self._insert_locked(events, kind)

    def append(self, events: Sequence[Event]) -> list[int]:
        """Append ``events`` as one chained transaction; returns their sequence numbers."""
        return self._append(events, KIND_EVENT)

    def append_encoded(self, segments: Sequence[tuple[bytes, int]]) -> range:
        """Append records already in canonical form, as one chained transaction;
        returns their sequence numbers. ``segments`` are (newline-separated records,
        how many) as the observers' C encoder writes them (aegis/observer/lines.py),
        which is the only writer trusted to: the records are stored as given."""
        total = sum(n for _, n in segments)
        if not total:
            return range(0)
        with self._write_transaction():
            first, prev = self._tip()
            insert_lines(self._conn, [s for s in segments if s[1]], first, prev, several=len(segments) > 1)
        return range(first, first + total)

    def begin_session(self, *, command: list[str], cwd: str, policy_hash: str, observer: str, config: str,
                      details: dict | None = None) -> str:
        """Record the start of a session run by this process; returns its id."""
        session_id = str(uuid.uuid4())
        self._append([Event(
            action=SESSION_START, resource=shlex.join(command), decision="info", session_id=session_id,
            pid=os.getpid(), ppid=os.getppid(), executable=sys.executable, source="audit",
            details={"command": list(command), "cwd": cwd, "policy_hash": policy_hash, "observer": observer,
                     "config": config, "owner_token": process_token(os.getpid()), "details": details or {}})],
            KIND_SESSION)
        return session_id

    def end_session(self, session_id: str, *, exit_code: int | None, signal: int | None,
                    state: str = "finished", counts: dict | None = None) -> None:
        """Record the end of a session, then sign a checkpoint (when there is a key)."""
        if state not in ("finished", "interrupted"):
            raise AegisError(f"session state must be 'finished' or 'interrupted', got {state!r}")
        self._append([self._session_end(session_id, exit_code, signal, state, counts or {})], KIND_SESSION)
        if self.can_sign():
            self.checkpoint()

    @staticmethod
    def _session_end(session_id: str, exit_code: int | None, signal: int | None, state: str,
                     counts: dict) -> Event:
        return Event(action=SESSION_END, resource=session_id, decision="info", session_id=session_id,
                     pid=os.getpid(), ppid=os.getppid(), source="audit",
                     details={"exit_code": exit_code, "signal": signal, "state": state, "counts": counts})

    def _end_abandoned_sessions(self) -> None:
        """Mark sessions whose owning process died without ending them as interrupted."""
        def abandoned() -> list[Entry]:
            rows = self._conn.execute(_OPEN_SESSIONS).fetchall()
            reader = EntryReader(self._conn)
            return [e for e in reader.entries(rows, reader.look_up_gaps(rows)) if not process_alive(*owner_of(e))]

        with self._lock:
            if not abandoned():
                return
            with self._write_transaction():
                ends = [self._session_end(e.session_id, None, None, "interrupted", {}) for e in abandoned()]
                if ends:
                    self._insert_locked(ends, KIND_SESSION)
            if self.can_sign():
                self.checkpoint()

    def record_policy_snapshot(self, files: dict[str, str]) -> str:
        """Record the policy set ``files`` (name -> text) if it differs from the last one
        recorded; returns its hash either way."""
        digest = policy_hash(files)
        with self._write_transaction():
            last = self._conn.execute(_LAST_POLICY_HASH).fetchone()
            if last is None or last[0] != digest:
                event = Event(action=POLICY_SNAPSHOT, resource=digest, decision="info", source="snapshot",
                              pid=os.getpid(), details={"hash": digest, "files": dict(files)})
                self._insert_locked([event], KIND_POLICY)
        return digest

    def checkpoint(self) -> str:
        """Sign a checkpoint of the ledger as it is now; returns the signed note."""
        signer = self._load_keys()[0]
        if signer is None:
            raise AegisError(f"{self.path}: no signing key available, cannot write a checkpoint")
        with self._lock:
            return write_checkpoint(self._conn, signer, self.origin, self.checkpoint_file)

    # -- reading -------------------------------------------------------------

    def query(self, *, last: int | None = None, action: str | None = None, decision: str | None = None,
              since_ns: int | None = None, until_ns: int | None = None, session: str | None = None,
              path_glob: str | None = None, after_seq: int | None = None, kind: str | None = None
              ) -> Iterator[Entry]:
        """Matching entries, ascending seq; ``last`` keeps the newest N of them."""
        if last is not None and last < 0:
            raise AegisError(f"{self.path}: last must be 0 or more, got {last}")
        entry_filter = EntryFilter(last=last, action=action, decision=decision, since_ns=since_ns,
                                   until_ns=until_ns, session=session, path_glob=path_glob,
                                   after_seq=after_seq, kind=kind)
        return iter_entries(self._conn, self._lock, self.path, entry_filter)

    def sessions(self) -> list[Session]:
        return fold_sessions(self.query(kind=KIND_SESSION))

    def session(self, session_id: str) -> Session:
        found = [s for s in self.sessions() if s.id == session_id]
        if not found:
            raise AegisError(f"{self.path}: no session {session_id!r}")
        return found[0]

    def policy_history(self) -> list[PolicyVersion]:
        return [PolicyVersion(seq=e.seq, ts_ns=e.ts_ns, hash=e.details.get("hash", ""),
                              files=dict(e.details.get("files", {})))
                for e in self.query(kind=KIND_POLICY)]

    def size(self) -> int:
        with self._lock:
            return self._conn.execute(LAST_SEQ).fetchone()[0]

    def verify(self, *, since_checkpoint: bool = False) -> VerifyResult:
        """Check the chain and every signed checkpoint. With ``since_checkpoint``, the
        chain is recomputed only after the newest checkpoint that is validly signed and
        matches its entry (the quick check for ``aegis status``); the full check
        rehashes every entry."""
        with self._lock, storage.database_errors(self.path):
            return verify_ledger(self._conn, verifier=self._load_keys()[1], origin=self.origin,
                                 checkpoint_file=self.checkpoint_file, since_checkpoint=since_checkpoint)

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, parsed: the ledger's own (oldest first), then any found only
        in the checkpoint file. ``signature_valid`` is None without a key to check with;
        whether a checkpoint still matches the entries is ``verify``'s question."""
        with self._lock, storage.database_errors(self.path):
            return read_checkpoints(self._conn, self._load_keys()[1], self.checkpoint_file)

    def close(self) -> None:
        self._conn.close()

