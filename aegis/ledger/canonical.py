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
from collections.abc import Callable
from typing import Any

from aegis.errors import AegisError

RECORD_FIELDS = ("ts_ns", "kind", "session_id", "principal", "action", "resource", "pid", "ppid",
                 "executable", "source", "decision", "policy_ids", "errors", "reason", "details")
FIELD_INDEX = {name: i for i, name in enumerate(RECORD_FIELDS)}


def _refuse(value: object) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _make_encoder() -> Callable[[Any], str]:
    # The C encoder built once and reused: JSONEncoder.encode builds a new one per
    # call, which is most of the cost of encoding a short record, and appends are hot.
    make = json.encoder.c_make_encoder
    if make is None:
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False,
                                default=_refuse).encode
    encoder = make(None, _refuse, json.encoder.encode_basestring, None, ":", ",", True, False, False)
    return lambda value: "".join(encoder(value, 0))


canonical_json: Callable[[Any], str] = _make_encoder()


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
