"""csrc/sha_chain.c: SHA-256 against NIST vectors and hashlib, and batch chaining
against a plain-Python reference, with both the portable and the accelerated code."""

from __future__ import annotations

import hashlib
import os

import pytest

from aegis.ledger.chain import (
    GENESIS,
    chain_lines,
    chain_records,
    check_entries,
    hash_accelerated,
    sha256,
)
from aegis.native import ffi, lib

# FIPS 180-2 appendix B / NIST CSRC example values.
NIST = [
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    (b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
     b"mnopqrstnopqrstu", "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
    (b"a" * 1_000_000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
]


@pytest.fixture(params=["portable", "accelerated"])
def implementation(request: pytest.FixtureRequest):
    lib.aegis_sha256_force_portable(1 if request.param == "portable" else 0)
    if request.param == "accelerated" and not hash_accelerated():
        pytest.skip("this CPU has no SHA extensions")
    yield request.param
    lib.aegis_sha256_force_portable(0)


def reference_chain(prev: bytes, records: list[bytes]) -> bytes:
    out = b""
    for record in records:
        prev = hashlib.sha256(prev + hashlib.sha256(b"\x00" + record).digest()).digest()
        out += prev
    return out


@pytest.mark.parametrize(("message", "digest"), NIST, ids=[f"len{len(m)}" for m, _ in NIST])
def test_nist_vectors(implementation: str, message: bytes, digest: str) -> None:
    assert sha256(message).hex() == digest


def test_every_length_around_block_boundaries(implementation: str) -> None:
    for n in list(range(0, 260)) + [511, 512, 513, 4095, 4096, 65537]:
        data = os.urandom(n)
        assert sha256(data) == hashlib.sha256(data).digest(), n


def test_chain_matches_reference(implementation: str) -> None:
    records = [os.urandom(n) for n in (0, 1, 54, 55, 56, 63, 64, 119, 120, 1000, 5)]
    prev = os.urandom(32)
    chain, leaves = chain_records(prev, records, with_leaves=True)
    assert chain == reference_chain(prev, records)
    assert leaves == b"".join(hashlib.sha256(b"\x00" + r).digest() for r in records)


def test_chain_in_batches_equals_one_batch() -> None:
    records = [os.urandom(i % 300) for i in range(1000)]
    whole, _ = chain_records(GENESIS, records)
    first, _ = chain_records(GENESIS, records[:377])
    rest, _ = chain_records(first[-32:], records[377:])
    assert first + rest == whole


def test_portable_and_accelerated_agree_on_large_batch() -> None:
    records = [os.urandom(i % 700) for i in range(5000)]
    lib.aegis_sha256_force_portable(1)
    try:
        portable, _ = chain_records(GENESIS, records)
    finally:
        lib.aegis_sha256_force_portable(0)
    assert chain_records(GENESIS, records)[0] == portable


def test_lengths_beyond_the_buffer_are_refused_without_writing() -> None:
    out = ffi.new("unsigned char[64]", b"\xaa" * 64)
    lens = ffi.new("uint32_t[]", [3, 10])
    assert lib.aegis_sha_chain(GENESIS, b"abcdefgh", 8, lens, 2, out, ffi.NULL) == -1
    assert bytes(out) == b"\xaa" * 64


def test_previous_hash_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        chain_records(b"short", [b"x"])


def stored_entries(records: list[bytes], prev: bytes = GENESIS) -> list[bytes]:
    """Entries as the ledger stores them now: the hash's 32 bytes, then the record."""
    chain, _ = chain_records(prev, records)
    return [chain[i * 32:(i + 1) * 32] + record for i, record in enumerate(records)]


def test_check_accepts_a_good_batch_and_carries_the_chain(implementation: str) -> None:
    records = [os.urandom(i % 300) for i in range(500)]
    rows = stored_entries(records)
    bad, last = check_entries(GENESIS, rows[:200])
    assert bad is None and last == chain_records(GENESIS, records[:200])[0][-32:]
    assert check_entries(last, rows[200:]) == (None, chain_records(GENESIS, records)[0][-32:])
    assert check_entries(GENESIS, []) == (None, GENESIS)


@pytest.mark.parametrize(("offset", "what"), [(0, "hash"), (31, "hash"), (32, "record"), (50, "record")])
def test_check_entries_finds_the_first_bad_entry(offset: int, what: str) -> None:
    rows = stored_entries([b"record %d" % i + bytes(20) for i in range(50)])
    damaged = bytearray(rows[17])
    damaged[offset] ^= 1
    rows[17] = bytes(damaged)
    bad, last = check_entries(GENESIS, rows)
    assert bad == 17, what
    assert last == rows[16][:32]  # the chain up to the last good entry


def test_check_refuses_entries_too_short_for_their_hash() -> None:
    check, head = lib.aegis_sha_chain_check, 32
    lens = ffi.new("uint32_t[]", [head - 1])
    last = ffi.new("unsigned char[32]", b"\xaa" * 32)
    assert check(GENESIS, b"x" * (head - 1), head - 1, lens, 1, last) == -2
    lens = ffi.new("uint32_t[]", [200])
    assert check(GENESIS, b"x" * 150, 150, lens, 1, last) == -2
    assert bytes(last) == b"\xaa" * 32  # nothing written


def test_a_short_entry_is_reported_after_the_good_ones_before_it() -> None:
    rows = stored_entries([b"a", b"b", b"c"])
    assert check_entries(GENESIS, [rows[0], rows[1][:20], rows[2]]) == (1, rows[0][:32])


def line_records(count: int) -> list[bytes]:
    """Random records without a newline byte, of lengths around the block boundaries."""
    return [os.urandom(i % 300).replace(b"\n", b"?") for i in range(count)]


def spans_of(records: list[bytes]) -> bytes:
    """Where each record starts in the newline-joined batch (from 1) and its length."""
    spans, start = [], 1
    for record in records:
        spans.append(b"%010d%010d" % (start, len(record)))
        start += len(record) + 1
    return b"".join(spans)


def test_chain_lines_matches_the_reference_and_writes_the_spans(implementation: str) -> None:
    records = line_records(400) + [b"", b"x" * 1000]
    prev = os.urandom(32)
    lines = b"\n".join(records)
    chain, spans = chain_lines(prev, lines, len(records))
    assert chain == reference_chain(prev, records)
    assert spans == spans_of(records)
    for i, record in enumerate(records):  # as SQL's substr reads them
        start, length = int(spans[20 * i:20 * i + 10]), int(spans[20 * i + 10:20 * i + 20])
        assert lines[start - 1:start - 1 + length] == record


def test_chain_lines_of_no_records_and_of_one_empty_record() -> None:
    assert chain_lines(GENESIS, b"", 0) == (b"", b"")
    assert chain_lines(GENESIS, b"", 1) == (reference_chain(GENESIS, [b""]), b"0000000001" + b"0" * 10)
    assert chain_lines(GENESIS, b"\n", 2)[0] == reference_chain(GENESIS, [b"", b""])


@pytest.mark.parametrize(("lines", "n"), [(b"a\nb", 1), (b"a\nb", 3), (b"ab", 0), (b"", 2), (b"a\n", 1)])
def test_chain_lines_refuses_a_count_that_does_not_match_without_writing(lines: bytes, n: int) -> None:
    chain = ffi.new("unsigned char[]", 32 * max(n, 1))
    spans = ffi.new("char[]", 20 * max(n, 1))
    ffi.memmove(chain, b"\xaa" * len(chain), len(chain))
    assert lib.aegis_sha_chain_lines(GENESIS, lines, len(lines), n, chain, spans) == -1
    assert bytes(chain) == b"\xaa" * len(chain) and ffi.buffer(spans)[:] == bytes(len(spans))
    with pytest.raises(ValueError, match="newline-separated"):
        chain_lines(GENESIS, lines, n)


def test_chain_lines_in_chunks_equals_chain_records() -> None:
    records = line_records(1000)
    first, _ = chain_lines(GENESIS, b"\n".join(records[:377]), 377)
    rest, _ = chain_lines(first[-32:], b"\n".join(records[377:]), 623)
    assert first + rest == chain_records(GENESIS, records)[0]
