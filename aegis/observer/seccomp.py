"""The seccomp user-notification observer: per-process, synchronous, unprivileged.

The C supervisor thread (csrc/observe_seccomp.c) answers every notified syscall
and fills a ring (csrc/ring.c); ``drain`` turns ring records into ledger events.
Decisions are made in C with the compiled decision table; what the table cannot
decide comes back here through ``residual`` and is evaluated by cedarpy.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aegis.actions import Action, Decision
from aegis.ledger import Event
from aegis.native import ffi, lib
from aegis.observer.api import Observer
from aegis.observer.lines import (
    ACTION_NAMES,
    GUARD_REASON,
    ORIGIN_SECCOMP,
    REFUSAL_POLICY,
    REFUSAL_REASON,
    SYSCALL_DENIED,
    LineEncoder,
    RingSource,
    policy_names,
    syscall_names,
)
from aegis.observer.records import (
    EXE_AT,
    EXE_MAX,
    HEADER,
    PATH_AT,
    PATH_TRUNCATED,
    RecordRing,
    add_argv,
)
from aegis.policy.seccomp import SeccompSpec

if TYPE_CHECKING:
    import ipaddress

RING_CAPACITY = 8192
_ALLOW = int(Decision.allow)
_GUARD = lib.AEGIS_POLICY_GUARD
RING_WAIT_MS = 200

# residual(action, path, pid, executable) -> (allowed, deciding policy id or None, evaluation errors)
ResidualDecider = Callable[[Action, str, int, str], tuple[bool, str | None, Sequence[str]]]


@dataclass(frozen=True)
class NetRule:
    """One ``allowed_network`` entry as a numeric network and port (0 = any)."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    port: int


def parse_allowed_network(entries: Sequence[str]) -> list[NetRule]:
    """``["host:port", "10.0.0.0/8:443", "[::1]:22"]`` -> numeric rules (host names resolved now)."""
    if not entries:
        return []  # the common case must not import the Cedar engine for its parser
    import ipaddress

    from aegis.errors import AegisError
    from aegis.policy.engine import split_host_port

    rules: list[NetRule] = []
    for entry in entries:
        host, port = split_host_port(entry)
        try:
            rules.append(NetRule(ipaddress.ip_network(host, strict=False), port))
            continue
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise AegisError(f"allowed_network entry {entry!r}: cannot resolve {host!r}: {exc}") from None
        for address in sorted({info[4][0] for info in infos}):
            rules.append(NetRule(ipaddress.ip_network(address), port))
    return rules


class SupervisorRecords:
    """Makes Events of the supervisor's ring records (the Python way; see
    aegis.observer.lines), with the evaluation errors of residual decisions."""

    def __init__(self, session_id: str, principal: str, policy_ids: Sequence[str]) -> None:
        self.session_id, self.principal = session_id, principal
        self.syscalls = syscall_names()
        self.policy_names = policy_names(policy_ids)
        self.exe_names: dict[bytes, str] = {}
        # (pid, path) -> errors of a residual decision, until its record is read
        self.residual_errors: dict[tuple[int, str], list[str]] = {}

    def event(self, data: bytes, at: int) -> Event:
        """The Event of the record at ``data[at:]``."""
        # The hot path of the consumer (one call per observed syscall): constants and
        # strings that repeat (executables, sources, policy ids) are looked up, not
        # rebuilt, and the Event is built positionally (its field order).
        (ts_ns, pid, _tid, ppid, action_code, decision, index, syscall_nr, error, arg, path_len, extra_len,
         truncated, _reserved) = HEADER.unpack_from(data, at)
        action = ACTION_NAMES[action_code]
        start = at + PATH_AT
        path = data[start:start + path_len].decode("utf-8", "surrogateescape")
        start = at + EXE_AT
        raw_exe = data[start:data.index(b"\0", start, start + EXE_MAX)]
        executable = self.exe_names.get(raw_exe)
        if executable is None:
            executable = self.exe_names[raw_exe] = raw_exe.decode("utf-8", "surrogateescape")
        details: dict[str, object] = {"path_truncated": True} if truncated & PATH_TRUNCATED else {}
        if action == "ProcessSpawn":
            add_argv(details, data, at, extra_len, truncated)
        elif action == "ProcessExit":  # not a decision: the process is leaving
            details["exit_code"] = arg
            return Event(action, executable, "info", self.session_id, self.principal, pid, ppid, executable,
                         "exit_group", [], [], "", details, ts_ns)
        elif action == "NetConnect":
            details["port"] = arg
        elif action == SYSCALL_DENIED:  # the resource is the syscall; its first argument says how
            name = self.syscalls.get(syscall_nr) or str(syscall_nr)
            return Event(action, name, "deny", self.session_id, self.principal, pid, ppid, executable, name,
                         [REFUSAL_POLICY], [], REFUSAL_REASON, {"arg0": arg, "errno": error}, ts_ns)
        elif arg:
            details["flags"] = arg
        if error:
            details["errno"] = error
        errors = self.residual_errors.pop((pid, path), []) if self.residual_errors else []
        source = self.syscalls.get(syscall_nr) or str(syscall_nr)
        return Event(action, path, "allow" if decision == _ALLOW else "deny", self.session_id, self.principal,
                     pid, ppid, executable, source, list(self.policy_names.get(index, ())), errors,
                     GUARD_REASON if index == _GUARD else "", details, ts_ns)


