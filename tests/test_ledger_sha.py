"""csrc/sha_chain.c: SHA-256 against NIST vectors and hashlib, and batch chaining
against a plain-Python reference, with both the portable and the accelerated code."""

from __future__ import annotations

import hashlib
import os

import pytest

from aegis.ledger.chain import GENESIS, chain_records, check_stored, hash_accelerated, sha256
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


def stored_rows(records: list[bytes], prev: bytes = GENESIS) -> list[bytes]:
    chain, _ = chain_records(prev, records)
    links = prev + chain
    hexed = links.hex().encode()
    return [hexed[i * 64:(i + 2) * 64] + record for i, record in enumerate(records)]


def test_check_stored_accepts_a_good_batch_and_carries_the_chain(implementation: str) -> None:
    records = [os.urandom(i % 300) for i in range(500)]
    rows = stored_rows(records)
    bad, last = check_stored(GENESIS, rows[:200])
    assert bad is None and last == chain_records(GENESIS, records[:200])[0][-32:]
    assert check_stored(last, rows[200:]) == (None, chain_records(GENESIS, records)[0][-32:])
    assert check_stored(GENESIS, []) == (None, GENESIS)


@pytest.mark.parametrize(("offset", "what"), [(3, "previous hash"), (70, "hash"), (130, "record")])
def test_check_stored_finds_the_first_bad_entry(offset: int, what: str) -> None:
    rows = stored_rows([b"record %d" % i + bytes(20) for i in range(50)])
    damaged = bytearray(rows[17])
    damaged[offset] ^= 1
    rows[17] = bytes(damaged)
    bad, last = check_stored(GENESIS, rows)
    assert bad == 17, what
    assert last == bytes.fromhex(rows[16][64:128].decode())  # the chain up to the last good entry


def test_check_stored_refuses_entries_too_short_for_their_hashes() -> None:
    lens = ffi.new("uint32_t[]", [127])
    last = ffi.new("unsigned char[32]")
    assert lib.aegis_sha_chain_check(GENESIS, b"x" * 127, 127, lens, 1, last) == -2
    lens = ffi.new("uint32_t[]", [200])
    assert lib.aegis_sha_chain_check(GENESIS, b"x" * 150, 150, lens, 1, last) == -2
