"""Ring records to ledger records: the C encoder (csrc/record_lines.c) against the
Python way it replaced on the session's hot path (SupervisorRecords.event for
each record, then the ledger's canonical encoder), on the same 1,024 records of
an open-heavy session (FileRead of project files, one exec in between).

    PYTHONPATH=. .venv/bin/pytest benches/bench_record_lines.py --benchmark-only

Report the ratio of the medians, not the absolute times.
"""

from __future__ import annotations

import pytest

from aegis.ledger.canonical import encode_lines
from aegis.ledger.model import KIND_EVENT
from aegis.native import ffi, lib
from aegis.observer.lines import ORIGIN_SECCOMP, EncodedBatch, LineEncoder
from aegis.observer.records import BATCH, RECORD_SIZE, RecordBatch
from aegis.observer.seccomp import SupervisorRecords

SESSION, PRINCIPAL, POLICIES = "5b0c8f7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f", "bench", ["read-project", "write-project"]


@pytest.fixture(scope="module")
def records():
    array = ffi.new("struct aegis_record[]", BATCH)
    for i, rec in enumerate(array):
        spawn = i % 256 == 0
        rec.ts_ns, rec.pid, rec.tid, rec.ppid = 1_700_000_000_000_000_000 + i * 5000, 4242, 4242, 4241
        rec.action = lib.AEGIS_ACT_PROCESS_SPAWN if spawn else lib.AEGIS_ACT_FILE_READ
        rec.decision, rec.policy_index, rec.syscall_nr = lib.AEGIS_DECISION_ALLOW, 0, 59 if spawn else 257
        rec.arg = 0 if spawn else 0o400000
        exe, path = b"/usr/bin/grep", f"/home/dev/project/src/module_{i % 97}/file_{i}.py".encode()
        ffi.memmove(rec.exe, exe, len(exe))
        ffi.memmove(rec.path, path, len(path))
        rec.path_len = len(path)
        if spawn:
            argv = b"grep\0-r\0needle\0."
            ffi.memmove(rec.extra, argv, len(argv))
            rec.extra_len = len(argv)
    return array


def test_c_encoder(benchmark, records) -> None:
    encoder = LineEncoder(SESSION, PRINCIPAL, POLICIES)
    words = SupervisorRecords(SESSION, PRINCIPAL, POLICIES)

    def encode() -> EncodedBatch:
        into = EncodedBatch()
        encoder.encode(into, RecordBatch(records, BATCH, ORIGIN_SECCOMP, words.event))
        return into

    assert benchmark(encode).count == BATCH


def test_python_way(benchmark, records) -> None:
    words = SupervisorRecords(SESSION, PRINCIPAL, POLICIES)

    def encode() -> bytes:
        data = ffi.buffer(records, BATCH * RECORD_SIZE)[:]
        return encode_lines([words.event(data, i * RECORD_SIZE) for i in range(BATCH)], KIND_EVENT, PRINCIPAL, 0)

    assert benchmark(encode).count(b"\n") == BATCH - 1
