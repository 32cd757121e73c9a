"""Kernel denial harvesting: Landlock's audit records, read from the audit netlink socket.

The supervisor sees only what it intercepts. Landlock denies more (``ftruncate`` on an
already-open file, device ``ioctl``, signals, TCP ports) and, on kernels with Landlock
ABI >= 7 (Linux 6.15+), reports each denial to the audit subsystem as an
``AUDIT_LANDLOCK_ACCESS`` record (``domain=… blockers=fs.write_file path="…" dev="…"
ino=…``). The same audit event carries an ``AUDIT_SYSCALL`` record with the denied
process's pid, and the first logged denial of a domain an ``AUDIT_LANDLOCK_DOMAIN``
``status=allocated`` record naming the pid that created the domain.

``DenialHarvester`` joins the read-only multicast group ``AUDIT_NLGRP_READLOG`` (needs
CAP_AUDIT_READ), so an auditd that owns the unicast audit pid is not disturbed. It
turns auditing on when it is off (needs CAP_AUDIT_CONTROL), because the kernel drops
Landlock records while auditing is disabled; it leaves it on, since another session
may be relying on it. Records are attributed to the sandbox by its Landlock domain:
the domain created by the sandbox's first process, or one created by a descendant of
it. Two conditions on the sandbox side (``aegis/sandbox``): start the harvester
before the sandboxed process is spawned (a process forked while auditing was never
on has no audit context, so its denials come without a pid), and pass
``LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON`` to ``landlock_restrict_self`` (by default
the kernel stops logging a domain's denials after the first ``execve``).
"""

from __future__ import annotations

import errno
import os
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from aegis.ledger import Event

NETLINK_AUDIT = 9
AUDIT_NLGRP_READLOG = 1
AUDIT_GET = 1000
AUDIT_SET = 1001
AUDIT_USER = 1005
AUDIT_SYSCALL = 1300
AUDIT_EOE = 1320
AUDIT_LANDLOCK_ACCESS = 1423
AUDIT_LANDLOCK_DOMAIN = 1424
AUDIT_STATUS_ENABLED = 0x1
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
CAP_AUDIT_WRITE = 29
CAP_AUDIT_CONTROL = 30
CAP_AUDIT_READ = 37
LANDLOCK_AUDIT_ABI = 7

_NLMSGHDR = struct.Struct("=IHHII")
# struct audit_status up to backlog_wait_time_actual (uapi/linux/audit.h)
_AUDIT_STATUS = struct.Struct("=11I")
_HEADER = re.compile(r"audit\((\d+)\.(\d+):(\d+)\):\s?")
_FIELD = re.compile(r'([a-zA-Z_][\w-]*)=("[^"]*"|\S*)')
# Fields the kernel logs with audit_log_untrustedstring: quoted when printable,
# upper-case hex without quotes otherwise (a space or quote in a path, say).
_UNTRUSTED = frozenset({"path", "exe", "comm", "ocomm", "dev", "name"})
_HEX = re.compile(r"[0-9A-F]+")
# How long stop() waits for its barrier record to come back through the kernel's audit
# queue (the exited sandbox's records are ahead of it, the queue is FIFO), then for the
# "deallocated" record of each sandbox domain (its total denial count).
BARRIER_WAIT_S = 2.0
DEALLOCATION_WAIT_S = 0.5
DEDUP_WINDOW_NS = 2_000_000_000
MAX_PENDING_EVENTS = 100_000


@dataclass
class AuditRecord:
    """One audit record: its type, event serial, timestamp and fields."""

    type: int
    serial: int
    ts_ns: int
    fields: dict[str, str]


def parse_record(record_type: int, text: str) -> AuditRecord | None:
    """Parse ``audit(SEC.MS:SERIAL): k=v …``; None when the text is not an audit record."""
    header = _HEADER.match(text)
    if header is None:
        return None
    sec, msec, serial = header.groups()
    fields: dict[str, str] = {}
    for key, raw in _FIELD.findall(text, header.end()):
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            value = raw[1:-1]
        elif key in _UNTRUSTED and raw and len(raw) % 2 == 0 and _HEX.fullmatch(raw):
            value = bytes.fromhex(raw).decode("utf-8", "surrogateescape")
        else:
            value = raw
        fields[key] = value
    return AuditRecord(record_type, int(serial), int(sec) * 1_000_000_000 + int(msec) * 1_000_000, fields)


