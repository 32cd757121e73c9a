"""The SPSC ring (csrc/ring.c): order, capacity, overflow counting."""

from __future__ import annotations

import time

import pytest

from aegis.native import ffi, lib


def make_ring(capacity: int):
    ring = lib.aegis_ring_new(capacity)
    assert ring != ffi.NULL
    return ffi.gc(ring, lib.aegis_ring_free)


def record(pid: int):
    rec = ffi.new("struct aegis_record *")
    rec.pid = pid
    path = f"/p/{pid}".encode()
    ffi.memmove(rec.path, path, len(path))
    rec.path_len = len(path)
    return rec


def test_push_pop_keeps_order_and_contents() -> None:
    ring = make_ring(8)
    for pid in range(5):
        assert lib.aegis_ring_push(ring, record(pid)) == 0
    assert lib.aegis_ring_used(ring) == 5
    out = ffi.new("struct aegis_record[]", 16)
    assert lib.aegis_ring_pop(ring, out, 3) == 3
    assert [out[i].pid for i in range(3)] == [0, 1, 2]
    assert ffi.string(out[2].path) == b"/p/2"
    assert lib.aegis_ring_pop(ring, out, 16) == 2
    assert [out[i].pid for i in range(2)] == [3, 4]
    assert lib.aegis_ring_pop(ring, out, 16) == 0


def test_wraps_around_many_times() -> None:
    ring = make_ring(4)
    out = ffi.new("struct aegis_record[]", 4)
    for pid in range(100):
        assert lib.aegis_ring_push(ring, record(pid)) == 0
        assert lib.aegis_ring_pop(ring, out, 4) == 1
        assert out[0].pid == pid


def test_overflow_is_counted_not_blocking() -> None:
    ring = make_ring(4)
    for pid in range(4):
        assert lib.aegis_ring_push(ring, record(pid)) == 0
    assert lib.aegis_ring_push(ring, record(99)) == -1
    assert lib.aegis_ring_push(ring, record(100)) == -1
    assert lib.aegis_ring_take_dropped(ring) == 2
    assert lib.aegis_ring_take_dropped(ring) == 0  # taken once
    out = ffi.new("struct aegis_record[]", 8)
    assert [out[i].pid for i in range(lib.aegis_ring_pop(ring, out, 8))] == [0, 1, 2, 3]


def test_push_wait_gives_up_after_the_wait_and_counts_one_drop() -> None:
    ring = make_ring(2)
    lib.aegis_ring_push(ring, record(1))
    lib.aegis_ring_push(ring, record(2))
    start = time.monotonic()
    assert lib.aegis_ring_push_wait(ring, record(3), 30) == -1
    assert time.monotonic() - start >= 0.02
    assert lib.aegis_ring_take_dropped(ring) == 1


def test_push_wait_succeeds_once_there_is_room() -> None:
    ring = make_ring(2)
    out = ffi.new("struct aegis_record[]", 2)
    lib.aegis_ring_push(ring, record(1))
    assert lib.aegis_ring_push_wait(ring, record(2), 0) == 0
    assert lib.aegis_ring_pop(ring, out, 1) == 1
    assert lib.aegis_ring_push_wait(ring, record(3), 10) == 0
    assert lib.aegis_ring_take_dropped(ring) == 0


@pytest.mark.parametrize("capacity", [0, 1, 3, 6, 1 << 25])
def test_capacity_must_be_a_power_of_two_in_range(capacity: int) -> None:
    assert lib.aegis_ring_new(capacity) == ffi.NULL


def test_capacity_is_reported() -> None:
    assert lib.aegis_ring_capacity(make_ring(64)) == 64


def test_records_survive_the_consumer_populating_pages_ahead() -> None:
    """The consumer populates pages ahead of the producer between batches (more than
    a window's worth here, and past the end of a small ring into its wrap): every
    record written before or after, on either side of a populated boundary, reads back."""
    for capacity in (4096, 256):
        ring = make_ring(capacity)
        out = ffi.new("struct aegis_record[]", 700)
        got: list[int] = []
        pid = 0
        while pid < 3000:
            for _ in range(600):  # a burst, then a drain: producer ahead of the populated pages
                assert lib.aegis_ring_push(ring, record(pid)) == 0
                pid += 1
                if lib.aegis_ring_used(ring) == capacity:
                    break
            n = lib.aegis_ring_pop(ring, out, 700)
            got += [out[i].pid for i in range(n)]
            assert all(ffi.string(out[i].path) == f"/p/{out[i].pid}".encode() for i in range(n))
        assert got == list(range(pid))
