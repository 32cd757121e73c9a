"""Exporting ledger entries for other tools: JSON, JSON Lines, CSV and CEF.

Every writer takes an iterator of entries and streams it, so exporting a million
entries holds one entry in memory at a time; ``follow`` keeps reading entries
as they are appended.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from aegis.errors import AegisError
from aegis.export.cef import write_cef
from aegis.export.csv_export import write_csv
from aegis.export.json_export import write_json, write_jsonl
from aegis.ledger import Entry, Ledger

Writer = Callable[[Iterable[Entry], TextIO], int]
WRITERS: dict[str, Writer] = {"json": write_json, "jsonl": write_jsonl, "csv": write_csv, "cef": write_cef}
FORMATS = tuple(WRITERS)


def export_entries(entries: Iterable[Entry], fmt: str, out: TextIO) -> int:
    """Write ``entries`` to ``out`` in ``fmt``; returns how many were written."""
    try:
        writer = WRITERS[fmt]
    except KeyError:
        raise AegisError(f"unknown export format {fmt!r} (expected one of: {', '.join(FORMATS)})") from None
    return writer(entries, out)


def follow_entries(ledger: Ledger, *, since_ns: int | None = None, poll_seconds: float = 0.5,
                   on_idle: Callable[[], None] | None = None) -> Iterator[Entry]:
    """Every matching entry, then each new one as it is appended, forever (stop by
    closing the iterator or interrupting). ``on_idle`` runs whenever the reader has
    caught up (the CLI flushes its output there)."""
    after = 0
    while True:
        for entry in ledger.query(since_ns=since_ns, after_seq=after):
            after = entry.seq
            yield entry
        if on_idle is not None:
            on_idle()
        time.sleep(poll_seconds)
