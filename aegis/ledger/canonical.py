"""The canonical encoding of an entry: the exact bytes its leaf hash covers.

An entry's record is one canonical JSON array (keys sorted, no insignificant
whitespace, UTF-8 as is, no NaN) holding every field in the order of
``RECORD_FIELDS``. JSON's quoting makes it unambiguous: moving bytes from one
field into its neighbour changes the record. The record is stored verbatim and
hashed verbatim, so verification never re-serialises anything; the entry's
sequence number is bound by its position in the chain.
"""

from __future__ import annotations

import hashlib
import json
import json.scanner
from collections.abc import Callable, Iterable
from typing import Any

from aegis.errors import AegisError

RECORD_FIELDS = ("ts_ns", "kind", "session_id", "principal", "action", "resource", "pid", "ppid",
                 "executable", "source", "decision", "policy_ids", "errors", "reason", "details")
FIELD_INDEX = {name: i for i, name in enumerate(RECORD_FIELDS)}


def _refuse(value: object) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def compact_json_encoder(*, sort_keys: bool) -> Callable[[Any], str]:
    """A function encoding values as compact JSON (UTF-8 as is, no NaN), keys sorted
    or in their own order.

    The C encoder built once and reused: JSONEncoder.encode builds a new one per
    call, which is most of the cost of encoding a short record, and appends and
    exports are hot.
    """
    make = json.encoder.c_make_encoder
    if make is None:
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys, allow_nan=False,
                                default=_refuse).encode
    encoder = make(None, _refuse, json.encoder.encode_basestring, None, ":", ",", sort_keys, False, False)
    return lambda value: "".join(encoder(value, 0))


canonical_json: Callable[[Any], str] = compact_json_encoder(sort_keys=True)

# The C scanner json.loads ends in, called directly: json.loads first runs two regex
# matches and two Python frames, which cost as much as decoding a short record.
_scan = json.scanner.make_scanner(json.JSONDecoder())


def decode_record(text: str) -> list[Any]:
    """The field values of a stored record (RECORD_FIELDS order)."""
    try:
        fields, end = _scan(text, 0)
    except StopIteration:
        end = -1
    if end != len(text) or type(fields) is not list:
        return json.loads(text)  # not as written: let json say what is wrong with it
    return fields


def encode_record(fields: list[Any]) -> tuple[str, bytes]:
    """(record text, its UTF-8 bytes) for ``fields`` in RECORD_FIELDS order.

    Text that is not valid Unicode (file names decoded with surrogateescape) is
    stored with its undecodable bytes as ``\\xNN`` escapes rather than failing the batch.
    """
    try:
        text = canonical_json(fields)
    except (TypeError, ValueError) as exc:
        raise AegisError(f"ledger event {fields[FIELD_INDEX['action']]!r}: cannot encode: {exc}") from None
    try:
        return text, text.encode()
    except UnicodeEncodeError:
        text = canonical_json(_clean(fields))
        return text, text.encode()


def encode_lines(events: Iterable[Any], kind: str, principal: str, now: int) -> bytes:
    """The records of ``events`` (``Event``s) as entries of ``kind``, UTF-8, one per
    line: ``encode_record`` of each, joined by newlines. An event without a principal
    gets ``principal``, one without a time gets ``now``.

    A record never holds a raw newline (JSON escapes control characters), so the
    batch crosses into C and SQLite as this one buffer. The whole batch goes through
    canonical_json in one comprehension; only a batch holding something it cannot
    take as is (a value that is not JSON, text that is not valid Unicode) is redone
    event by event, to clean or name the culprit.
    """
    try:
        return "\n".join([canonical_json(record_fields(e, kind, principal, now)) for e in events]).encode()
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        return b"\n".join([encode_record(record_fields(e, kind, principal, now))[1] for e in events])


def record_fields(event: Any, kind: str, principal: str, now: int) -> list[Any]:
    """The values of an event's record, in RECORD_FIELDS order."""
    return [event.ts_ns or now, kind, event.session_id, event.principal or principal, event.action,
            event.resource, event.pid, event.ppid, event.executable, event.source, event.decision,
            event.policy_ids, event.errors, event.reason, event.details]


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def policy_hash(files: dict[str, str]) -> str:
    """SHA-256 (hex) of the canonical JSON of a policy set (file name -> text)."""
    return hashlib.sha256(canonical_json(files).encode("utf-8", "surrogatepass")).hexdigest()
