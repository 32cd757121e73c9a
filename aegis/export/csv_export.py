"""CSV with one column per field. Cells a spreadsheet would run as a formula
(starting with ``= + - @``, tab or carriage return) are prefixed with ``'``."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

from aegis.ledger import Entry
from aegis.ledger.canonical import canonical_json

COLUMNS = ("seq", "ts_ns", "kind", "session_id", "principal", "action", "resource", "decision", "pid", "ppid",
           "executable", "source", "policy_ids", "errors", "reason", "details", "prev_hash", "hash")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """``value`` made safe to open in a spreadsheet (numbers stay numbers)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        value = canonical_json(value)
    return neutralise(value)


def write_csv(entries: Iterable[Entry], out: TextIO) -> int:
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    count = 0
    for entry in entries:
        writer.writerow([_cell(getattr(entry, column)) for column in COLUMNS])
        count += 1
    return count