class SeccompObserver(Observer):
    name = "seccomp"
    pid_attribution = True

    def __init__(self, listener_fd: int, *, session_id: str, principal: str, policy_ids: Sequence[str],
                 table: object | None, residual: ResidualDecider | None, protected_paths: Sequence[str],
                 net_rules: Sequence[NetRule] = (), resolve_symlinks: bool = True,
                 open_on_behalf: bool = True, ring_capacity: int = RING_CAPACITY,
                 ring_wait_ms: int = RING_WAIT_MS) -> None:
        self.session_id, self.principal = session_id, principal
        self.policy_ids = list(policy_ids)
        self._words = SupervisorRecords(session_id, principal, self.policy_ids)
        self._records = RecordRing(ring_capacity)
        self._residual = residual
        self._callback = ffi.callback("int(int, char *, int, char *, int *)", self._decide_residual,
                                      error=int(Decision.deny))
        self._keep = [ffi.new("char[]", os.fsencode(p)) for p in protected_paths]
        protected = ffi.new("const char *[]", self._keep or [ffi.NULL])
        rules = ffi.new("struct aegis_net_rule[]", max(len(net_rules), 1))
        for i, rule in enumerate(net_rules):
            rules[i].family = socket.AF_INET if rule.network.version == 4 else socket.AF_INET6
            rules[i].prefix_len = rule.network.prefixlen
            rules[i].port = rule.port
            packed = rule.network.network_address.packed
            ffi.memmove(rules[i].addr, packed, len(packed))
        config = ffi.new("struct aegis_observer_config *")
        config.listener_fd = listener_fd
        config.ring = self._records.ring
        config.table = table if table is not None else ffi.NULL
        config.decide = (ffi.cast("aegis_decide_fn", ffi.addressof(lib, "aegis_dtable_decide"))
                         if table is not None else ffi.NULL)
        config.residual = self._callback if residual is not None else ffi.NULL
        config.protected_paths = protected
        config.n_protected = len(self._keep)
        config.net_rules = rules
        config.n_net_rules = len(net_rules)
        config.resolve_symlinks = int(resolve_symlinks)
        config.open_on_behalf = int(open_on_behalf)
        config.ring_wait_ms = ring_wait_ms
        refusals = SeccompSpec().refusals(os.uname().machine)
        self._refusals = ffi.new("struct aegis_refusal[]", [{"nr": nr, "error": e} for nr, e in refusals.items()])
        config.refusals = self._refusals
        config.n_refusals = len(refusals)
        error = ffi.new("int *")
        handle = lib.aegis_observer_start(config, error)
        if handle == ffi.NULL:
            raise OSError(error[0], f"cannot start the seccomp observer: {os.strerror(error[0])}")
        self._handle = handle
        self._stats = ffi.new("struct aegis_observer_stats *")
        self.line_encoder = LineEncoder(session_id, principal, self.policy_ids)

    # -- slow path, called from the C thread (cffi takes the GIL) --
    def _decide_residual(self, action: int, path: bytes, pid: int, exe: bytes, policy_index) -> int:
        assert self._residual is not None
        text = os.fsdecode(ffi.string(path))
        try:
            executable = os.fsdecode(ffi.string(exe))
            allowed, policy_id, errors = self._residual(Action(action), text, pid, executable)
        except Exception as exc:  # an evaluation failure is a deny, and is recorded
            allowed, policy_id, errors = False, None, [f"residual evaluation failed: {exc}"]
        policy_index[0] = self.policy_ids.index(policy_id) if policy_id in self.policy_ids else -1
        if errors:
            self._words.residual_errors[(pid, text)] = list(errors)
        return int(Decision.allow if allowed else Decision.deny)

    def drain(self, max_events: int = 4096) -> list[Event]:
        return self._records.drain(self._words.event, max_events)

    def ring_sources(self) -> list[RingSource] | None:
        if self._words.residual_errors:  # evaluation errors ride on their events: the Python way
            return None
        return [lambda n: self._records.pop(n, ORIGIN_SECCOMP, self._words.event)]

    def take_dropped(self) -> int:
        return self._records.take_dropped()

    def _read_stats(self):  # noqa: ANN202
        lib.aegis_observer_get_stats(self._handle, self._stats)
        return self._stats

    def finished(self) -> bool:
        return bool(self._handle is None or self._read_stats().finished)

    def handoffs(self) -> int:
        return int(self._final_stats.get("notifications", 0) if self._handle is None
                   else self._read_stats().notifications)

    def stats(self) -> dict[str, int]:
        if self._handle is None:
            return dict(self._final_stats)
        s = self._read_stats()
        return {"notifications": s.notifications, "records": s.records, "denied": s.denied,
                "vanished": s.vanished, "residual": s.residual, "on_behalf": s.on_behalf,
                "sync_wakeup": s.sync_wakeup, "blocking_recv": s.blocking_recv}

    def stop(self) -> None:
        if self._handle is None:
            return
        self._final_stats = self.stats()
        lib.aegis_observer_stop(self._handle)
        self._handle = None
