"""``Ledger.verify(since_checkpoint=True)`` (the quick check ``aegis status`` runs) and
``Ledger.checkpoints()``, on real ledger files tampered with by raw SQL."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from ledger_helpers import ORIGIN, file_events, open_test_ledger

from aegis.ledger import Ledger
from aegis.ledger.signing import split_notes

# Checkpoint at entry 10, then five entries it does not cover.
SIGNED, TOTAL = 10, 15


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    with open_test_ledger(tmp_path) as ledger:
        ledger.append(file_events(4))
        ledger.checkpoint()
        ledger.append(file_events(SIGNED - 4, start=4))
        ledger.checkpoint()
        ledger.append(file_events(TOTAL - SIGNED, start=SIGNED))
    return tmp_path


def tamper(directory: Path, seq: int) -> None:
    with sqlite3.connect(directory / "ledger.db") as conn:
        conn.execute("UPDATE entries SET record = replace(record, 'file', 'fyle') WHERE seq = ?", (seq,))


def test_quick_check_rehashes_only_entries_after_the_newest_checkpoint(ledger_dir: Path) -> None:
    with open_test_ledger(ledger_dir) as ledger:
        quick, full = ledger.verify(since_checkpoint=True), ledger.verify()
    assert quick.ok and quick.entries_checked == TOTAL - SIGNED and quick.trusted_entries == SIGNED
    assert quick.checkpoints_checked == full.checkpoints_checked == 2  # the file's copies are the same notes
    assert full.ok and full.entries_checked == TOTAL and full.trusted_entries == 0


def test_quick_check_trusts_signed_entries_the_full_check_rehashes(ledger_dir: Path) -> None:
    tamper(ledger_dir, 3)
    with open_test_ledger(ledger_dir) as ledger:
        assert ledger.verify(since_checkpoint=True).ok
        full = ledger.verify()
    assert (full.first_bad_seq, full.reason) == (3, "hash mismatch")


@pytest.mark.parametrize("seq", [SIGNED + 1, TOTAL])
def test_quick_check_finds_edits_after_the_checkpoint(ledger_dir: Path, seq: int) -> None:
    tamper(ledger_dir, seq)
    with open_test_ledger(ledger_dir) as ledger:
        result = ledger.verify(since_checkpoint=True)
    assert (result.first_bad_seq, result.reason) == (seq, "hash mismatch")


def test_quick_check_falls_back_past_a_checkpoint_that_no_longer_matches(ledger_dir: Path) -> None:
    with sqlite3.connect(ledger_dir / "ledger.db") as conn:
        conn.execute("UPDATE entries SET hash = ? WHERE seq = ?", ("ab" * 32, SIGNED))
    with open_test_ledger(ledger_dir) as ledger:
        result = ledger.verify(since_checkpoint=True)
    # The older checkpoint (4 entries) still holds, so the chain is rehashed from entry 5.
    assert (result.first_bad_seq, result.reason, result.trusted_entries) == (SIGNED, "hash mismatch", 4)


def test_quick_check_finds_a_cut_tail(ledger_dir: Path) -> None:
    with sqlite3.connect(ledger_dir / "ledger.db") as conn:
        conn.execute("DELETE FROM entries WHERE seq > 8")
    with open_test_ledger(ledger_dir) as ledger:
        result = ledger.verify(since_checkpoint=True)
    assert (result.first_bad_seq, result.reason) == (9, "checkpoint mismatch")


def test_quick_check_never_anchors_on_a_forged_checkpoint(ledger_dir: Path) -> None:
    """A note whose signature does not verify is reported, and the chain before it is
    rehashed as if it were not there."""
    tamper(ledger_dir, 12)
    path = ledger_dir / "checkpoints.log"
    last_note = split_notes(path.read_text())[-1]
    with path.open("a") as fh:
        fh.write(last_note.replace(f"\n{SIGNED}\n", f"\n{TOTAL}\n", 1) + "\n")
    with open_test_ledger(ledger_dir) as ledger:
        result = ledger.verify(since_checkpoint=True)
    assert (result.first_bad_seq, result.reason) == (12, "hash mismatch")


def test_without_a_key_the_quick_check_is_the_full_check(ledger_dir: Path) -> None:
    tamper(ledger_dir, 3)
    with Ledger.open(ledger_dir / "ledger.db", origin=ORIGIN) as ledger:
        result = ledger.verify(since_checkpoint=True)
    assert (result.first_bad_seq, result.reason, result.trusted_entries) == (3, "hash mismatch", 0)


def test_checkpoints_are_parsed_with_their_signature_state(ledger_dir: Path, tmp_path_factory) -> None:
    with open_test_ledger(ledger_dir) as ledger:
        hashes = {e.seq: e.hash for e in ledger.query()}
        found = ledger.checkpoints()
    assert [(c.size, c.where, c.signature_valid) for c in found] == [(4, "ledger", True), (SIGNED, "ledger", True)]
    assert all(c.origin == ORIGIN and c.root == hashes[c.size] and c.created_ns for c in found)
    assert found[1].root_base64 in (ledger_dir / "checkpoints.log").read_text()
    # One only in the outside file, one signed by someone else, and no key at all.
    other = tmp_path_factory.mktemp("other")
    with open_test_ledger(other) as stranger:
        stranger.append(file_events(TOTAL))
        foreign = stranger.checkpoint()
    with sqlite3.connect(ledger_dir / "ledger.db") as conn:
        conn.execute("DELETE FROM checkpoints WHERE size = 4")
    with (ledger_dir / "checkpoints.log").open("a") as fh:
        fh.write(foreign + "\n")
    with open_test_ledger(ledger_dir) as ledger:
        found = ledger.checkpoints()
    log = str(ledger_dir / "checkpoints.log")
    assert [(c.size, c.where, c.signature_valid, c.created_ns is None) for c in found] == [
        (SIGNED, "ledger", True, False), (4, log, True, True), (TOTAL, log, False, True)]
    shutil.rmtree(ledger_dir / "keys")
    with Ledger.open(ledger_dir / "ledger.db", origin=ORIGIN, checkpoint_file=ledger_dir / "checkpoints.log",
                     key_dir=ledger_dir / "keys") as ledger:
        assert {c.signature_valid for c in ledger.checkpoints()} == {None}
