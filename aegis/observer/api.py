"""The observer interface: what every observation mechanism provides.

An observer is started for one session and hands back ledger ``Event``s in
batches. Mechanisms (one module each): ``seccomp`` (per-process, decides and
enforces, works unprivileged), ``inotify`` (fallback, no pid attribution) and,
with root, ``fanotify``. ``aegis.observer.select_observer`` picks one.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from aegis.actions import MUTATING_ACTIONS
from aegis.ledger import Event

if TYPE_CHECKING:
    from aegis.observer.lines import EncodedBatch, LineEncoder, RingSource


class Observer(ABC):
    """One session's observation channel."""

    #: mechanism name recorded in the session ("seccomp", "inotify", ...)
    name: str = ""
    #: whether events carry the acting process (pid, executable)
    pid_attribution: bool = True
    #: the session's principal, for events that name none
    principal: str = ""
    #: observers that fill a ring encode its records in C (aegis.observer.lines)
    line_encoder: LineEncoder | None = None

    @abstractmethod
    def drain(self, max_events: int = 4096) -> list[Event]:
        """Observed events since the last call (at most ``max_events``), oldest first."""

    def handoffs(self) -> int:
        """How many times so far the agent waited for this observer's answer (0 for an
        observer that never makes it wait)."""
        return 0

    def ring_sources(self) -> list[RingSource] | None:
        """Takers of this observer's ring records for ``line_encoder``, or None when its
        observations must go through ``drain`` now."""
        return None

    def drain_encoded(self, max_events: int = 4096, skip_exit_of: int = 0) -> EncodedBatch:
        """What ``drain`` returns, as canonical ledger records (``Ledger.append_encoded``),
        less a ProcessExit of ``skip_exit_of``, with the denials and mutations also as
        Events. Ring records are encoded in C; other observations in Python."""
        from aegis.ledger.canonical import encode_lines
        from aegis.ledger.model import KIND_EVENT
        from aegis.observer.lines import EncodedBatch, drain_rings

        sources = self.ring_sources()
        if sources and self.line_encoder is not None:
            return drain_rings(self.line_encoder, sources, max_events, skip_exit_of)
        events = self.drain(max_events)
        kept = [e for e in events if not (skip_exit_of and e.action == "ProcessExit" and e.pid == skip_exit_of)]
        batch = EncodedBatch(taken=len(events),
                             notable=[e for e in kept if e.decision == "deny" or e.action in MUTATING_ACTIONS])
        if kept:
            batch.segments.append((encode_lines(kept, KIND_EVENT, self.principal, time.time_ns()), len(kept)))
        return batch

    @abstractmethod
    def take_dropped(self) -> int:
        """How many observations were lost (ring overflow) since the last call."""

    @abstractmethod
    def finished(self) -> bool:
        """True when no observed process is left (nothing more can arrive)."""

    @abstractmethod
    def stats(self) -> dict[str, int]:
        """Counters for the session record (notifications, denials, ...)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop observing and release every resource; idempotent."""
