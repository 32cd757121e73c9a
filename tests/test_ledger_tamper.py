"""Tampering with a real ledger file by raw SQL (and by rebuilding it) is found by
verify, at the right sequence number and for the right reason."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from ledger_helpers import ORIGIN, file_events, open_test_ledger

from aegis.ledger import Ledger
from aegis.ledger.canonical import RECORD_FIELDS
from aegis.ledger.storage import connect

N = 10


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    """A ledger of N entries with a signed checkpoint at its end."""
    with open_test_ledger(tmp_path) as ledger:
        ledger.append(file_events(N))
        ledger.checkpoint()
        assert ledger.verify().ok
    return tmp_path


def sql(directory: Path, *statements: str, params: tuple = ()) -> None:
    with sqlite3.connect(directory / "ledger.db") as conn:
        for statement in statements:
            conn.execute(statement, params)


def verify(directory: Path) -> tuple[int | None, str | None]:
    with open_test_ledger(directory) as ledger:
        result = ledger.verify()
    return result.first_bad_seq, result.reason


NEW_VALUES = {"ts_ns": 1, "kind": "session", "session_id": "forged", "principal": "root",
              "action": "FileWrite",
              "resource": "/etc/shadow", "pid": 1, "ppid": 0, "executable": "/bin/sh", "source": "forged",
              "decision": "allow", "policy_ids": ["other"], "errors": ["x"], "reason": "because",
              "details": {"flags": 999}}


@pytest.mark.parametrize("field", RECORD_FIELDS)
def test_editing_any_field_of_a_middle_entry(ledger_dir: Path, field: str) -> None:
    index = RECORD_FIELDS.index(field)
    sql(ledger_dir, f"UPDATE entries SET record = json_set(record, '$[{index}]', json(?)) WHERE seq = 5",
        params=(json.dumps(NEW_VALUES[field]),))
    with sqlite3.connect(ledger_dir / "ledger.db") as conn:
        stored = conn.execute(f"SELECT json_extract(record, '$[{index}]') FROM entries WHERE seq = 5")
        assert stored.fetchone()
    assert verify(ledger_dir) == (5, "hash mismatch")


def test_filters_read_the_hashed_record_not_an_editable_copy(ledger_dir: Path) -> None:
    with pytest.raises(sqlite3.OperationalError, match="no such column"):
        sql(ledger_dir, "UPDATE entries SET action = 'FileRead' WHERE seq = 4")
    with open_test_ledger(ledger_dir) as ledger:
        assert [e.seq for e in ledger.query(action="FileWrite")] == [1, 4, 7, 10]


def test_editing_the_stored_hash(ledger_dir: Path) -> None:
    sql(ledger_dir, "UPDATE entries SET hash = ? WHERE seq = 5", params=(b"\xab" * 32,))
    assert verify(ledger_dir) == (5, "hash mismatch")


def test_copying_an_intact_entry_over_another(ledger_dir: Path) -> None:
    """Entry 8, record and hash, put in entry 5's place: each is consistent on its own,
    but 5 no longer follows 4."""
    sql(ledger_dir, "UPDATE entries SET (record, hash) = (SELECT record, hash FROM entries WHERE seq = 8) "
                    "WHERE seq = 5")
    assert verify(ledger_dir) == (5, "broken link")


def test_an_intact_first_entry_inserted_in_the_middle(ledger_dir: Path) -> None:
    sql(ledger_dir, "DELETE FROM entries WHERE seq = 5",
        "INSERT INTO entries SELECT 5, record, hash FROM entries WHERE seq = 1")
    assert verify(ledger_dir) == (5, "broken link")


@pytest.mark.parametrize("value", ["X'ab'", "'ab'", "lower(hex(hash))", "hash || X'00'"])
def test_hash_values_of_the_wrong_length_or_type(ledger_dir: Path, value: str) -> None:
    sql(ledger_dir, f"UPDATE entries SET hash = {value} WHERE seq = 5")
    assert verify(ledger_dir) == (5, "hash mismatch")


def test_a_missing_hash_is_refused_by_the_table(ledger_dir: Path) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        sql(ledger_dir, "UPDATE entries SET hash = NULL WHERE seq = 5")


@pytest.mark.parametrize("seq", [0, -3])
def test_an_entry_before_the_first(ledger_dir: Path, seq: int) -> None:
    sql(ledger_dir, f"INSERT INTO entries SELECT {seq}, record, hash FROM entries WHERE seq = 1")
    assert verify(ledger_dir) == (seq, "gap")


def test_renumbering_an_entry(ledger_dir: Path) -> None:
    sql(ledger_dir, "UPDATE entries SET seq = 500 WHERE seq = 5")
    assert verify(ledger_dir) == (5, "gap")


def test_shifting_bytes_between_adjacent_fields(ledger_dir: Path) -> None:
    sql(ledger_dir, "UPDATE entries SET record = "
                    "replace(record, '\"FileRead\",\"/work', '\"FileRea\",\"d/work') WHERE seq = 5")
    with sqlite3.connect(ledger_dir / "ledger.db") as conn:
        assert conn.execute("SELECT json_extract(record, '$[4]'), json_extract(record, '$[5]') FROM entries "
                            "WHERE seq = 5").fetchone() == (
            "FileRea", "d/work/project/file4.txt")
    assert verify(ledger_dir) == (5, "hash mismatch")


def test_deleting_a_middle_entry(ledger_dir: Path) -> None:
    sql(ledger_dir, "DELETE FROM entries WHERE seq = 5")
    assert verify(ledger_dir) == (5, "gap")


def test_deleting_the_last_three_entries(ledger_dir: Path) -> None:
    sql(ledger_dir, f"DELETE FROM entries WHERE seq > {N - 3}")
    with open_test_ledger(ledger_dir) as ledger:
        result = ledger.verify()
    assert (result.first_bad_seq, result.reason) == (N - 2, "checkpoint mismatch")
    assert "removed from the end" in result.detail


def test_deleting_the_tail_and_the_ledgers_own_checkpoints(ledger_dir: Path) -> None:
    sql(ledger_dir, f"DELETE FROM entries WHERE seq > {N - 3}", "DELETE FROM checkpoints")
    assert verify(ledger_dir) == (N - 2, "checkpoint mismatch")


def test_deleting_the_checkpointed_entry_inside_the_ledger(ledger_dir: Path) -> None:
    with open_test_ledger(ledger_dir) as ledger:
        ledger.append(file_events(2, start=N))
    sql(ledger_dir, f"DELETE FROM entries WHERE seq = {N}")
    assert verify(ledger_dir) == (N, "gap")


def test_swapping_two_entries(ledger_dir: Path) -> None:
    sql(ledger_dir,
        "UPDATE entries SET seq = -4 WHERE seq = 4", "UPDATE entries SET seq = 4 WHERE seq = 5",
        "UPDATE entries SET seq = 5 WHERE seq = -4")
    assert verify(ledger_dir) == (4, "broken link")


def test_swapping_two_records(ledger_dir: Path) -> None:
    sql(ledger_dir, "UPDATE entries SET record = (SELECT record FROM entries WHERE seq = 5) WHERE seq = 4")
    assert verify(ledger_dir) == (4, "hash mismatch")


def rebuild(directory: Path, change_seq: int) -> None:
    """What an attacker with write access does: rewrite one entry, recompute every hash
    with an independent implementation (hashlib), write a fresh database."""
    old = sqlite3.connect(directory / "ledger.db")
    rows = old.execute("SELECT seq, record FROM entries ORDER BY seq").fetchall()
    old.close()
    for suffix in ("", "-wal", "-shm"):
        (directory / f"ledger.db{suffix}").unlink(missing_ok=True)
    connect(directory / "ledger.db").close()
    prev = bytes(32)
    with sqlite3.connect(directory / "ledger.db") as conn:
        for seq, record in rows:
            if seq == change_seq:
                record = record.replace("/work/project", "/elsewhere")
            leaf = hashlib.sha256(b"\x00" + record.encode()).digest()
            chain = hashlib.sha256(prev + leaf).digest()
            conn.execute("INSERT INTO entries (seq, record, hash) VALUES (?, ?, ?)", (seq, record, chain))
            prev = chain


def test_rebuilt_database_is_caught_by_the_outside_checkpoint(ledger_dir: Path) -> None:
    rebuild(ledger_dir, change_seq=5)
    with open_test_ledger(ledger_dir) as ledger:
        result = ledger.verify()
    assert result.entries_checked == N  # the chain itself is consistent again
    assert (result.first_bad_seq, result.reason) == (N, "checkpoint mismatch")
    assert "rewritten" in result.detail


def test_rebuild_without_the_change_is_consistent(ledger_dir: Path) -> None:
    """The rebuild script is faithful: unchanged, it reproduces the very same hashes."""
    rebuild(ledger_dir, change_seq=-1)
    assert verify(ledger_dir) == (None, None)


def test_edited_checkpoint_file_is_a_bad_signature(ledger_dir: Path) -> None:
    path = ledger_dir / "checkpoints.log"
    path.write_text(path.read_text().replace(f"\n{N}\n", f"\n{N - 3}\n", 1))
    assert verify(ledger_dir) == (N - 3, "signature invalid")


def test_checkpoint_signed_by_another_key_is_a_bad_signature(ledger_dir: Path, tmp_path_factory) -> None:
    other = tmp_path_factory.mktemp("other")
    with open_test_ledger(other) as ledger:
        ledger.append(file_events(N))
        note = ledger.checkpoint()
    with (ledger_dir / "checkpoints.log").open("a") as fh:
        fh.write(note + "\n")
    assert verify(ledger_dir) == (N, "signature invalid")


def test_verifies_with_the_public_key_alone(ledger_dir: Path, tmp_path_factory) -> None:
    public_only = tmp_path_factory.mktemp("public")
    shutil.copy(ledger_dir / "keys" / "ledger.vkey", public_only)
    with Ledger.open(ledger_dir / "ledger.db", key_dir=public_only, origin=ORIGIN,
                     checkpoint_file=ledger_dir / "checkpoints.log") as ledger:
        assert ledger.verify().ok
    path = ledger_dir / "checkpoints.log"
    path.write_text(path.read_text().replace(f"\n{N}\n", f"\n{N - 1}\n", 1))
    with Ledger.open(ledger_dir / "ledger.db", key_dir=public_only, origin=ORIGIN,
                     checkpoint_file=ledger_dir / "checkpoints.log") as ledger:
        assert ledger.verify().reason == "signature invalid"


def test_redefined_entries_table_is_reported(ledger_dir: Path) -> None:
    sql(ledger_dir, "CREATE TABLE plain AS SELECT seq, record, hash, "
                    "json_extract(record, '$[4]') AS action FROM entries",
        "DROP VIEW sessions", "DROP VIEW policy_snapshots", "DROP TABLE entries",
        "ALTER TABLE plain RENAME TO entries", "UPDATE entries SET action = 'FileWrite' WHERE seq = 5")
    first, reason = verify(ledger_dir)
    assert reason == "hash mismatch" and first == 1