@dataclass(frozen=True)
class HarvestStatus:
    """Whether kernel denials can be harvested here, and if not, what is missing."""

    available: bool
    reason: str


def _effective_caps() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def _landlock_abi() -> int:
    from aegis.sandbox.capabilities import landlock_abi

    return landlock_abi()


def harvest_status() -> HarvestStatus:
    """Check (without changing anything) whether this process could harvest denials."""
    abi = _landlock_abi()
    if abi < LANDLOCK_AUDIT_ABI:
        return HarvestStatus(False, f"kernel Landlock ABI {abi} has no audit records "
                                    "(needs ABI 7, Linux 6.15+)")
    caps = _effective_caps()
    if not caps & (1 << CAP_AUDIT_READ):
        return HarvestStatus(False, "needs root or CAP_AUDIT_READ to read audit records "
                                    f"(running as uid {os.geteuid()})")
    try:
        enabled = read_audit_enabled()
    except OSError as exc:
        return HarvestStatus(False, f"audit netlink socket unavailable: {exc.strerror or exc}")
    if not enabled and not caps & (1 << CAP_AUDIT_CONTROL):
        return HarvestStatus(False, "kernel auditing is off and enabling it needs CAP_AUDIT_CONTROL")
    return HarvestStatus(True, "Landlock denials are read from the audit multicast group")


def _audit_request(msg_type: int, payload: bytes) -> bytes:
    """Send one request to the kernel's audit socket; return the reply payload (or b"" for an ACK)."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT) as sock:
        sock.bind((0, 0))
        sock.settimeout(2.0)
        sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(payload), msg_type, NLM_F_REQUEST | NLM_F_ACK, 1, 0)
                  + payload)
        while True:
            data = sock.recv(65536)
            length, reply_type, _, _, _ = _NLMSGHDR.unpack_from(data)
            body = data[_NLMSGHDR.size:length]
            if reply_type == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", body)
                if code:
                    raise OSError(-code, os.strerror(-code))
                if msg_type != AUDIT_GET:
                    return b""
            elif reply_type == msg_type:
                return body


def read_audit_enabled() -> bool:
    """The kernel's audit ``enabled`` flag (1 on, 2 on and locked)."""
    body = _audit_request(AUDIT_GET, b"").ljust(_AUDIT_STATUS.size, b"\0")
    return _AUDIT_STATUS.unpack_from(body)[1] != 0


def set_audit_enabled(enabled: bool) -> None:
    """AUDIT_SET enabled=1 or 0 (CAP_AUDIT_CONTROL)."""
    status = [0] * 11
    status[0], status[1] = AUDIT_STATUS_ENABLED, int(enabled)
    _audit_request(AUDIT_SET, _AUDIT_STATUS.pack(*status))


def _send_barrier(nonce: str) -> None:
    """Log an AUDIT_USER record carrying ``nonce`` (CAP_AUDIT_WRITE)."""
    # the kernel drops the last byte of the payload (it expects a NUL terminator)
    _audit_request(AUDIT_USER, f"aegis-barrier {nonce}\0".encode())


def _grow_receive_buffer(sock: socket.socket) -> None:
    """A burst of denials must not overflow the socket between two reads. Beyond
    rmem_max needs CAP_NET_ADMIN; without it the kernel's cap is the best there is."""
    for option in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, 8 << 20)
            return
        except OSError:
            continue


