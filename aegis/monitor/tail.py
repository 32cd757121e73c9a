"""Reading new ledger entries by sequence number, a bounded chunk at a time.

The dashboard never re-reads what it has seen: each poll asks the ledger for
entries after the last sequence number read, and takes at most ``chunk`` of
them, so catching up on a ledger of a million entries happens over many short
ticks while the screen keeps answering keys.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

DEFAULT_CHUNK = 2_000


class LedgerTail:
    def __init__(self, ledger: Any, chunk: int = DEFAULT_CHUNK) -> None:
        self.ledger = ledger
        self.chunk = chunk
        self.behind = True  # the last poll filled a whole chunk: more are waiting

    def poll(self, after_seq: int) -> list[Any]:
        """Entries with seq > ``after_seq``, oldest first, at most ``chunk`` of them."""
        entries = self.ledger.query(after_seq=after_seq)
        try:
            batch = list(islice(entries, self.chunk))
        finally:
            close = getattr(entries, "close", None)
            if close is not None:
                close()
        self.behind = len(batch) == self.chunk
        return batch
