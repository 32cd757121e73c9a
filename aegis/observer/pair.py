"""Two observers as one: a recorder and a supervisor that decides beside it.

With the fanotify observer, Landlock enforces file access in the kernel and
fanotify records it asynchronously; what no Landlock right covers (metadata
changes, socket addresses) is still notified to the seccomp supervisor, which
decides and records those. The session drains both through this one interface.
"""

from __future__ import annotations

from aegis.ledger import Event
from aegis.observer.api import Observer
from aegis.observer.lines import RingSource


class ObserverPair(Observer):
    """``recorder`` names the session's mechanism; ``supervisor`` decides beside it."""

    def __init__(self, recorder: Observer, supervisor: Observer) -> None:
        self.recorder, self.supervisor = recorder, supervisor
        self.name = recorder.name
        self.pid_attribution = recorder.pid_attribution
        self.principal = supervisor.principal
        self.line_encoder = supervisor.line_encoder  # it words both (policy ids are the supervisor's)

    def drain(self, max_events: int = 4096) -> list[Event]:
        events = self.supervisor.drain(max_events)
        events += self.recorder.drain(max_events - len(events))
        events.sort(key=lambda e: e.ts_ns or 0)
        return events

    def handoffs(self) -> int:
        return self.supervisor.handoffs()

    def ring_sources(self) -> list[RingSource] | None:
        supervisor, recorder = self.supervisor.ring_sources(), self.recorder.ring_sources()
        return None if supervisor is None or recorder is None else supervisor + recorder

    def take_dropped(self) -> int:
        return self.recorder.take_dropped() + self.supervisor.take_dropped()

    def finished(self) -> bool:
        return self.supervisor.finished() and self.recorder.finished()

    def stats(self) -> dict[str, int]:
        return {**self.recorder.stats(), **{f"supervisor_{k}": v for k, v in self.supervisor.stats().items()}}

    def stop(self) -> None:
        try:
            self.supervisor.stop()
        finally:
            self.recorder.stop()