def _ancestors(pid: int) -> list[int]:
    """``pid`` and its ancestors up to init, read from /proc now (empty if it is gone)."""
    chain: list[int] = []
    while pid > 0 and pid not in chain:
        chain.append(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            break
        # the command name may contain spaces and parentheses: ppid follows the last ')'
        pid = int(stat[stat.rindex(b")") + 2:].split()[1])
    return chain


@dataclass
class _AuditEvent:
    """The records of one audit event (one serial) that carries a Landlock record."""

    serial: int
    ts_ns: int
    access: list[dict[str, str]] = field(default_factory=list)
    syscall: dict[str, str] = field(default_factory=dict)


@dataclass
class _Domain:
    creator_chain: list[int] = field(default_factory=list)
    denials_total: int | None = None


class DenialHarvester:
    """Collects Landlock denials for one session from the audit multicast group.

    ``start()`` before spawning the sandbox, ``attach(pid)`` with the sandbox's first
    process, ``stop(recorded)`` after it exited: returns "KernelDenial" events (not
    already in ``recorded``) and one "ObserverNote" saying what was harvested, or why
    nothing could be.
    """

    def __init__(self, session_id: str, unavailable: str = "", sock: socket.socket | None = None,
                 enabled_audit: bool = False) -> None:
        self.session_id = session_id
        self.unavailable = unavailable
        self.enabled_audit = enabled_audit
        self._sock = sock
        self._root_pids: set[int] = set()
        self._events: dict[int, _AuditEvent] = {}
        self._domains: dict[str, _Domain] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._overflows = 0
        self._read_error = ""
        self._barrier_nonce = os.urandom(8).hex().encode()
        self._barrier_seen = threading.Event()
        self._thread: threading.Thread | None = None
        # stop() writes a byte here so the reader leaves select() at once, rather than
        # after a receive timeout (this wait was a quarter of `aegis run -- true`).
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC) if sock is not None else (-1, -1)
        if sock is not None:
            self._thread = threading.Thread(target=self._read_loop, name="aegis-landlock-audit", daemon=True)
            self._thread.start()

    @classmethod
    def start(cls, session_id: str = "") -> DenialHarvester:
        """Join the audit multicast group (enabling auditing if needed); never raises for
        missing privilege: the harvester then only reports why it is unavailable."""
        status = harvest_status()
        if not status.available:
            return cls(session_id, unavailable=status.reason)
        enabled_audit = False
        try:
            if not read_audit_enabled():
                set_audit_enabled(True)
                enabled_audit = True
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
        except OSError as exc:
            return cls(session_id, unavailable=f"could not set up audit: {exc.strerror or exc}")
        try:
            sock.bind((0, 1 << (AUDIT_NLGRP_READLOG - 1)))
        except OSError as exc:
            sock.close()
            reason = f"could not join the audit multicast group: {exc.strerror or exc}"
            return cls(session_id, unavailable=reason)
        _grow_receive_buffer(sock)
        sock.settimeout(0.05)
        return cls(session_id, sock=sock, enabled_audit=enabled_audit)

    @property
    def available(self) -> bool:
        return not self.unavailable

    def attach(self, pid: int) -> None:
        """The sandbox's first process: the domains it (or a descendant) creates are this session's."""
        with self._lock:
            self._root_pids.add(pid)

    def _read_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                ready, _, _ = select.select([self._sock, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                data = self._sock.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self._overflows += 1
                    continue
                if not self._stopping.is_set():
                    self._read_error = exc.strerror or str(exc)
                return
            self._take(data)

    def _take(self, data: bytes) -> None:
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, record_type, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size:
                return
            if record_type == AUDIT_USER and self._barrier_nonce in data[offset:offset + length]:
                self._barrier_seen.set()
            elif record_type in (AUDIT_LANDLOCK_ACCESS, AUDIT_LANDLOCK_DOMAIN, AUDIT_SYSCALL):
                text = data[offset + _NLMSGHDR.size:offset + length].rstrip(b"\0").decode("utf-8", "replace")
                record = parse_record(record_type, text)
                if record is not None:
                    self._add(record)
            offset += (length + 3) & ~3

    def _add(self, record: AuditRecord) -> None:
        with self._lock:
            fields = record.fields
            if record.type == AUDIT_SYSCALL:
                # ACCESS records precede their event's SYSCALL record, so only events
                # already known to be Landlock's are kept.
                event = self._events.get(record.serial)
                if event is not None:
                    event.syscall = fields
                return
            if record.type == AUDIT_LANDLOCK_DOMAIN:
                domain = self._domains.setdefault(fields.get("domain", ""), _Domain())
                if fields.get("status") == "allocated" and fields.get("pid", "").isdigit():
                    # The creator is alive and in a syscall right now: its ancestry is exact.
                    domain.creator_chain = _ancestors(int(fields["pid"])) or [int(fields["pid"])]
                elif fields.get("status") == "deallocated" and fields.get("denials", "").isdigit():
                    domain.denials_total = int(fields["denials"])
                return
            event = self._events.get(record.serial)
            if event is None:
                if len(self._events) >= MAX_PENDING_EVENTS:
                    self._overflows += 1
                    return
                event = self._events[record.serial] = _AuditEvent(record.serial, record.ts_ns)
            event.access.append(fields)

    def _session_domains(self) -> set[str]:
        return {name for name, domain in self._domains.items()
                if self._root_pids.intersection(domain.creator_chain)}

    def _drain(self) -> None:
        """Wait until every record queued before now has been read, then for the
        session domains' deallocation records."""
        if _effective_caps() & (1 << CAP_AUDIT_WRITE):
            try:
                _send_barrier(self._barrier_nonce.decode())
                self._barrier_seen.wait(BARRIER_WAIT_S)
            except OSError:
                time.sleep(0.1)
        else:
            time.sleep(0.1)
        deadline = time.monotonic() + DEALLOCATION_WAIT_S
        while time.monotonic() < deadline:
            with self._lock:
                if all(self._domains[d].denials_total is not None for d in self._session_domains()):
                    return
            time.sleep(0.01)

    def stop(self, recorded: Iterable[Event] = ()) -> list[Event]:
        """Stop reading; the session's kernel denials not already in ``recorded`` (the
        supervisor's deny events: same pid and path within 2 s), then one summary note."""
        if not self.available:
            reason = f"kernel denial harvesting unavailable: {self.unavailable}"
            return [self._note(reason, {"available": False})]
        if self._stopping.is_set():
            raise RuntimeError("DenialHarvester.stop called twice")
        self._drain()
        self._stopping.set()
        os.write(self._wake_w, b"\0")
        if self._thread is not None:
            self._thread.join()
        assert self._sock is not None
        self._sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        seen: dict[tuple[int, str], list[int]] = {}
        for ev in recorded:
            if ev.decision == "deny":
                seen.setdefault((ev.pid, ev.resource), []).append(ev.ts_ns)
        domains = self._session_domains()
        denials: list[Event] = []
        duplicates = 0
        for event in sorted(self._events.values(), key=lambda e: e.serial):
            for access in event.access:
                if access.get("domain") not in domains:
                    continue
                denial = self._denial(event, access)
                times = seen.get((denial.pid, denial.resource), [])
                if any(ts == 0 or abs(ts - denial.ts_ns) <= DEDUP_WINDOW_NS for ts in times):
                    duplicates += 1
                    continue
                denials.append(denial)
        totals = [self._domains[d].denials_total for d in domains]
        counts: dict[str, object] = {"available": True, "harvested": len(denials), "duplicates": duplicates,
                                     "domains": sorted(domains), "audit_enabled_by_aegis": self.enabled_audit}
        summary = (f"kernel denial harvesting: {len(denials)} Landlock denial(s) recorded, "
                   f"{duplicates} already seen")
        if totals and all(t is not None for t in totals):
            total = counts["kernel_denials_total"] = sum(t for t in totals if t is not None)
            if total > len(denials) + duplicates:
                # e.g. the sandbox did not ask for LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON
                summary += f"; the kernel counted {total}, the rest were not logged"
        if self._overflows:
            counts["overflows"] = self._overflows
        if self._overflows:
            summary += f", {self._overflows} audit read overflow(s): some denials may be missing"
        if self._read_error:
            counts["read_error"] = self._read_error
            summary += f"; reading stopped early ({self._read_error}): later denials are missing"
        return [*denials, self._note(summary, counts)]

    def _denial(self, event: _AuditEvent, access: dict[str, str]) -> Event:
        blockers = [b for b in access.get("blockers", "").split(",") if b]
        if "path" in access:
            resource = access["path"]
        elif "daddr" in access or "dest" in access:
            resource = f"{access.get('daddr', '')}:{access.get('dest', '')}"
        elif "opid" in access:
            resource = f"pid:{access['opid']}"
        else:
            resource = ",".join(blockers)
        call = event.syscall
        details: dict[str, object] = {"blockers": blockers, "domain": access.get("domain", ""),
                                      "audit_serial": event.serial}
        for key in ("dev", "ino", "opid", "ocomm"):
            if key in access:
                details[key] = access[key]
        if call:
            details["syscall"] = int(call.get("syscall", "-1"))
            details["exit"] = call.get("exit", "")
        else:
            details["pid_unknown"] = "no audit context (process started before auditing was enabled)"
        return Event(action="KernelDenial", resource=resource, decision="deny", session_id=self.session_id,
                     pid=int(call.get("pid", "0") or 0), ppid=int(call.get("ppid", "0") or 0),
                     executable=call.get("exe", ""), source="audit",
                     reason=f"Landlock denied {', '.join(blockers)}", details=details, ts_ns=event.ts_ns)

    def _note(self, reason: str, details: dict[str, object]) -> Event:
        return Event(action="ObserverNote", resource="kernel-denials", decision="info",
                     session_id=self.session_id, source="audit", reason=reason,
                     details={"net": "landlock_audit", **details})
