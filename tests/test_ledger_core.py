"""The ledger API on real SQLite files: appending, reading back, sessions, policy
snapshots, checkpoints, and refusing files that are not (our) ledgers."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from ledger_helpers import ORIGIN, file_events, open_test_ledger

from aegis.config import load_config, load_config_dir
from aegis.errors import AegisError
from aegis.ledger import Event, Ledger, open_ledger
from aegis.ledger.canonical import decode_record, encode_record, record_fields
from aegis.ledger.history import diff_versions
from aegis.ledger.storage import BOOKKEEPING, KIND, field_sql
from aegis.provision import create_config


def test_append_returns_consecutive_seqs_and_round_trips_every_field(tmp_path: Path) -> None:
    with open_test_ledger(tmp_path) as ledger:
        assert ledger.append(file_events(3)) == [1, 2, 3]
        odd = Event(action="NetConnect", resource="exämple.org:443", decision="deny", session_id="s",
                    principal="agent-7", pid=42, ppid=7, executable="/usr/bin/curl\x00x", source="connect",
                    policy_ids=["p1", "p2"], errors=["boom"], reason="forbid \"net\"\n",
                    details={"argv": ["curl", "é"], "n": 1.5, "nested": {"b": 1, "a": None}}, ts_ns=123)
        assert ledger.append([odd]) == [4]
        assert ledger.append([]) == []
        (entry,) = ledger.query(after_seq=3)
    for field in ("action", "resource", "decision", "session_id", "principal", "pid", "ppid", "executable",
                  "source", "policy_ids", "errors", "reason", "details", "ts_ns"):
        assert getattr(entry, field) == getattr(odd, field), field
    assert entry.seq == 4 and entry.kind == "event" and len(entry.hash) == 64 and len(entry.prev_hash) == 64


def test_principal_and_time_default(tmp_path: Path) -> None:
    with open_test_ledger(tmp_path) as ledger:
        ledger.append([Event("FileRead", "/a", "allow")])
        (entry,) = ledger.query()
    assert entry.principal == "tester"
    assert abs(entry.ts_ns - time.time_ns()) < 60 * 10**9


def test_undecodable_file_names_are_escaped_not_fatal(tmp_path: Path) -> None:
    name = os.fsdecode(b"/tmp/bad\xffname")
    with open_test_ledger(tmp_path) as ledger:
        ledger.append([Event("FileRead", name, "allow")])
        assert next(ledger.query()).resource == "/tmp/bad\\xffname"
        assert ledger.verify().ok


def test_a_batch_with_one_odd_event_keeps_the_others_as_they_are(tmp_path: Path) -> None:
    """The batch encoder redoes a batch event by event when one event needs cleaning;
    every record is still exactly the canonical encoding of its own event."""
    events = [*file_events(2), Event("FileRead", os.fsdecode(b"/bad\xff"), "allow", ts_ns=5), *file_events(2, start=2)]
    with open_test_ledger(tmp_path) as ledger:
        ledger.append(events)
        texts = [row[0] for row in ledger._conn.execute("SELECT record FROM entries ORDER BY seq")]
    expected = [encode_record(record_fields(e, "event", "tester", 0))[0] for e in events]
    assert texts == expected and "\\\\xff" in texts[2]


def test_records_decode_as_json_would() -> None:
    text = encode_record([1, "event", "s", "p", "FileRead", "/é\n\"x\"", 2, 3, "", "", "allow", ["a"], [],
                          "", {"b": [1.5, None, True], "a": {}}])[0]
    assert decode_record(text) == json.loads(text)
    assert decode_record(' [1, "a"] ') == [1, "a"]  # not as we write it, still JSON
    for bad in ('[1, "a"] x', "", "{}x"):
        with pytest.raises(json.JSONDecodeError):
            decode_record(bad)


def test_moving_bytes_between_adjacent_fields_changes_the_record() -> None:
    def record(action: str, resource: str) -> bytes:
        return encode_record([1, "event", "", "", action, resource, 0, 0, "", "", "allow", [], [], "", {}])[1]

    assert record("FileRead", "/x") != record("FileRea", "d/x")
    assert record("ab", "c") != record("a", "bc")


def test_query_filters(tmp_path: Path) -> None:
    with open_test_ledger(tmp_path) as ledger:
        ledger.append(file_events(10, session_id="s1"))
        ledger.append(file_events(5, session_id="s2", start=10))
        seqs = lambda **kw: [e.seq for e in ledger.query(**kw)]  # noqa: E731
        assert seqs() == list(range(1, 16))
        assert seqs(last=3) == [13, 14, 15]
        assert seqs(action="FileWrite") == [1, 4, 7, 10, 13]
        assert seqs(decision="deny") == [5, 10, 15]
        assert seqs(session="s2") == [11, 12, 13, 14, 15]
        base = 1_700_000_000_000_000_000
        assert seqs(since_ns=base + 12 * 10**9, until_ns=base + 14 * 10**9) == [13, 14]
        assert seqs(path_glob="/work/project/file1?.txt") == [11, 12, 13, 14, 15]
        assert seqs(after_seq=13) == [14, 15]
        assert seqs(action="FileWrite", decision="deny", last=1) == [10]


def test_session_lifecycle_and_checkpoint(tmp_path: Path) -> None:
    with open_test_ledger(tmp_path) as ledger:
        sid = ledger.begin_session(command=["python3", "-c", "print(1)"], cwd="/work", policy_hash="abc",
                                   observer="seccomp", config="demo", details={"isolation": "landlock"})
        ledger.append(file_events(3, session_id=sid))
        ledger.end_session(sid, exit_code=3, signal=None, counts={"allow": 2, "deny": 1})
        (session,) = ledger.sessions()
        assert session == ledger.session(sid)
        result = ledger.verify()
    assert (session.state, session.exit_code, session.command, session.cwd) == (
        "finished", 3, ["python3", "-c", "print(1)"], "/work")
    assert session.counts == {"allow": 2, "deny": 1} and session.details == {"isolation": "landlock"}
    assert (session.start_seq, session.end_seq) == (1, 5)
    assert result.ok and result.entries_checked == 5 and result.checkpoints_checked == 1
    assert "\n5\n" in (tmp_path / "checkpoints.log").read_text()


def test_unknown_session_and_bad_state_are_errors(tmp_path: Path) -> None:
    with open_test_ledger(tmp_path) as ledger:
        with pytest.raises(AegisError, match="no session"):
            ledger.session("nope")
        with pytest.raises(AegisError, match="state"):
            ledger.end_session("x", exit_code=0, signal=None, state="running")


def test_crashed_session_is_marked_interrupted_on_next_open(tmp_path: Path) -> None:
    open_test_ledger(tmp_path).close()
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from aegis.ledger import Ledger\n"
        "d = Path(sys.argv[1])\n"
        "l = Ledger.open(d / 'ledger.db', key_dir=d / 'keys', checkpoint_file=d / 'checkpoints.log',"
        " origin='aegis/test')\n"
        "l.begin_session(command=['agent'], cwd='/', policy_hash='', observer='none', config='t')\n"
        "os._exit(9)\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False, env=os.environ)
    with open_test_ledger(tmp_path) as ledger:
        (session,) = ledger.sessions()
        assert session.state == "interrupted" and session.end_seq == 2
        assert ledger.verify().ok
    with open_test_ledger(tmp_path) as ledger:  # marked once, not on every open
        assert ledger.size() == 2


def test_live_session_of_this_process_is_not_interrupted(tmp_path: Path) -> None:
    with open_test_ledger(tmp_path) as ledger:
        sid = ledger.begin_session(command=["a"], cwd="/", policy_hash="", observer="none", config="t")
    with open_test_ledger(tmp_path) as ledger:
        assert ledger.session(sid).state == "running"


def test_policy_snapshot_recorded_only_on_change(tmp_path: Path) -> None:
    v1 = {"default.cedar": "permit(principal, action, resource);\n"}
    v2 = {"default.cedar": "forbid(principal, action, resource);\n", "net.cedar": "permit(principal, action,"
          " resource);\n"}
    with open_test_ledger(tmp_path) as ledger:
        h1 = ledger.record_policy_snapshot(v1)
        assert ledger.record_policy_snapshot(v1) == h1
        h2 = ledger.record_policy_snapshot(v2)
        history = ledger.policy_history()
    assert h1 != h2 and [v.hash for v in history] == [h1, h2] and history[1].files == v2
    diff = diff_versions(history[0], history[1])
    assert "-permit(principal, action, resource);" in diff and "+forbid(principal, action, resource);" in diff
    assert "+++ b/net.cedar" in diff and "--- /dev/null" in diff


def test_checkpoint_is_a_valid_c2sp_signed_note(tmp_path: Path) -> None:
    with open_test_ledger(tmp_path) as ledger:
        ledger.append(file_events(4))
        note = ledger.checkpoint()
        tip = list(ledger.query())[-1].hash
    body, _, signature_line = note.partition("\n\n")
    assert body.split("\n") == [ORIGIN, "4", base64.b64encode(bytes.fromhex(tip)).decode()]
    dash, name, blob = signature_line.strip().split(" ")
    assert dash == "\u2014" and name == ORIGIN
    raw = base64.b64decode(blob)
    vkey_name, key_hash, vkey = (tmp_path / "keys" / "ledger.vkey").read_text().strip().split("+", 2)
    public = base64.b64decode(vkey)[1:]
    assert raw[:4] == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    assert raw[:4].hex() == key_hash and vkey_name == ORIGIN
    Ed25519PublicKey.from_public_bytes(public).verify(raw[4:], (body + "\n").encode())


def test_checkpoint_needs_a_key(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger, pytest.raises(AegisError, match="no signing key"):
        ledger.checkpoint()


def test_bad_events_are_refused(tmp_path: Path) -> None:
    with open_test_ledger(tmp_path) as ledger:
        with pytest.raises(AegisError, match="decision"):
            ledger.append([Event("FileRead", "/a", "maybe")])
        with pytest.raises(AegisError, match="cannot encode"):
            ledger.append([Event("FileRead", "/a", "allow", details={"x": object()})])
        assert ledger.size() == 0


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b""])
def test_corrupt_file_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(content or b"SQLite format 3\x00" + b"\xff" * 200)
    with pytest.raises(AegisError) as err:
        Ledger.open(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_file_is_wal_versioned_and_owner_only(tmp_path: Path) -> None:
    with open_test_ledger(tmp_path) as ledger:
        ledger.append(file_events(1))
        with sqlite3.connect(tmp_path / "ledger.db") as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("PRAGMA user_version").fetchone() == (3,)
            assert conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() == ("aegis-ledger",)
        for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm", "checkpoints.log"):
            if (tmp_path / name).exists():
                assert (tmp_path / name).stat().st_mode & 0o077 == 0, name


def test_damaged_pages_are_found_never_a_traceback(tmp_path: Path) -> None:
    with open_test_ledger(tmp_path) as ledger:
        for start in range(0, 3000, 1000):
            ledger.append(file_events(1000, start=start))
    with (tmp_path / "ledger.db").open("r+b") as fh:
        fh.seek(40_000)
        fh.write(b"\xff" * 20_000)
    try:
        with open_test_ledger(tmp_path) as ledger:
            result = ledger.verify()
            list(ledger.query())
    except AegisError as exc:
        assert "\n" not in str(exc) and "ledger" in str(exc)
    else:
        assert not result.ok


def write_as_version_2(path: Path) -> None:
    """Rewrite a ledger file as version 2 wrote it: hashes as hex text, and each
    entry's previous hash stored with it."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT seq, record, hash FROM entries ORDER BY seq").fetchall()
        for statement in ("DROP VIEW sessions", "DROP VIEW policy_snapshots", "ALTER TABLE entries RENAME TO old"):
            conn.execute(statement)
        conn.execute("CREATE TABLE entries (seq INTEGER PRIMARY KEY, record TEXT NOT NULL, prev_hash TEXT NOT NULL, "
                     "hash TEXT NOT NULL)")
        conn.execute("DROP TABLE old")
        prevs = [bytes(32)] + [digest for _, _, digest in rows[:-1]]
        conn.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)", [
            (seq, record, prev.hex(), digest.hex()) for (seq, record, digest), prev in zip(rows, prevs, strict=True)])
        conn.execute(f"CREATE INDEX entries_session ON entries ({field_sql('session_id')})")
        conn.execute(f"CREATE INDEX entries_bookkeeping ON entries ({KIND}, {field_sql('action')}) "
                     f"WHERE {BOOKKEEPING}")
        conn.execute(f"CREATE VIEW sessions AS SELECT * FROM entries WHERE {KIND} = 'session'")
        conn.execute(f"CREATE VIEW policy_snapshots AS SELECT * FROM entries WHERE {KIND} = 'policy'")
        conn.execute("PRAGMA user_version = 2")


