"""The observer interface: what every observation mechanism provides.

An observer is started for one session and hands back ledger ``Event``s in
batches. Mechanisms (one module each): ``seccomp`` (per-process, decides and
enforces, works unprivileged), ``inotify`` (fallback, no pid attribution) and,
with root, ``fanotify``. ``aegis.observer.select_observer`` picks one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from aegis.ledger import Event


class Observer(ABC):
    """One session's observation channel."""

    #: mechanism name recorded in the session ("seccomp", "inotify", ...)
    name: str = ""
    #: whether events carry the acting process (pid, executable)
    pid_attribution: bool = True

    @abstractmethod
    def drain(self, max_events: int = 4096) -> list[Event]:
        """Observed events since the last call (at most ``max_events``), oldest first."""

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
