"""The observation ring as both C observers fill it (csrc/ring.h ``struct aegis_record``)
and the one way Python takes records out: a batch copied to bytes in one call, then
plain slicing, which costs far less per record than a dozen cffi field accesses."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aegis.ledger import Event
from aegis.native import ffi, lib

# The fixed header (ts_ns; pid, tid, ppid, action, decision, policy_index, syscall_nr,
# error; arg; path_len, extra_len, truncated, reserved), then exe, path and extra.
HEADER = struct.Struct("<Q8iq4I")
RECORD_SIZE = ffi.sizeof("struct aegis_record")
EXE_AT = ffi.offsetof("struct aegis_record", "exe")
PATH_AT = ffi.offsetof("struct aegis_record", "path")
EXTRA_AT = ffi.offsetof("struct aegis_record", "extra")
EXE_MAX = lib.AEGIS_REC_EXE_MAX
PATH_TRUNCATED = lib.AEGIS_REC_PATH_TRUNCATED
EXTRA_TRUNCATED = lib.AEGIS_REC_EXTRA_TRUNCATED
BATCH = 1024
if (HEADER.size, ffi.offsetof("struct aegis_record", "arg"), ffi.offsetof("struct aegis_record", "truncated")) \
        != (EXE_AT, 40, 56):
    raise ImportError("struct aegis_record (csrc/ring.h) no longer matches the layout read here")


@dataclass
class RecordBatch:
    """Records just taken from a ring: which observer made them (``AEGIS_ORIGIN_*``)
    and its converter of one record to an Event (``convert(data, offset)``)."""

    records: Any  # cdata "struct aegis_record *", valid until the ring's next pop
    count: int
    origin: int
    convert: Callable[[bytes, int], Event]


def add_argv(details: dict[str, object], data: bytes, at: int, extra_len: int, truncated: int) -> None:
    """A ProcessSpawn record's argv (NUL-separated in ``extra``) into ``details``, as
    both observers word it."""
    start = at + EXTRA_AT
    argv = data[start:start + extra_len].split(b"\0") if extra_len else []
    details["argv"] = [a.decode("utf-8", "surrogateescape") for a in argv]
    if truncated & EXTRA_TRUNCATED:
        details["argv_truncated"] = True


class RecordRing:
    """A ring of ``capacity`` records (a power of two) and the batch buffer to drain it."""

    def __init__(self, capacity: int) -> None:
        self.ring = ffi.gc(lib.aegis_ring_new(capacity), lib.aegis_ring_free)
        if self.ring == ffi.NULL:
            raise ValueError(f"ring capacity {capacity} must be a power of two")
        self._batch = ffi.new("struct aegis_record[]", BATCH)

    def pop(self, max_records: int, origin: int, convert: Callable[[bytes, int], Event]) -> RecordBatch:
        """Up to ``max_records`` (at most BATCH) records, oldest first, into the batch buffer."""
        n = lib.aegis_ring_pop(self.ring, self._batch, min(BATCH, max_records))
        return RecordBatch(self._batch, n, origin, convert)

    def drain(self, convert: Callable[[bytes, int], Event], max_events: int) -> list[Event]:
        """Up to ``max_events`` records, oldest first, each made an Event by ``convert(data, offset)``."""
        events: list[Event] = []
        while len(events) < max_events:
            n = self.pop(max_events - len(events), 0, convert).count
            if n == 0:
                break
            data = ffi.buffer(self._batch, n * RECORD_SIZE)[:]
            events.extend(convert(data, i * RECORD_SIZE) for i in range(n))
        return events

    def take_dropped(self) -> int:
        return int(lib.aegis_ring_take_dropped(self.ring))
