"""Python face of csrc/sha_chain.c: the ledger's leaf and chain hashes, by batch."""

from __future__ import annotations

from collections.abc import Sequence

from aegis.native import ffi, lib

HASH_LEN = 32
GENESIS = bytes(HASH_LEN)  # the "previous hash" of the first entry


def sha256(data: bytes) -> bytes:
    out = ffi.new("unsigned char[32]")
    lib.aegis_sha256(data, len(data), out)
    return bytes(out)


def chain_records(prev: bytes, records: Sequence[bytes], *, with_leaves: bool = False) -> tuple[bytes, bytes]:
    """Chain hashes (and, if asked, leaf hashes) of ``records`` after ``prev``.

    Returns ``(chain, leaves)``: 32 bytes per record, concatenated; ``leaves`` is
    empty unless ``with_leaves``. One C call for the whole batch.
    """
    if len(prev) != HASH_LEN:
        raise ValueError("previous hash must be 32 bytes")
    n = len(records)
    if n == 0:
        return b"", b""
    blob = b"".join(records)
    lens = ffi.new("uint32_t[]", list(map(len, records)))
    chain = ffi.new("unsigned char[]", n * HASH_LEN)
    leaves = ffi.new("unsigned char[]", n * HASH_LEN) if with_leaves else ffi.NULL
    if lib.aegis_sha_chain(prev, blob, len(blob), lens, n, chain, leaves) != 0:
        raise ValueError("record lengths exceed the batch")
    return ffi.buffer(chain)[:], (ffi.buffer(leaves)[:] if with_leaves else b"")


def chain_lines(prev: bytes, lines: bytes, n: int) -> tuple[bytes, bytes]:
    """Chain the ``n`` newline-separated records of ``lines`` after ``prev``.

    Returns ``(chain, spans)``: 32 bytes of chain hash per record, concatenated,
    and for each record twenty decimal digits, where it starts in ``lines``
    (counting from 1) and its length. One C call for the whole batch.
    """
    if len(prev) != HASH_LEN:
        raise ValueError("previous hash must be 32 bytes")
    chain = ffi.new("unsigned char[]", n * HASH_LEN)
    spans = ffi.new("char[]", 20 * n)
    if lib.aegis_sha_chain_lines(prev, lines, len(lines), n, chain, spans) != 0:
        raise ValueError(f"the batch does not hold exactly {n} newline-separated records")
    return ffi.buffer(chain)[:], ffi.buffer(spans)[:]


def hash_accelerated() -> bool:
    """True when the CPU's SHA instructions are in use."""
    return bool(lib.aegis_sha256_accelerated())


def check_entries(prev: bytes, stored: Sequence[bytes]) -> tuple[int | None, bytes]:
    """Check stored entries, each ``hash || record`` (the hash as its 32 bytes, as the
    ledger stores them), against the chain after ``prev``: (index of the first bad
    entry or None, chain hash of the last good entry). One C call for the whole batch."""
    last = ffi.new("unsigned char[32]")
    if not stored:
        return None, prev
    blob = b"".join(stored)
    lens = ffi.new("uint32_t[]", list(map(len, stored)))
    bad = lib.aegis_sha_chain_check(prev, blob, len(blob), lens, len(stored), last)
    if bad == -2:
        # An entry too short to hold its hash: check the ones before it.
        short = next(i for i, entry in enumerate(stored) if len(entry) < HASH_LEN)
        bad_before, last_good = check_entries(prev, stored[:short])
        return (short if bad_before is None else bad_before), last_good
    return (None if bad == -1 else bad), bytes(last)
