"""What the dashboard knows, updated incrementally as entries arrive.

Counters cover every entry ever read; the feed and the denials keep a bounded
window of the newest entries, so memory stays flat however long the ledger is.
Nothing here touches the terminal: it is tested directly.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

from aegis.ledger.sessions import fold_sessions

SESSION_ACTIONS = ("SessionStart", "SessionEnd")
# Bookkeeping entries that are not shown as events (drops and observer notes are shown).
NOT_EVENTS = (*SESSION_ACTIONS, "PolicySnapshot")

FEED_KEEP = 5000
DENIALS_KEEP = 2000
RATE_SECONDS = 600


class MonitorState:
    def __init__(self) -> None:
        self.feed: deque[Any] = deque(maxlen=FEED_KEEP)
        self.denials: deque[Any] = deque(maxlen=DENIALS_KEEP)
        self.counts: Counter[tuple[str, str]] = Counter()  # (action, decision) -> entries
        self.session_counts: dict[str, Counter[str]] = {}  # session id -> decision -> entries
        self.per_second: Counter[int] = Counter()  # unix second -> events (last RATE_SECONDS)
        self.sessions: list[Any] = []  # newest first
        self._session_entries: list[Any] = []  # every SessionStart/SessionEnd seen
        self.last_seq = 0
        self.entries = 0
        self._feed_from_seq = 0  # entries up to this seq are already in the feed (preloaded)

    def preload_feed(self, newest: list[Any]) -> None:
        """Show the newest entries of a long ledger at once, before catching up on its history.

        ``ingest`` still counts every entry, but does not add these to the feed again.
        """
        self.feed.extend(e for e in newest if e.action not in NOT_EVENTS)
        if newest:
            self._feed_from_seq = newest[-1].seq

    def ingest(self, entries: Iterable[Any]) -> int:
        """Add entries (ascending seq); returns how many were added."""
        added = 0
        sessions_changed = False
        feed_append, counts = self.feed.append, self.counts
        for e in entries:
            added += 1
            self.last_seq = e.seq
            if e.action in NOT_EVENTS:
                if e.action in SESSION_ACTIONS:
                    self._session_entries.append(e)
                    sessions_changed = True
                continue
            if e.seq > self._feed_from_seq:
                feed_append(e)
            counts[(e.action, e.decision)] += 1
            if e.decision == "deny":
                self.denials.append(e)
            if e.session_id:
                per = self.session_counts.get(e.session_id)
                if per is None:
                    per = self.session_counts[e.session_id] = Counter()
                per[e.decision] += 1
            self.per_second[e.ts_ns // 1_000_000_000] += 1
        self.entries += added
        if sessions_changed:
            # The tail sees every entry from the first, so folding the session entries it
            # saw gives what Ledger.sessions() would, without re-reading the ledger.
            folded = fold_sessions(self._session_entries)
            self.sessions = sorted(folded, key=lambda s: (s.start_ns, s.id), reverse=True)
        if len(self.per_second) > RATE_SECONDS * 2:
            newest = max(self.per_second)
            for second in [s for s in self.per_second if s < newest - RATE_SECONDS]:
                del self.per_second[second]
        return added

    def session(self, session_id: str) -> Any:
        """The newest state of session ``session_id``."""
        return next(s for s in self.sessions if s.id == session_id)

    def action_totals(self) -> list[tuple[str, int, int, int]]:
        """(action, allow, deny, info) for every action seen, most frequent first."""
        actions: Counter[str] = Counter()
        for (action, _decision), n in self.counts.items():
            actions[action] += n
        return [
            (a, self.counts[(a, "allow")], self.counts[(a, "deny")], self.counts[(a, "info")])
            for a, _ in sorted(actions.items(), key=lambda kv: (-kv[1], kv[0]))
        ]

    def decision_totals(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for (_action, decision), n in self.counts.items():
            totals[decision] += n
        return totals

    def rate_series(self, now_s: int, seconds: int) -> list[int]:
        """Events per second for the ``seconds`` seconds ending at ``now_s``."""
        return [self.per_second.get(s, 0) for s in range(now_s - seconds + 1, now_s + 1)]
