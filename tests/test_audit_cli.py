"""`aegis audit ...` as a user runs it: a real CLI process on a real config."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from ledger_helpers import file_events
from support import aegis_command, assert_one_line_error

from aegis.cli.output import display_width
from aegis.config import load_config
from aegis.ledger import Event, open_ledger


@pytest.fixture
def demo(run_aegis, tmp_path: Path) -> str:
    """Config "demo" with a finished session of 10 events and two policy versions."""
    run_aegis("init", "demo", "--policy", "workspace-write", "--dir", str(tmp_path), check=True)
    with open_ledger(load_config("demo")) as ledger:
        ledger.record_policy_snapshot({"default.cedar": "permit(principal, action, resource);\n"})
        sid = ledger.begin_session(command=["python3", "agent.py"], cwd=str(tmp_path), policy_hash="h",
                                   observer="seccomp", config="demo")
        ledger.append(file_events(9, session_id=sid))
        long_path = "/données/" + "長い名前" * 30 + "/file.txt"
        ledger.append([Event("FileRead", long_path, "allow", session_id=sid)])
        ledger.end_session(sid, exit_code=0, signal=None, counts={"allow": 8, "deny": 2})
        ledger.record_policy_snapshot({"default.cedar": "forbid(principal, action, resource);\n"})
    return sid


def test_query_table_survives_long_multibyte_paths(run_aegis, demo: str) -> None:
    proc = run_aegis("audit", "query", "demo", check=True)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("SEQ") and len(lines) == 1 + 14
    assert max(display_width(line) for line in lines) <= 8 + 20 + 8 + 14 + 8 + 56 + 24 + 12
    assert any("長い名前" in line and "…" in line for line in lines)


def test_query_filters_and_json(run_aegis, demo: str) -> None:
    denied = json.loads(run_aegis("audit", "query", "demo", "--decision", "deny", "--json",
                                  check=True).stdout)
    assert [e["resource"] for e in denied] == ["/work/project/file4.txt"]
    last = json.loads(run_aegis("audit", "query", "demo", "--last", "2", "--json", check=True).stdout)
    assert [e["action"] for e in last] == ["SessionEnd", "PolicySnapshot"]
    by_session = json.loads(run_aegis("audit", "query", "demo", "--session", demo, "--action", "FileWrite",
                                      "--json", check=True).stdout)
    assert [e["resource"] for e in by_session] == [f"/work/project/file{i}.txt" for i in (0, 3, 6)]
    globbed = json.loads(run_aegis("audit", "query", "demo", "--path-glob", "*file[12].txt", "--json",
                                   check=True).stdout)
    assert len(globbed) == 2
    since = json.loads(run_aegis("audit", "query", "demo", "--since", "@1700000005", "--until",
                                 "2023-11-14T22:13:28Z", "--json", check=True).stdout)
    assert [e["resource"] for e in since] == ["/work/project/file5.txt", "/work/project/file6.txt",
                                              "/work/project/file7.txt"]


def test_verify_ok_then_tampered(run_aegis, demo: str, aegis_home: Path) -> None:
    proc = run_aegis("audit", "verify", "demo", check=True)
    assert "entries checked: 14" in proc.stdout and "checkpoints checked: 1" in proc.stdout
    with sqlite3.connect(aegis_home / "demo" / "ledger.db") as conn:
        conn.execute("UPDATE entries SET record = replace(record, 'file4', 'file5') WHERE seq = 7")
    proc = run_aegis("audit", "verify", "demo")
    assert proc.returncode == 1
    assert "FAILED at entry 7: hash mismatch" in proc.stdout
    result = json.loads(run_aegis("audit", "verify", "demo", "--json").stdout)
    assert (result["ok"], result["first_bad_seq"], result["reason"]) == (False, 7, "hash mismatch")


def test_sessions_and_session(run_aegis, demo: str) -> None:
    table = run_aegis("audit", "sessions", "demo", check=True).stdout
    assert demo in table and "finished" in table and "python3 agent.py" in table
    (session,) = json.loads(run_aegis("audit", "sessions", "demo", "--json", check=True).stdout)
    assert session["exit_code"] == 0 and session["counts"] == {"allow": 8, "deny": 2}
    detail = run_aegis("audit", "session", "demo", "--id", demo, check=True).stdout
    assert "command:      python3 agent.py" in detail and "/work/project/file8.txt" in detail
    data = json.loads(run_aegis("audit", "session", "demo", "--id", demo, "--json", check=True).stdout)
    assert len(data["entries"]) == 12
    assert_one_line_error(run_aegis("audit", "session", "demo", "--id", "no-such-session"))


def test_session_changes(run_aegis, demo: str) -> None:
    with open_ledger(load_config("demo")) as ledger:
        ledger.append([
            Event("FileChange", "/work/project/new.txt", "info", session_id=demo, source="snapshot",
                  details={"change": "created"}),
            Event("FileChange", "/work/project/b.txt", "info", session_id=demo, source="snapshot",
                  details={"change": "renamed", "from": "/work/project/a.txt", "unobserved": True}),
            Event("FileChange", "/work/project/other.txt", "info", session_id="another", source="snapshot",
                  details={"change": "deleted"})])
    table = run_aegis("audit", "session", "demo", "--id", demo, "--changes", check=True).stdout.splitlines()
    assert table[0].split() == ["CHANGE", "PATH", "FROM", "OBSERVED"] and len(table) == 3
    assert table[1].split() == ["created", "/work/project/new.txt", "yes"]
    assert table[2].split() == ["renamed", "/work/project/b.txt", "/work/project/a.txt", "no"]
    rows = json.loads(run_aegis("audit", "session", "demo", "--id", demo, "--changes", "--json",
                                check=True).stdout)
    assert [(r["change"], r["path"], r["unobserved"]) for r in rows] == [
        ("created", "/work/project/new.txt", False), ("renamed", "/work/project/b.txt", True)]


def test_policy_history_shows_a_diff(run_aegis, demo: str) -> None:
    out = run_aegis("audit", "policy-history", "demo", check=True).stdout
    assert out.count("version ") == 2
    assert "-permit(principal, action, resource);" in out and "+forbid(principal, action, resource);" in out
    versions = json.loads(run_aegis("audit", "policy-history", "demo", "--json", check=True).stdout)
    assert [sorted(v["files"]) for v in versions] == [["default.cedar"]] * 2


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "cef"])
def test_export_every_entry(run_aegis, demo: str, fmt: str) -> None:
    out = run_aegis("audit", "export", "demo", "--format", fmt, check=True).stdout
    if fmt == "json":
        assert [e["seq"] for e in json.loads(out)] == list(range(1, 15))
    elif fmt == "jsonl":
        assert [json.loads(line)["seq"] for line in out.splitlines()] == list(range(1, 15))
    elif fmt == "csv":
        assert [int(r["seq"]) for r in csv.DictReader(io.StringIO(out))] == list(range(1, 15))
    else:
        lines = out.splitlines()
        assert len(lines) == 14 and all(line.startswith("CEF:0|Aegis|") for line in lines)


def test_export_since(run_aegis, demo: str) -> None:
    out = run_aegis("audit", "export", "demo", "--format", "jsonl", "--since", "@1700000007",
                    check=True).stdout
    # the policy and session entries written "now", file7, file8 (fixed 2023 times), the rest "now"
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [1, 2, 10, 11, 12, 13, 14]


def test_export_follow_streams_new_entries(demo: str) -> None:
    proc = subprocess.Popen([*aegis_command(), "audit", "export", "demo", "--format", "jsonl", "--follow"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert proc.stdout is not None
        first = [json.loads(proc.stdout.readline())["seq"] for _ in range(14)]
        assert first == list(range(1, 15))
        with open_ledger(load_config("demo")) as ledger:
            ledger.append([Event("FileRead", "/late/arrival", "allow")])
        assert json.loads(proc.stdout.readline())["resource"] == "/late/arrival"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_checkpoint_command(run_aegis, demo: str, aegis_home: Path) -> None:
    out = run_aegis("audit", "checkpoint", "demo", check=True).stdout
    assert out.startswith("aegis/demo\n14\n") and "\n\n\u2014 aegis/demo " in out
    assert (aegis_home / "demo" / "checkpoints.log").read_text().count("aegis/demo\n") == 2
    assert "checkpoints checked: 2" in run_aegis("audit", "verify", "demo", check=True).stdout


def test_errors_are_one_line(run_aegis, demo: str, aegis_home: Path) -> None:
    assert_one_line_error(run_aegis("audit", "verify", "nope"))
    assert_one_line_error(run_aegis("audit", "query", "demo", "--since", "yesterday-ish"))
    assert_one_line_error(run_aegis("audit", "export", "demo", "--format", "xml"))
    for suffix in ("-wal", "-shm"):
        (aegis_home / "demo" / f"ledger.db{suffix}").unlink(missing_ok=True)
    (aegis_home / "demo" / "ledger.db").write_bytes(b"garbage" * 1000)
    proc = run_aegis("audit", "verify", "demo")
    assert_one_line_error(proc)
    assert "ledger" in proc.stderr


def test_help_explains(run_aegis) -> None:
    out = run_aegis("audit", "--help", check=True).stdout
    for command in ("query", "verify", "sessions", "session", "policy-history", "export", "checkpoint"):
        assert command in out
