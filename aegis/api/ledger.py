"""``aegis.Ledger``: open a config's audit ledger (or a ledger file), append your own
events to its hash chain, read it back, verify it, sign checkpoints.

A facade over ``aegis.ledger.Ledger`` that is safe to share between threads. All
``Ledger`` objects of one file in a process share one SQLite connection (opening
another connection to a file this process already holds would drop SQLite's
POSIX locks on it); appends are serialised on it, and each is one ``BEGIN
IMMEDIATE`` transaction that reads the chain's tip under SQLite's write lock, so
threads, other processes and `aegis run` sessions appending to the same file all
extend one unforked chain.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "ledger.db"
>>> with Ledger.open(path) as ledger:
...     seqs = ledger.append([Event(action="ToolCall", resource="Bash", decision="allow",
...                                 details={"command": "ls"})])
...     print(seqs, [e.resource for e in ledger.query(action="ToolCall")], ledger.verify().ok)
[1] ['Bash'] True
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from aegis.config import Config, load_config
from aegis.errors import AegisError
from aegis.ledger import Checkpoint, Entry, Event, PolicyVersion, Session, VerifyResult, open_ledger
from aegis.ledger import Ledger as _FileLedger
from aegis.ledger.model import KIND_SESSION, SESSION_END
from aegis.policy.engine import Decision

__all__ = ["Entry", "Event", "Ledger", "PolicyVersion", "Session", "VerifyResult"]

LedgerTarget = str | os.PathLike[str] | Config
FOLLOW_POLL_S = 0.05


def _is_config_name(target: str | os.PathLike[str]) -> bool:
    """A plain string without a path separator and not ending in ``.db`` names a config."""
    return isinstance(target, str) and os.sep not in target and not target.endswith(".db")


class _Shared:
    """The process's one open ``aegis.ledger.Ledger`` per file, counted by users."""

    lock = threading.Lock()
    open_files: dict[str, tuple[_FileLedger, int]] = {}

    @classmethod
    def acquire(cls, path: Path, opener: Callable[[], _FileLedger], settings: tuple) -> _FileLedger:
        key = os.path.realpath(path)
        with cls.lock:
            if key in cls.open_files:
                ledger, users = cls.open_files[key]
                if (ledger.principal, ledger.key_dir, ledger.checkpoint_file) != settings:
                    raise AegisError(f"{path}: already open in this process as another config's ledger "
                                     f"(principal {ledger.principal!r}); open it the same way, or close it first")
            else:
                ledger, users = opener(), 0
            cls.open_files[key] = (ledger, users + 1)
            return ledger

    @classmethod
    def release(cls, ledger: _FileLedger) -> None:
        key = os.path.realpath(ledger.path)
        with cls.lock:
            _, users = cls.open_files[key]
            if users > 1:
                cls.open_files[key] = (ledger, users - 1)
                return
            del cls.open_files[key]
        ledger.close()


