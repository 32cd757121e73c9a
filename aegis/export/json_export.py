"""JSON (one array) and JSON Lines: every field of every entry, as stored."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from aegis.ledger import Entry
from aegis.ledger.canonical import compact_json_encoder

_compact_json = compact_json_encoder(sort_keys=False)  # fields in Entry.to_dict order


def _dumps(entry: Entry) -> str:
    return _compact_json(entry.to_dict())


def write_jsonl(entries: Iterable[Entry], out: TextIO) -> int:
    count = 0
    for entry in entries:
        out.write(_dumps(entry) + "\n")
        count += 1
    return count


def write_json(entries: Iterable[Entry], out: TextIO) -> int:
    """A JSON array written element by element (never built in memory); the closing
    bracket is written even when the stream is interrupted, so the output parses."""
    count = 0
    out.write("[")
    try:
        for entry in entries:
            out.write(("\n" if count == 0 else ",\n") + _dumps(entry))
            count += 1
    finally:
        out.write("\n]\n" if count else "]\n")
    return count