@pytest.fixture
def session_ledger(tmp_path: Path) -> tuple[Path, str, list[str]]:
    """(directory, session id, every entry's hash) of a ledger with a finished session."""
    with open_test_ledger(tmp_path) as ledger:
        sid = ledger.begin_session(command=["x"], cwd="/", policy_hash="h", observer="none", config="c")
        ledger.append(file_events(5, session_id=sid))
        ledger.end_session(sid, exit_code=0, signal=None)
        hashes = [e.hash for e in ledger.query()]
    return tmp_path, sid, hashes


def assert_upgraded(directory: Path, sid: str, hashes: list[str]) -> None:
    with open_test_ledger(directory) as ledger:
        result = ledger.verify()
        assert result.ok and result.entries_checked == 7 and result.checkpoints_checked == 1
        assert [s.state for s in ledger.sessions()] == ["finished"]
        assert len(list(ledger.query(session=sid, action="FileRead"))) == 3
        entries = list(ledger.query())
        assert [e.hash for e in entries] == hashes
        assert [e.prev_hash for e in entries] == ["00" * 32, *hashes[:-1]]
    with sqlite3.connect(directory / "ledger.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (3,)
        assert [row[1:3] for row in conn.execute("PRAGMA table_xinfo(entries)")] == [
            ("seq", "INTEGER"), ("record", "TEXT"), ("hash", "BLOB")]
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE 'entries%'").fetchone() == (3,)


def test_version_2_ledger_is_upgraded_in_place(session_ledger: tuple[Path, str, list[str]]) -> None:
    """Version 2 stored hashes as hex and every previous hash twice; opening such a file
    rewrites the hashes as bytes, and the chain still verifies against its checkpoint."""
    directory, sid, hashes = session_ledger
    write_as_version_2(directory / "ledger.db")
    assert_upgraded(directory, sid, hashes)


def test_version_2_ledger_with_a_broken_stored_link_is_left_alone(tmp_path: Path) -> None:
    """Only version 2's stored previous hashes show this edit, so the file is not upgraded."""
    with open_test_ledger(tmp_path) as ledger:
        ledger.append(file_events(6))
    write_as_version_2(tmp_path / "ledger.db")
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        conn.execute("UPDATE entries SET prev_hash = ? WHERE seq = 4", ("ab" * 32,))
    with pytest.raises(AegisError, match="entry 4 does not link to entry 3"):
        open_test_ledger(tmp_path)
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
        assert conn.execute("SELECT prev_hash FROM entries WHERE seq = 4").fetchone() == ("ab" * 32,)


@pytest.mark.parametrize("stored", ["ab", "AB" * 32, "zz" * 32])
def test_version_2_hash_that_is_not_lowercase_hex_is_still_reported(tmp_path: Path, stored: str) -> None:
    with open_test_ledger(tmp_path) as ledger:
        ledger.append(file_events(6))
    write_as_version_2(tmp_path / "ledger.db")
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        conn.execute("UPDATE entries SET hash = ? WHERE seq = 6", (stored,))
    with open_test_ledger(tmp_path) as ledger:
        result = ledger.verify()
    assert (result.first_bad_seq, result.reason) == (6, "hash mismatch")


def test_version_1_ledger_is_upgraded_in_place(session_ledger: tuple[Path, str, list[str]]) -> None:
    """Version 1 kept the filter fields as generated columns; opening such a file drops
    them (no stored data changes) and the chain still verifies against its checkpoint."""
    tmp_path, sid, hashes = session_ledger
    write_as_version_2(tmp_path / "ledger.db")
    generated = {"ts_ns": ("INTEGER", 0), "kind": ("TEXT", 1), "session_id": ("TEXT", 2),
                 "action": ("TEXT", 4), "resource": ("TEXT", 5), "decision": ("TEXT", 10)}
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        for statement in ("DROP VIEW sessions", "DROP VIEW policy_snapshots", "DROP INDEX entries_session",
                          "DROP INDEX entries_bookkeeping"):
            conn.execute(statement)
        for name, (kind, index) in generated.items():
            conn.execute(f"ALTER TABLE entries ADD COLUMN {name} {kind} "
                         f"GENERATED ALWAYS AS (json_extract(record, '$[{index}]')) VIRTUAL")
        conn.execute("CREATE INDEX entries_session ON entries (session_id)")
        conn.execute("CREATE INDEX entries_bookkeeping ON entries (kind, action) WHERE kind != 'event'")
        conn.execute("CREATE VIEW sessions AS SELECT * FROM entries WHERE kind = 'session'")
        conn.execute("CREATE VIEW policy_snapshots AS SELECT * FROM entries WHERE kind = 'policy'")
        conn.execute("PRAGMA user_version = 1")
    assert_upgraded(tmp_path, sid, hashes)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Ledger.open(tmp_path / "ledger.db").close()
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(AegisError, match="newer"):
        Ledger.open(tmp_path / "ledger.db")


def test_unrelated_sqlite_database_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(AegisError, match="not an Aegis ledger"):
        Ledger.open(tmp_path / "other.db")


def test_create_config_makes_key_and_ledger(tmp_path: Path) -> None:
    create_config(tmp_path / "home" / "demo", "demo", "workspace-write", tmp_path)
    config = load_config_dir(tmp_path / "home" / "demo")
    key = config.keys_dir / "ledger.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert config.ledger_path.is_file() and key.parent != config.ledger_path.parent
    with open_ledger(config) as ledger:
        ledger.append(file_events(2))
        ledger.checkpoint()
        assert ledger.verify().ok
    assert config.checkpoints_path.read_text().startswith("aegis/demo\n2\n")
    # --force rewrites the config but keeps the key and the ledger.
    create_config(tmp_path / "home" / "demo", "demo", "default-deny", tmp_path, force=True)
    assert (config.keys_dir / "ledger.key").read_bytes() == key.read_bytes()
    with open_ledger(load_config_dir(tmp_path / "home" / "demo")) as ledger:
        assert ledger.size() == 2 and ledger.verify().ok


def test_open_ledger_by_config_name(aegis_home: Path, tmp_path: Path) -> None:
    create_config(aegis_home / "demo", "demo", "workspace-write", tmp_path)
    with open_ledger(load_config("demo")) as ledger:
        ledger.append(file_events(1))
        assert json.loads(json.dumps(next(ledger.query()).to_dict()))["principal"] == "demo"


def test_queries_over_several_batches_link_each_entry_to_the_one_before(tmp_path: Path) -> None:
    """Queries read 1,000 entries a batch: across batch boundaries, after a filter's
    gaps and from where ``last`` starts, every entry's prev_hash is the hash of the
    entry numbered one less, and ``last`` counts only matching entries."""
    with Ledger.open(tmp_path / "l.db") as ledger:
        ledger.append([Event(action="ToolCall", resource=f"r{i}", decision="deny" if i % 7 == 0 else "allow")
                       for i in range(2500)])
        everything = list(ledger.query())
        assert [e.seq for e in everything] == list(range(1, 2501))
        hash_of = {e.seq: e.hash for e in everything}
        hash_of[0] = "00" * 32
        for entries in (everything, list(ledger.query(decision="deny")), list(ledger.query(last=1500)),
                        list(ledger.query(last=200, decision="deny")), list(ledger.query(after_seq=999))):
            assert entries and all(e.prev_hash == hash_of[e.seq - 1] for e in entries)
        denied = [e.seq for e in everything if e.decision == "deny"]
        assert [e.seq for e in ledger.query(last=200, decision="deny")] == denied[-200:]
        assert [e.seq for e in ledger.query(last=1500)] == list(range(1001, 2501))
        assert [e.seq for e in ledger.query(last=5000, decision="deny")] == denied
        assert list(ledger.query(last=0)) == []
        with pytest.raises(AegisError, match="last must be 0 or more, got -1"):
            ledger.query(last=-1)
