"""Golden tests for the export formats, with hostile values in every field."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from pathlib import Path

import pytest
from ledger_helpers import file_events, open_test_ledger

from aegis.errors import AegisError
from aegis.export import export_entries
from aegis.export.cef import _version, escape_extension, escape_header
from aegis.ledger import Entry

HOSTILE = Entry(action="File|Read\\", resource="/tmp/a=b|c\\d\nnext line é", decision="deny",
                session_id="s-1",
                principal="=cmd|' /C calc'!A0", pid=41, ppid=1, executable="@SUM(1+1)", source="-2+3",
                policy_ids=["forbid=secrets", "p|2"], errors=["+boom"], reason="line1\r\nline2",
                details={"argv": ["rm", "-rf"], "ü": 1}, ts_ns=1_700_000_000_123_456_789, seq=7, kind="event",
                prev_hash="00" * 32, hash="ab" * 32)
NETWORK = Entry(action="NetConnect", resource="example.org:443", decision="allow", session_id="s-1",
                principal="agent", pid=5, ppid=1, executable="/usr/bin/curl", source="connect",
                ts_ns=1_000_000, seq=8, hash="cd" * 32, prev_hash="ab" * 32)


def render(fmt: str, entries: list[Entry]) -> str:
    out = io.StringIO()
    assert export_entries(entries, fmt, out) == len(entries)
    return out.getvalue()


def test_cef_golden() -> None:
    version = _version()
    assert render("cef", [HOSTILE, NETWORK]).splitlines() == [
        f"CEF:0|Aegis|Aegis Runtime|{version}|File\\|Read\\\\|File\\|Read\\\\ deny|7|"
        "rt=1700000000123 act=deny "
        "outcome=failure fname=a\\=b|c\\\\d\\nnext line é filePath=/tmp/a\\=b|c\\\\d\\nnext line é spid=41 "
        "sproc=@SUM(1+1) suser=\\=cmd|' /C calc'!A0 cs1Label=policyId cs1=forbid\\=secrets,p|2 "
        "cs2Label=entryHash cs2=" + "ab" * 32 + " cs4Label=sessionId cs4=s-1 cn1Label=seq cn1=7 "
        "msg=line1\\nline2",
        f"CEF:0|Aegis|Aegis Runtime|{version}|NetConnect|NetConnect allow|1|rt=1 act=allow outcome=success "
        "spid=5 sproc=/usr/bin/curl suser=agent cs2Label=entryHash cs2=" + "cd" * 32 + " cs3Label=resource "
        "cs3=example.org:443 cs4Label=sessionId cs4=s-1 cn1Label=seq cn1=8",
    ]


def test_cef_escaping_rules() -> None:
    assert escape_header("a|b\\c=d\ne") == "a\\|b\\\\c=d\\ne"
    assert escape_extension("a|b\\c=d\ne\rf") == "a|b\\\\c\\=d\\ne\\rf"


def test_csv_golden_and_formula_neutralising() -> None:
    text = render("csv", [HOSTILE])
    assert text.splitlines()[0] == ("seq,ts_ns,kind,session_id,principal,action,resource,decision,pid,ppid,"
                                    "executable,source,policy_ids,errors,reason,details,prev_hash,hash")
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row["principal"] == "'=cmd|' /C calc'!A0"
    assert row["executable"] == "'@SUM(1+1)"
    assert row["source"] == "'-2+3"
    assert row["errors"] == '["+boom"]'  # JSON text starts with [, not a formula
    assert row["resource"] == "/tmp/a=b|c\\d\nnext line é"
    assert row["reason"] == "line1\r\nline2"
    assert row["details"] == '{"argv":["rm","-rf"],"ü":1}'
    assert row["pid"] == "41" and row["seq"] == "7"
    assert "\r\n/tmp" not in text and text.count('"/tmp/a=b|c\\d\nnext line é"') == 1


def test_json_and_jsonl_carry_every_field() -> None:
    as_json = json.loads(render("json", [HOSTILE, NETWORK]))
    lines = [json.loads(line) for line in render("jsonl", [HOSTILE, NETWORK]).splitlines()]
    assert as_json == lines
    assert as_json[0] == HOSTILE.to_dict()
    assert set(as_json[0]) == {"seq", "ts_ns", "kind", "action", "resource", "decision", "session_id",
                               "principal", "pid", "ppid", "executable", "source", "policy_ids", "errors",
                               "reason", "details", "prev_hash", "hash"}
    assert json.loads(render("json", [])) == []


def test_unknown_format_is_an_error() -> None:
    with pytest.raises(AegisError, match="unknown export format"):
        render("xml", [])


class _CountingSink(io.TextIOBase):
    written = 0

    def write(self, text: str) -> int:
        self.written += len(text)
        return len(text)


def _peak_export(ledger, fmt: str, until_ns: int | None) -> tuple[int, int]:
    sink = _CountingSink()
    tracemalloc.start()
    export_entries(ledger.query(until_ns=until_ns), fmt, sink)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return sink.written, peak


def test_export_memory_does_not_grow_with_the_ledger(tmp_path: Path) -> None:
    with open_test_ledger(tmp_path) as ledger:
        ledger.append(file_events(12_000))
        first_2000 = file_events(1, start=2000)[0].ts_ns
        for fmt in ("jsonl", "csv", "cef"):
            small_written, small_peak = _peak_export(ledger, fmt, first_2000)
            all_written, all_peak = _peak_export(ledger, fmt, None)
            assert all_written > 5 * small_written
            assert all_peak < 1.5 * small_peak, (fmt, small_peak, all_peak)
