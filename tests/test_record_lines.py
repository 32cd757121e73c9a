"""csrc/record_lines.c against the Python way: ring records -> ledger records.

The C encoder must write, byte for byte, what the observers' Python converters
(SupervisorRecords, FanotifyRecords) and the ledger's canonical encoder make of
the same records: the hash chain covers these bytes, and `aegis audit verify`
re-reads them with the Python decoder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import aegis_import_root

from aegis.ledger.canonical import encode_lines
from aegis.ledger.model import KIND_EVENT
from aegis.native import ffi, lib
from aegis.observer.fanotify import FanotifyRecords
from aegis.observer.lines import (
    ACTION_NAMES,
    ORIGIN_FANOTIFY,
    ORIGIN_SECCOMP,
    EncodedBatch,
    LineEncoder,
    syscall_names,
)
from aegis.observer.records import RECORD_SIZE, RecordBatch
from aegis.observer.seccomp import SupervisorRecords

SESSION = "3f1e0c1a-0000-4000-8000-00000000abcd"
PRINCIPAL = "agent-\u00e9\"x"
POLICY_IDS = ["allow-project", "forbid-\"secrets\"", "policy\\2"]
NOW = 1_700_000_000_000_000_000

# Bytes that stress the string writer: quotes, backslashes, control characters,
# DEL, multi-byte UTF-8 at the edges of table 3-7, and every kind of ill-formed UTF-8.
TRICKY = [b'"', b"\\", b"\n", b"\r", b"\t", b"\b", b"\f", b"\x00", b"\x01", b"\x1f", b"\x7f", b"/", b"a",
          "é".encode(), "€".encode(), "😀".encode(), "\ud7ff".encode(), "\ue000".encode(),
          "\U0010ffff".encode(), b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xc2", b"\xe0\x80\x80",
          b"\xe0\xa0", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xef\xbf", b"\xf0\x80\x80\x80", b"\xf0\x90\x80",
          b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xff", b"\xfe"]


def tricky_bytes(max_size: int, *, nul: bool = False) -> st.SearchStrategy[bytes]:
    alphabet = TRICKY if nul else [t for t in TRICKY if b"\x00" not in t]
    return st.lists(st.one_of(st.sampled_from(alphabet), st.binary(max_size=4)), max_size=12).map(
        lambda parts: b"".join(parts)).filter(lambda b: len(b) <= max_size and (nul or b"\x00" not in b))


@st.composite
def records(draw: st.DrawFn, origin: int) -> dict:
    actions = sorted(ACTION_NAMES) if origin == ORIGIN_SECCOMP else [
        a for a in ACTION_NAMES if a != lib.AEGIS_ACT_SYSCALL_REFUSED]
    known = sorted(syscall_names())
    return {
        "ts_ns": draw(st.one_of(st.just(0), st.integers(1, 2**62))),
        "pid": draw(st.integers(1, 2**22)), "tid": draw(st.integers(0, 2**22)),
        "ppid": draw(st.integers(0, 2**22)),
        "action": draw(st.sampled_from(actions)),
        "decision": draw(st.sampled_from([lib.AEGIS_DECISION_ALLOW, lib.AEGIS_DECISION_DENY])),
        "policy_index": draw(st.sampled_from([0, 1, 2, 7, lib.AEGIS_POLICY_NONE, lib.AEGIS_POLICY_GUARD,
                                              lib.AEGIS_POLICY_NETLIST])),
        "syscall_nr": draw(st.one_of(st.sampled_from(known), st.integers(-1, 5000))),
        "error": draw(st.sampled_from([0, 0, 1, 13, 95])),
        "arg": draw(st.one_of(st.just(0), st.integers(-2**63, 2**63 - 1), st.integers(0, 0x40001fff))),
        "truncated": draw(st.integers(0, 3)),
        "exe": draw(tricky_bytes(lib.AEGIS_REC_EXE_MAX - 1)),
        "path": draw(tricky_bytes(lib.AEGIS_REC_PATH_MAX - 1)),
        "argv": draw(st.lists(tricky_bytes(40), max_size=4)),
    }


def pack(specs: list[dict]):
    array = ffi.new("struct aegis_record[]", max(len(specs), 1))
    for rec, spec in zip(array, specs, strict=False):
        for name in ("ts_ns", "pid", "tid", "ppid", "action", "decision", "policy_index", "syscall_nr",
                     "error", "arg", "truncated"):
            setattr(rec, name, spec[name])
        ffi.memmove(rec.exe, spec["exe"], len(spec["exe"]))
        ffi.memmove(rec.path, spec["path"], len(spec["path"]))
        rec.path_len = len(spec["path"])
        extra = b"\0".join(spec["argv"])[:lib.AEGIS_REC_EXTRA_MAX - 1]
        ffi.memmove(rec.extra, extra, len(extra))
        rec.extra_len = len(extra)
    return array


def python_way(specs: list[dict], array, convert, skip_exit_of: int = 0) -> tuple[bytes, list]:
    data = ffi.buffer(array, len(specs) * RECORD_SIZE)[:]
    events = [convert(data, i * RECORD_SIZE) for i in range(len(specs))]
    events = [e for e in events if not (skip_exit_of and e.action == "ProcessExit" and e.pid == skip_exit_of)]
    notable = [e for e in events if e.decision == "deny" or e.action in ("FileWrite", "FileDelete", "DirCreate")]
    return (encode_lines(events, KIND_EVENT, PRINCIPAL, NOW) if events else b""), notable


def c_way(specs: list[dict], array, origin: int, convert, second=None, skip_exit_of: int = 0) -> EncodedBatch:
    into = EncodedBatch()
    LineEncoder(SESSION, PRINCIPAL, POLICY_IDS).encode(
        into, RecordBatch(array, len(specs), origin, convert), second, skip_exit_of=skip_exit_of, now_ns=NOW)
    return into


def converters() -> dict[int, object]:
    return {ORIGIN_SECCOMP: SupervisorRecords(SESSION, PRINCIPAL, POLICY_IDS).event,
            ORIGIN_FANOTIFY: FanotifyRecords(SESSION, PRINCIPAL).event}


@pytest.mark.parametrize("origin", [ORIGIN_SECCOMP, ORIGIN_FANOTIFY])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_c_writes_the_bytes_the_python_way_writes(origin: int, data: st.DataObject) -> None:
    specs = data.draw(st.lists(records(origin), min_size=1, max_size=6))
    skip = data.draw(st.sampled_from([0, specs[0]["pid"]]))
    for spec in specs:  # the encoders see time-ordered records, as a ring holds them
        spec["ts_ns"] = spec["ts_ns"] or 0
    array = pack(specs)
    convert = converters()[origin]
    expected, notable = python_way(specs, array, convert, skip)
    got = c_way(specs, array, origin, convert, skip_exit_of=skip)
    assert b"\n".join(s for s, _ in got.segments) == expected
    assert got.count == (expected.count(b"\n") + 1 if expected else 0)
    assert got.taken == len(specs)
    assert got.notable == notable


def test_each_line_is_valid_json_even_for_names_that_are_not_utf8() -> None:
    spec = {"ts_ns": 5, "pid": 9, "tid": 9, "ppid": 1, "action": lib.AEGIS_ACT_FILE_READ,
            "decision": lib.AEGIS_DECISION_ALLOW, "policy_index": 0, "syscall_nr": 257, "error": 0, "arg": 0,
            "truncated": 0, "exe": b"/bin/\xffcat", "path": b'/tmp/a"b\\c\n\xe2\x82', "argv": []}
    got = c_way([spec], pack([spec]), ORIGIN_SECCOMP, converters()[ORIGIN_SECCOMP])
    fields = json.loads(got.segments[0][0])
    assert fields[5] == '/tmp/a"b\\c\n\\xe2\\x82'
    assert fields[8] == "/bin/\\xffcat"
    assert fields[11] == [POLICY_IDS[0]]


def test_two_rings_are_merged_by_time() -> None:
    def spec(ts: int, path: bytes) -> dict:
        return {"ts_ns": ts, "pid": 3, "tid": 3, "ppid": 1, "action": lib.AEGIS_ACT_FILE_READ,
                "decision": lib.AEGIS_DECISION_ALLOW, "policy_index": 0, "syscall_nr": 257, "error": 0,
                "arg": 0x20, "truncated": 0, "exe": b"/bin/x", "path": path, "argv": []}

    seccomp = [spec(10, b"/s1"), spec(30, b"/s2"), spec(50, b"/s3")]
    fanotify = [spec(20, b"/f1"), spec(30, b"/f2"), spec(60, b"/f3")]
    conv = converters()
    got = c_way(seccomp, pack(seccomp), ORIGIN_SECCOMP, conv[ORIGIN_SECCOMP],
                RecordBatch(pack(fanotify), 3, ORIGIN_FANOTIFY, conv[ORIGIN_FANOTIFY]))
    lines = [json.loads(line) for line in got.segments[0][0].split(b"\n")]
    assert [(r[0], r[5], r[9]) for r in lines] == [
        (10, "/s1", "openat"), (20, "/f1", "fanotify"), (30, "/s2", "openat"), (30, "/f2", "fanotify"),
        (50, "/s3", "openat"), (60, "/f3", "fanotify")]
    assert lines[1][14] == {"fanotify": ["open"]}
    assert got.taken == 6


def test_an_unknown_action_code_is_refused_and_nothing_is_written() -> None:
    spec = {"ts_ns": 1, "pid": 1, "tid": 1, "ppid": 0, "action": 99, "decision": 1, "policy_index": 0,
            "syscall_nr": 0, "error": 0, "arg": 0, "truncated": 0, "exe": b"", "path": b"/x", "argv": []}
    with pytest.raises(ValueError, match="unknown action code"):
        c_way([spec], pack([spec]), ORIGIN_SECCOMP, converters()[ORIGIN_SECCOMP])


def test_a_record_as_long_as_a_record_can_be_fits() -> None:
    # every byte of every string at its longest escape (a control character: 6 bytes)
    spec = {"ts_ns": 1, "pid": 1, "tid": 1, "ppid": 0, "action": lib.AEGIS_ACT_PROCESS_SPAWN, "decision": 1,
            "policy_index": 2, "syscall_nr": 59, "error": 0, "arg": 0, "truncated": 3,
            "exe": b"\x01" * (lib.AEGIS_REC_EXE_MAX - 1), "path": b"\x01" * (lib.AEGIS_REC_PATH_MAX - 1),
            "argv": [b"\x01" * 100] * 5}
    specs = [spec] * 300
    array = pack(specs)
    convert = converters()[ORIGIN_SECCOMP]
    assert b"\n".join(s for s, _ in c_way(specs, array, ORIGIN_SECCOMP, convert).segments) == \
        python_way(specs, array, convert)[0]


def test_a_wrapped_session_stores_what_the_python_way_would_have(tmp_path: Path) -> None:
    """End to end: file names with a newline, a quote and invalid UTF-8 go through a
    real session into the ledger, which verifies, and read back as written."""
    project = tmp_path / "proj"
    project.mkdir()
    names = [b"plain.txt", b'quo"te', b"new\nline", b"bad\xffname", "caf\u00e9".encode()]
    for name in names:
        (project / os.fsdecode(name)).write_bytes(b"x")
    env = {**os.environ, "PYTHONPATH": aegis_import_root()}
    run = subprocess.run([sys.executable, "-m", "aegis", "wrap", "--no-snapshot", "--name", "lines",
                          "--dir", str(project), "--", "cat", *[os.fsdecode(project / os.fsdecode(n)) for n in names]],
                         capture_output=True, env=env, cwd=project, check=False)
    assert run.returncode == 0, run.stderr
    verify = subprocess.run([sys.executable, "-m", "aegis", "audit", "verify", "lines"], capture_output=True,
                            env=env, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    query = subprocess.run([sys.executable, "-m", "aegis", "audit", "query", "lines", "--action", "FileRead",
                            "--json"], capture_output=True, env=env, check=True)
    read = {entry["resource"] for entry in json.loads(query.stdout)}
    project_text = str(project)
    assert {f"{project_text}/plain.txt", f'{project_text}/quo"te', f"{project_text}/new\nline",
            f"{project_text}/bad\\xffname", f"{project_text}/caf\u00e9"} <= read
