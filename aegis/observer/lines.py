"""How ring records are worded in the ledger, and the C encoder that writes them.

The observers' records (csrc/ring.h) become ledger entries in one of two ways.
The hot one is ``LineEncoder``: csrc/record_lines.c writes a batch of records
straight into the canonical record text (aegis/ledger/canonical.py) that the
ledger chains and stores, with no Python per record. The reference one is each
observer's record converter (``SupervisorRecords``, ``FanotifyRecords``: record
-> ``Event``) followed by the ledger's own encoder; it serves ``Observer.drain``, the records the session keeps as
Events (denials, mutations), and batches the C encoder cannot word (a residual
decision's evaluation errors). tests/test_record_lines.py checks that both ways
produce the same bytes.
"""

from __future__ import annotations

import errno
import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aegis.actions import Action
from aegis.ledger import Event
from aegis.ledger.canonical import canonical_json
from aegis.ledger.model import KIND_EVENT
from aegis.native import ffi, lib
from aegis.observer.records import BATCH, RECORD_SIZE, RecordBatch
from aegis.policy.seccomp import SeccompSpec

GUARD_POLICY = "aegis-home-guard"
REFUSAL_POLICY = "aegis-syscall-filter"  # the refusals of the filter itself (SyscallDenied)
NETLIST_POLICY = "allowed_network"
SYSCALL_DENIED = "SyscallDenied"
GUARD_REASON = "guard: Aegis's own state and processes outside the sandbox are never reachable"
REFUSAL_REASON = "refused by the filter whatever the policy: a way around observation or the sandbox"
# Record kinds: the Cedar actions, and the refusals of the filter itself.
ACTION_NAMES = {int(a): a.name for a in Action} | {lib.AEGIS_ACT_SYSCALL_REFUSED: SYSCALL_DENIED}
# fanotify mask bit -> name, for the event details.
MASK_NAMES = {0x1: "access", 0x2: "modify", 0x8: "close_write", 0x20: "open", 0x40: "moved_from",
              0x80: "moved_to", 0x100: "create", 0x200: "delete", 0x1000: "open_exec", 0x40000000: "ondir"}
ORIGIN_SECCOMP = lib.AEGIS_ORIGIN_SECCOMP
ORIGIN_FANOTIFY = lib.AEGIS_ORIGIN_FANOTIFY


@functools.cache
def syscall_names() -> dict[int, str]:
    """Syscall number -> name for what this machine's filter notifies or refuses."""
    spec = SeccompSpec()
    return {nr: name for name, nr in spec.numbers(os.uname().machine).items()}


def policy_names(policy_ids: Sequence[str]) -> dict[int, tuple[str, ...]]:
    """A record's policy index -> the policy ids its entry names."""
    names = {i: (pid,) for i, pid in enumerate(policy_ids)}
    names[lib.AEGIS_POLICY_GUARD] = (GUARD_POLICY,)
    names[lib.AEGIS_POLICY_NETLIST] = (NETLIST_POLICY,)
    return names


@dataclass
class EncodedBatch:
    """Observations taken from an observer, as canonical ledger records."""

    segments: list[tuple[bytes, int]] = field(default_factory=list)  # (newline-separated records, how many)
    taken: int = 0  # observations taken, the left-out ones included
    notable: list[Event] = field(default_factory=list)  # its denials and mutations, as Events

    @property
    def count(self) -> int:
        return sum(n for _, n in self.segments)


# Takes up to n records from one observer's ring.
RingSource = Callable[[int], RecordBatch]


class LineEncoder:
    """One session's context for csrc/record_lines.c, and its reusable output buffer."""

    def __init__(self, session_id: str, principal: str, policy_ids: Sequence[str] = ()) -> None:
        def js(value: object) -> object:
            text = ffi.new("char[]", canonical_json(value).encode())
            self._keep.append(text)
            return text

        self._keep: list[object] = []
        ctx = self._ctx = ffi.new("struct aegis_lines_ctx *")
        ctx.kind, ctx.session_id, ctx.principal = js(KIND_EVENT), js(session_id), js(principal)
        actions = [ffi.NULL] * (max(ACTION_NAMES) + 1)
        for code, name in ACTION_NAMES.items():
            actions[code] = js(name)
        syscalls = syscall_names()
        by_number = [ffi.NULL] * (max(syscalls, default=0) + 1)
        for nr, name in syscalls.items():
            if name:
                by_number[nr] = js(name)
        names = policy_names(policy_ids)
        masks = list(MASK_NAMES.items())
        arrays = (ffi.new("char *[]", actions), ffi.new("char *[]", by_number),
                  ffi.new("int32_t[]", list(names)), ffi.new("char *[]", [js(list(v)) for v in names.values()]),
                  ffi.new("uint32_t[]", [bit for bit, _ in masks]),
                  ffi.new("char *[]", [js(name) for _, name in masks]))
        self._keep.extend(arrays)
        ctx.actions, ctx.syscalls, ctx.policy_index, ctx.policy_ids, ctx.mask_bits, ctx.mask_names = arrays
        ctx.n_actions, ctx.n_syscalls, ctx.n_policies, ctx.n_masks = (
            len(actions), len(by_number), len(names), len(masks))
        ctx.guard_index, ctx.guard_reason = lib.AEGIS_POLICY_GUARD, js(GUARD_REASON)
        ctx.refusal_policies, ctx.refusal_reason = js([REFUSAL_POLICY]), js(REFUSAL_REASON)
        self._out = ffi.gc(lib.aegis_lines_new(), lib.aegis_lines_free)
        if self._out == ffi.NULL:
            raise MemoryError("cannot allocate the ledger record buffer")

    def encode(self, into: EncodedBatch, first: RecordBatch, second: RecordBatch | None = None, *,
               skip_exit_of: int = 0, now_ns: int = 0) -> None:
        """Add the records of ``first`` and ``second`` (merged by time) to ``into``:
        one segment of records and their notable ones as Events. A ProcessExit of
        ``skip_exit_of`` is left out (the session records its root's exit itself)."""
        ctx, out = self._ctx, self._out
        ctx.skip_exit_of, ctx.now_ns = skip_exit_of, now_ns
        other = second or RecordBatch(ffi.NULL, 0, 0, first.convert)
        rc = lib.aegis_lines_encode(out, ctx, first.records, first.count, first.origin, other.records,
                                    other.count, other.origin)
        if rc != 0:
            raise MemoryError() if rc == -errno.ENOMEM else ValueError("a ring record has an unknown action code")
        into.taken += first.count + other.count
        if out.count:
            into.segments.append((ffi.buffer(out.buf, out.len)[:], out.count))
        if out.n_notable:
            data = ffi.buffer(out.notable, out.n_notable * RECORD_SIZE)[:]
            convert = {first.origin: first.convert, other.origin: other.convert}
            into.notable.extend(convert[out.notable_origin[i]](data, i * RECORD_SIZE)
                                for i in range(out.n_notable))


def drain_rings(encoder: LineEncoder, sources: Sequence[RingSource], max_events: int,
                skip_exit_of: int = 0) -> EncodedBatch:
    """Up to ``max_events`` records from one or two rings (merged by time), encoded."""
    into = EncodedBatch()
    while into.taken < max_events:
        ask = max(1, min(BATCH, (max_events - into.taken) // len(sources)))
        batches = [take(ask) for take in sources]
        encoder.encode(into, *batches, skip_exit_of=skip_exit_of, now_ns=time.time_ns())
        if all(b.count < ask for b in batches):
            break
    return into