class Ledger:
    """One audit ledger. Open it with ``Ledger.open``; close it (or use ``with``).

    Thread safety: every method may be called from any thread at the same time.
    ``query`` iterators read lazily, in batches, the matching entries that existed
    when ``query`` was called; one left half read never stops a write.
    """

    def __init__(self, ledger: _FileLedger) -> None:
        self._ledger: _FileLedger | None = ledger
        self.path: Path = ledger.path
        self.principal: str = ledger.principal

    @classmethod
    def open(cls, target: LedgerTarget, *, principal: str = "") -> Ledger:
        """Open a ledger: a config name (``"myagent"``: that config's ledger, signing
        key and checkpoint file), a loaded ``Config``, or the path of a ledger file
        (created if missing; ``principal`` is then the default principal of entries).
        """
        if isinstance(target, str | os.PathLike) and _is_config_name(target):
            target = load_config(str(target))
        if isinstance(target, Config):
            config = target
            return cls(_Shared.acquire(config.ledger_path, lambda: open_ledger(config),
                                       (config.name, config.keys_dir, config.checkpoints_path)))
        path = Path(target)
        return cls(_Shared.acquire(path, lambda: _FileLedger.open(path, principal=principal),
                                   (principal, None, None)))

    def _current(self) -> _FileLedger:
        if self._ledger is None:
            raise AegisError(f"{self.path}: the ledger is closed")
        return self._ledger

    # -- writing -------------------------------------------------------------

    def append(self, events: Iterable[Event]) -> list[int]:
        """Append ``events`` as one chained transaction; returns their sequence numbers."""
        return self._current().append(list(events))

    def record(self, action: str, resource: str, decision: Decision | str, **fields: object) -> int:
        """Append one event; ``decision`` is an ``aegis.Decision`` (its policy ids and
        errors are recorded too) or ``"allow"`` / ``"deny"`` / ``"info"``. ``fields`` are
        any other ``Event`` fields (``session_id``, ``reason``, ``details``...).
        Returns the entry's sequence number."""
        if isinstance(decision, Decision):
            fields.setdefault("policy_ids", list(decision.policy_ids))
            fields.setdefault("errors", list(decision.errors))
            decision = decision.decision
        fields.setdefault("pid", os.getpid())
        fields.setdefault("source", "api")
        event = Event(action=action, resource=resource, decision=decision, **fields)  # type: ignore[arg-type]
        return self.append([event])[0]

    def begin_session(self, command: list[str], *, cwd: str | None = None, policy_hash: str = "",
                      observer: str = "none", config: str = "", details: dict | None = None) -> str:
        """Record the start of a session of this process (e.g. one agent conversation);
        returns its id, to put in the ``session_id`` of the events that belong to it."""
        return self._current().begin_session(command=command, cwd=cwd or os.getcwd(), policy_hash=policy_hash,
                                             observer=observer, config=config or self.principal,
                                             details=details)

    def end_session(self, session_id: str, *, exit_code: int | None = 0, signal: int | None = None,
                    state: str = "finished", counts: dict | None = None) -> None:
        """Record the end of a session, then sign a checkpoint when the key is available."""
        self._current().end_session(session_id, exit_code=exit_code, signal=signal, state=state, counts=counts)

    def checkpoint(self) -> str:
        """Sign a checkpoint of the ledger as it is now (needs the config's signing key);
        returns the C2SP signed note, which is also stored in the ledger and the
        config's checkpoint file."""
        return self._current().checkpoint()

    # -- reading -------------------------------------------------------------

    def query(self, *, last: int | None = None, action: str | None = None, decision: str | None = None,
              since_ns: int | None = None, until_ns: int | None = None, session: str | None = None,
              path_glob: str | None = None, after_seq: int | None = None,
              kind: str | None = None) -> Iterator[Entry]:
        """Entries matching every filter given, oldest first (what `aegis audit query`
        prints); ``last`` keeps the newest N. Read lazily, in batches."""
        return self._current().query(last=last, action=action, decision=decision, since_ns=since_ns,
                                     until_ns=until_ns, session=session, path_glob=path_glob,
                                     after_seq=after_seq, kind=kind)

    def follow(self, *, session: str | None = None, after_seq: int = 0, stop: Callable[[], bool] | None = None,
               poll_seconds: float = FOLLOW_POLL_S) -> Iterator[Entry]:
        """Entries after ``after_seq`` as they are appended (a live tail, by sequence
        number). With ``session``, only that session's entries, ending after its
        ``SessionEnd``. Ends too once ``stop()`` is true and everything appended
        before was yielded; otherwise runs until the iterator is closed."""
        ledger = self._current()
        while True:
            stopping = stop is not None and stop()
            for entry in ledger.query(session=session, after_seq=after_seq):
                after_seq = entry.seq
                yield entry
                if session is not None and entry.kind == KIND_SESSION and entry.action == SESSION_END:
                    return
            if stopping:
                return
            time.sleep(poll_seconds)

    def sessions(self) -> list[Session]:
        """Every session (`aegis audit sessions`): command, start/end, exit, counts."""
        return self._current().sessions()

    def session(self, session_id: str) -> Session:
        return self._current().session(session_id)

    def policy_history(self) -> list[PolicyVersion]:
        """Every recorded policy version, oldest first."""
        return self._current().policy_history()

    def size(self) -> int:
        """The number of entries (the sequence number of the last one)."""
        return self._current().size()

    def verify(self, *, since_checkpoint: bool = False) -> VerifyResult:
        """Check every entry's hash and link and every signed checkpoint
        (`aegis audit verify`); ``.ok``, else ``.first_bad_seq`` and ``.reason``.
        ``since_checkpoint=True`` is the fast path of `aegis status`: checkpoints are all
        checked, entries are rehashed only after the newest valid one."""
        return self._current().verify(since_checkpoint=since_checkpoint)

    def checkpoints(self) -> list[Checkpoint]:
        """Every signed checkpoint (origin, size, root, signature validity, time), oldest first."""
        return self._current().checkpoints()

    def close(self) -> None:
        """Close this handle (the file's connection closes with the process's last handle)."""
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            _Shared.release(ledger)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"
