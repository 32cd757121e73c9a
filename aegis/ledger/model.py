"""The ledger's data: what callers append (Event), what they read back (Entry,
Session, PolicyVersion) and what verification reports (VerifyResult)."""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from operator import attrgetter
from typing import Any

# Entry kinds: what wrote the entry. Observed actions are "event"; the ledger's own
# bookkeeping is chained alongside them so it cannot be edited unnoticed either.
KIND_EVENT = "event"
KIND_SESSION = "session"
KIND_POLICY = "policy"

SESSION_START = "SessionStart"
SESSION_END = "SessionEnd"
POLICY_SNAPSHOT = "PolicySnapshot"

SESSION_STATES = ("running", "finished", "interrupted")


# Field order of Entry.to_dict (and so of every export).
ENTRY_FIELDS = ("seq", "ts_ns", "kind", "action", "resource", "decision", "session_id", "principal",
                "pid", "ppid", "executable", "source", "policy_ids", "errors", "reason", "details",
                "prev_hash", "hash")

_entry_values = attrgetter(*ENTRY_FIELDS)


@dataclass
class Event:
    """One thing that happened, as handed to ``Ledger.append``."""

    action: str
    resource: str
    decision: str
    session_id: str = ""
    principal: str = ""
    pid: int = 0
    ppid: int = 0
    executable: str = ""
    source: str = ""
    policy_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    ts_ns: int = 0


@dataclass
class Entry(Event):
    """An entry as stored: the event plus its place in the chain."""

    seq: int = 0
    kind: str = KIND_EVENT
    prev_hash: str = ""
    hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every value, which dominated exports.
        return dict(zip(ENTRY_FIELDS, _entry_values(self), strict=True))


@dataclass
class Session:
    """A run of an agent, folded from its SessionStart and SessionEnd entries."""

    id: str
    config: str
    command: list[str]
    cwd: str
    start_ns: int
    policy_hash: str
    observer: str
    state: str = "running"
    end_ns: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    start_seq: int = 0
    end_seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PolicyVersion:
    """One recorded policy set: the files and their combined hash."""

    seq: int
    ts_ns: int
    hash: str
    files: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Checkpoint:
    """A signed checkpoint as ``Ledger.checkpoints`` reads it: the ledger had ``size``
    entries and entry ``size``'s chain hash was ``root`` (hex)."""

    origin: str
    size: int
    root: str
    where: str  # "ledger", or the checkpoint file it was read from
    signature_valid: bool | None  # None: no key to check it with
    created_ns: int | None = None  # when it was written; known for the ledger's own copies

    @property
    def root_base64(self) -> str:
        """The root as the note itself writes it."""
        return base64.b64encode(bytes.fromhex(self.root)).decode()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyResult:
    """What ``Ledger.verify`` found. ``first_bad_seq`` and ``reason`` are set on failure;
    ``reason`` is one of REASONS. ``trusted_entries`` is how many entries the quick
    check took on the word of a signed checkpoint instead of rehashing them."""

    entries_checked: int
    checkpoints_checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    detail: str = ""
    trusted_entries: int = 0

    REASONS = ("hash mismatch", "broken link", "gap", "checkpoint mismatch", "signature invalid")

    @property
    def ok(self) -> bool:
        return self.reason is None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries_checked": self.entries_checked,
                "checkpoints_checked": self.checkpoints_checked, "first_bad_seq": self.first_bad_seq,
                "reason": self.reason, "detail": self.detail, "trusted_entries": self.trusted_entries}
