"""``aegis.native_api``: the C layer (``aegis._native``) with typed, documented signatures.

For people who need the raw pieces; agents normally want ``aegis.Policy``,
``aegis.Ledger`` and ``aegis.Sandbox``. Every function here is one C call (or a
batch of them) with Python types in and out; the cffi objects stay inside. The
spawner and the seccomp/fanotify observers are driven through ``aegis.Sandbox``:
their C entry points hand kernel descriptors between threads and processes and
are only safe in the order ``aegis.sandbox.linux`` uses them.

>>> sha256(b"abc").hex()[:16]
'ba7816bf8f01cfea'
>>> chain, _ = chain_hashes(GENESIS, [b"first", b"second"])
>>> stored = [chain[:32] + b"first", chain[32:] + b"secnod"]  # as the ledger stores them; one altered
>>> len(chain), check_chain(GENESIS, stored)[0]
(64, 1)
>>> canonicalize("/home/u", "../../etc/./passwd")
'/etc/passwd'
>>> ring = Ring(4)
>>> ring.push(RingRecord(action=1, decision=1, pid=42, path="/etc/hosts"))
True
>>> [(r.pid, r.path) for r in ring.pop()]
[(42, '/etc/hosts')]
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from aegis.actions import Action, Decision
from aegis.ledger.chain import GENESIS, HASH_LEN, sha256
from aegis.ledger.chain import chain_records as chain_hashes
from aegis.ledger.chain import check_entries as check_chain
from aegis.ledger.chain import hash_accelerated as sha256_accelerated
from aegis.native import errno_name, ffi, lib

__all__ = ["GENESIS", "HASH_LEN", "DecisionTable", "Ring", "RingRecord", "canonicalize", "chain_hashes",
           "check_chain", "errno_name", "landlock_abi_version", "sha256", "sha256_accelerated"]

PATH_MAX = 4096


def canonicalize(base: str, path: str) -> str:
    """``aegis_canonicalize``: ``path`` joined to ``base`` (when relative) with ``.``,
    ``..`` and repeated slashes removed, lexically (symlinks are not resolved)."""
    out = ffi.new("char[]", PATH_MAX)
    n = lib.aegis_canonicalize(os.fsencode(base), os.fsencode(path), out, PATH_MAX)
    if n == 0:
        raise ValueError(f"canonical form of {path!r} is longer than {PATH_MAX - 1} bytes")
    return os.fsdecode(ffi.buffer(out, n)[:])


def landlock_abi_version() -> int:
    """``aegis_landlock_abi_version``: the running kernel's Landlock ABI (>= 1), or
    -errno when Landlock is unavailable (``errno_name`` names it)."""
    return int(lib.aegis_landlock_abi_version())


@dataclass
class RingRecord:
    """One ``struct aegis_record``: an observed action as the observers write it."""

    action: int                 # Action code (aegis.Action)
    decision: int               # Decision code: 1 allow, 2 deny, 3 residual
    pid: int = 0
    ppid: int = 0
    tid: int = 0
    policy_index: int = -1      # index into the policy ids, or -1 none, -2 Aegis's own state, -3 allowed_network
    syscall_nr: int = 0
    error: int = 0              # errno answered to the process, 0 when allowed
    arg: int = 0                # open flags, exit status or port, by action
    ts_ns: int = 0
    exe: str = ""
    path: str = ""              # canonical path, or "host:port" for NetConnect
    extra: bytes = b""          # ProcessSpawn: argv, NUL-separated
    truncated: int = 0          # 1: path truncated, 2: extra truncated (set by the C side)


class Ring:
    """``aegis_ring_*``: the bounded lock-free ring observers write records into and
    Python drains. One writer thread and one reader thread may use it at once."""

    def __init__(self, capacity: int) -> None:
        """``capacity``: a power of two (ValueError otherwise)."""
        raw = lib.aegis_ring_new(capacity)
        if raw == ffi.NULL:
            raise ValueError(f"ring capacity {capacity} must be a power of two within the supported range")
        self._ring = ffi.gc(raw, lib.aegis_ring_free)
        self._out = ffi.new("struct aegis_record[]", 256)

    @property
    def capacity(self) -> int:
        return int(lib.aegis_ring_capacity(self._ring))

    def __len__(self) -> int:
        """Records waiting to be popped."""
        return int(lib.aegis_ring_used(self._ring))

    def push(self, record: RingRecord, wait_ms: int = 0) -> bool:
        """Append ``record``; False (and one drop counted) when the ring stayed full
        for ``wait_ms`` milliseconds (0: do not wait). Strings longer than the C
        fields are cut and flagged in ``truncated``."""
        rec = ffi.new("struct aegis_record *")
        for name in ("action", "decision", "pid", "ppid", "tid", "policy_index", "syscall_nr", "error", "arg",
                     "ts_ns"):
            setattr(rec, name, getattr(record, name))
        exe = os.fsencode(record.exe)[:lib.AEGIS_REC_EXE_MAX - 1]
        path, extra = os.fsencode(record.path), record.extra
        if len(path) >= lib.AEGIS_REC_PATH_MAX:
            path, rec.truncated = path[:lib.AEGIS_REC_PATH_MAX - 1], rec.truncated | lib.AEGIS_REC_PATH_TRUNCATED
        if len(extra) >= lib.AEGIS_REC_EXTRA_MAX:
            extra, rec.truncated = extra[:lib.AEGIS_REC_EXTRA_MAX - 1], rec.truncated | lib.AEGIS_REC_EXTRA_TRUNCATED
        ffi.memmove(rec.exe, exe, len(exe))
        ffi.memmove(rec.path, path, len(path))
        ffi.memmove(rec.extra, extra, len(extra))
        rec.path_len, rec.extra_len = len(path), len(extra)
        pushed = (lib.aegis_ring_push_wait(self._ring, rec, wait_ms) if wait_ms
                  else lib.aegis_ring_push(self._ring, rec))
        return pushed == 0

    def pop(self, max_records: int = 256) -> list[RingRecord]:
        """Remove and return up to ``max_records`` records, oldest first."""
        if max_records > len(self._out):
            self._out = ffi.new("struct aegis_record[]", max_records)
        n = lib.aegis_ring_pop(self._ring, self._out, max_records)
        return [RingRecord(action=r.action, decision=r.decision, pid=r.pid, ppid=r.ppid, tid=r.tid,
                           policy_index=r.policy_index, syscall_nr=r.syscall_nr, error=r.error, arg=r.arg,
                           ts_ns=r.ts_ns, exe=os.fsdecode(ffi.string(r.exe)),
                           path=os.fsdecode(ffi.buffer(r.path, r.path_len)[:]),
                           extra=ffi.buffer(r.extra, r.extra_len)[:], truncated=r.truncated)
                for r in self._out[0:n]]

    def take_dropped(self) -> int:
        """Records dropped because the ring was full since the last call (then reset)."""
        return int(lib.aegis_ring_take_dropped(self._ring))


class DecisionTable:
    """``aegis_dtable_*``: a compiled policy's decision table, decided in C.

    Read-only once loaded, so ``decide`` may be called from many threads at once.

    >>> import aegis
    >>> table = DecisionTable.from_policy(aegis.Policy.from_text(
    ...     'permit(principal, action == Aegis::Action::"FileRead", resource) when { resource.path like "/srv/*" };'))
    >>> table.decide(Action.FileRead, "/srv/a"), table.decide(Action.FileWrite, "/srv/a")
    ((<Decision.allow: 1>, 'policy.cedar:0'), (<Decision.deny: 2>, None))
    """

    def __init__(self, blob: bytes, policy_ids: list[str]) -> None:
        """``blob``: a serialised table (``CompiledPolicy.table_blob``); ValueError if malformed."""
        raw = lib.aegis_dtable_load(blob, len(blob))
        if raw == ffi.NULL:
            raise ValueError("decision table blob rejected by aegis_dtable_load")
        self._table = ffi.gc(raw, lib.aegis_dtable_free)
        self.policy_ids = list(policy_ids)

    @classmethod
    def from_policy(cls, policy: object) -> DecisionTable:
        """Compile an ``aegis.Policy`` and load its table."""
        from aegis.policy.compiler import compile_policy

        compiled = compile_policy(policy.engine)  # type: ignore[attr-defined]
        return cls(compiled.table_blob, compiled.policy_ids)

    def decide(self, action: Action | int, path: str) -> tuple[Decision, str | None]:
        """Decide a canonical ``path``: (allow / deny / residual, deciding policy id or None).
        ``residual`` means cedarpy must decide (``Policy.authorize``)."""
        index = ffi.new("int *")
        raw = os.fsencode(path)
        code = lib.aegis_dtable_decide(self._table, int(action), raw, len(raw), index)
        return Decision(code), (self.policy_ids[index[0]] if index[0] >= 0 else None)
