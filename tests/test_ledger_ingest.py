"""Batched ingest (aegis/ledger/ingest.py): what SQLite stores is byte for byte what
was hashed, over every kind of text, in one chunk or pipelined over many; a failure
in any chunk appends nothing."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_helpers import file_events, open_test_ledger

from aegis.errors import AegisError
from aegis.ledger import Event, ingest
from aegis.ledger.canonical import encode_record, record_fields

# Text of every kind: quotes, backslashes, newlines and other control characters,
# non-ASCII and astral characters, and (through surrogateescape) undecodable bytes.
TEXT = st.one_of(st.text(), st.text(alphabet='"\\\n\r\t\x00\x1f\x7f/é€\U0001f600\u2028 ,[]{}:'),
                 st.binary(max_size=20).map(os.fsdecode))
JSON_VALUE = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64) | TEXT
                          | st.floats(allow_nan=False, allow_infinity=False),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                          max_leaves=8)
EVENT = st.builds(Event, action=TEXT, resource=TEXT, decision=st.sampled_from(["allow", "deny", "info"]),
                  session_id=TEXT, principal=TEXT, pid=st.integers(0, 2**31), ppid=st.integers(0, 2**31),
                  executable=TEXT, source=TEXT, policy_ids=st.lists(TEXT, max_size=3),
                  errors=st.lists(TEXT, max_size=2), reason=TEXT,
                  details=st.dictionaries(TEXT, JSON_VALUE, max_size=3), ts_ns=st.integers(1, 2**63 - 1))


def reference_hashes(records: list[bytes]) -> list[bytes]:
    """The chain over ``records`` by hashlib, independently of sha_chain.c."""
    prev, out = bytes(32), []
    for record in records:
        prev = hashlib.sha256(prev + hashlib.sha256(b"\x00" + record).digest()).digest()
        out.append(prev)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(EVENT, min_size=1, max_size=12), min_size=1, max_size=3),
       chunk=st.sampled_from([1, 2, 5, 1000]))
def test_stored_records_are_the_hashed_bytes(batches: list[list[Event]], chunk: int) -> None:
    original_chunk = ingest.CHUNK
    ingest.CHUNK = chunk  # small chunks: the pipelined path, on batches hypothesis can afford
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with open_test_ledger(Path(tmp)) as ledger:
                for batch in batches:
                    ledger.append(batch)
                rows = ledger._conn.execute("SELECT seq, typeof(record), CAST(record AS BLOB), record, hash "
                                            "FROM entries ORDER BY seq").fetchall()
                assert ledger.verify().ok
    finally:
        ingest.CHUNK = original_chunk
    events = [e for batch in batches for e in batch]
    expected = [encode_record(record_fields(e, "event", "tester", 0))[1] for e in events]
    assert [row[0] for row in rows] == list(range(1, len(events) + 1))
    assert all(row[1] == "text" for row in rows)
    assert [row[2] for row in rows] == expected
    assert [row[3].encode() for row in rows] == expected
    assert [row[4] for row in rows] == reference_hashes(expected)


def test_a_batch_spanning_many_chunks_is_one_chain(tmp_path: Path) -> None:
    events = file_events(2 * ingest.CHUNK + 17)
    with open_test_ledger(tmp_path) as ledger:
        assert ledger.append(events[:5]) == [1, 2, 3, 4, 5]
        assert ledger.append(events[5:]) == list(range(6, len(events) + 1))
        entries = list(ledger.query())
        assert ledger.verify().ok
    assert [e.resource for e in entries] == [e.resource for e in events]
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))


def test_an_event_that_cannot_be_encoded_in_a_later_chunk_appends_nothing(tmp_path: Path) -> None:
    events = file_events(3 * ingest.CHUNK)
    events[2 * ingest.CHUNK + 5].details = {"not json": object()}
    with open_test_ledger(tmp_path) as ledger:
        ledger.append(file_events(2))
        with pytest.raises(AegisError, match="cannot encode"):
            ledger.append(events)
        assert ledger.size() == 2
        assert ledger.append(file_events(1)) == [3]
        assert ledger.verify().ok


def test_an_insert_failing_in_the_worker_appends_nothing(tmp_path: Path) -> None:
    with open_test_ledger(tmp_path) as ledger:
        ledger.append(file_events(2))
    # A trigger that refuses one row of the second chunk of the next batch.
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        conn.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON entries WHEN NEW.seq = {ingest.CHUNK + 10} "
                     "BEGIN SELECT RAISE(ABORT, 'refused by test'); END")
    with open_test_ledger(tmp_path) as ledger:
        with pytest.raises(AegisError, match="refused by test"):
            ledger.append(file_events(3 * ingest.CHUNK))
        assert ledger.size() == 2
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        conn.execute("DROP TRIGGER refuse")
    with open_test_ledger(tmp_path) as ledger:
        assert ledger.append(file_events(3 * ingest.CHUNK))[-1] == 2 + 3 * ingest.CHUNK
        assert ledger.verify().ok
