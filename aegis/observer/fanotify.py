"""The fanotify observer: asynchronous, whole-filesystem, root only.

A per-session cgroup (v2) holds the agent's process tree; filesystem marks with
``FAN_REPORT_DFID_NAME`` report every open, write, create, delete and rename; the
C reader thread (csrc/observe_fanotify.c) keeps the events of processes in the
cgroup and fills the same ring records as the seccomp observer. It observes only:
every record is an operation the kernel already allowed (Landlock and the
seccomp supervisor enforce).

Lifecycle, driven by the sandbox: ``SessionCgroup(...)`` -> spawn the agent stopped
before exec, born in that cgroup (``open_directory``) -> ``FanotifyObserver(cgroup=...)``
(marks placed, reader running) -> ``attach(pid, in_cgroup=...)`` -> release it ->
``drain`` until ``finished()`` -> ``stop()``.
"""

from __future__ import annotations

import errno
import functools
import os
import time
from pathlib import Path

from aegis.actions import Action
from aegis.errors import AegisError
from aegis.ledger import Event
from aegis.native import errno_name, ffi, lib
from aegis.observer.api import Observer
from aegis.observer.lines import ACTION_NAMES, MASK_NAMES, ORIGIN_FANOTIFY, LineEncoder, RingSource
from aegis.observer.records import EXE_AT, EXE_MAX, HEADER, PATH_AT, PATH_TRUNCATED, RecordRing, add_argv

RING_CAPACITY = 8192
ATTACH_WAIT_S = 1.0
CGROUP_PARENT = "aegis"
# Filesystems without file handles or without files an agent acts on.
PSEUDO_FILESYSTEMS = frozenset({
    "proc", "sysfs", "devpts", "cgroup", "cgroup2", "tracefs", "debugfs", "securityfs", "pstore", "bpf",
    "mqueue", "hugetlbfs", "fusectl", "configfs", "autofs", "binfmt_misc", "nsfs", "rpc_pipefs",
    "efivarfs", "selinuxfs",
})


@functools.lru_cache(maxsize=256)
def _mask_names(mask: int) -> tuple[str, ...]:
    return tuple(name for bit, name in MASK_NAMES.items() if mask & bit)


def cgroup2_root() -> Path:
    """Mount point of the cgroup v2 hierarchy (``/sys/fs/cgroup`` or, hybrid, ``.../unified``)."""
    from aegis.sandbox.capabilities import cgroup2_mount

    mount = cgroup2_mount()
    if mount is None:
        raise AegisError("the fanotify observer needs a cgroup v2 mount (mount cgroup2; see `aegis setup`)")
    return Path(mount)


def observable_mounts() -> list[str]:
    """Mount points of filesystems worth marking, root first."""
    mounts: list[str] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            sep = fields.index("-")
            point = fields[4].replace("\\040", " ")
            if fields[sep + 1] not in PSEUDO_FILESYSTEMS and point not in mounts:
                mounts.append(point)
    return sorted(mounts, key=lambda p: (p != "/", p))


class SessionCgroup:
    """The session's cgroup: ``<cgroup2 root>/aegis/<name>``; every process moved
    in (and every descendant) is observed."""

    def __init__(self, name: str, root: Path | None = None) -> None:
        self.root = root or cgroup2_root()
        self.relative = f"/{CGROUP_PARENT}/{name}"
        self.path = self.root / CGROUP_PARENT / name
        try:
            self.path.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise AegisError(f"cannot create the session cgroup {self.path}: {exc.strerror}") from None

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def open_directory(self) -> int:
        """A descriptor of the cgroup's directory, for a process to be born in it
        (clone3 ``CLONE_INTO_CGROUP``, aegis_spawn) instead of moved in by ``add``,
        which waits for an RCU grace period. The caller closes it."""
        try:
            return os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise AegisError(f"cannot open the session cgroup {self.path}: {exc.strerror}") from None

    def populated(self) -> bool:
        try:
            text = (self.path / "cgroup.events").read_text()
        except FileNotFoundError:
            return False
        return "populated 1" in text

    def remove(self, timeout: float = 2.0) -> None:
        """Kill whatever is left in the cgroup (fail closed) and remove it."""
        if not self.path.exists():
            return
        if self.populated():
            (self.path / "cgroup.kill").write_text("1\n")
            deadline = time.monotonic() + timeout
            while self.populated() and time.monotonic() < deadline:
                time.sleep(0.005)
        self.path.rmdir()


class FanotifyRecords:
    """Makes Events of the fanotify reader's ring records (the Python way; see
    aegis.observer.lines)."""

    def __init__(self, session_id: str, principal: str) -> None:
        self.session_id, self.principal = session_id, principal

    def event(self, raw: bytes, at: int) -> Event:
        """The Event of the record at ``raw[at:]``."""
        (ts_ns, pid, _tid, ppid, action, _decision, _policy, _nr, _err, mask, path_len, extra_len,
         truncated, _reserved) = HEADER.unpack_from(raw, at)
        exe = raw[at + EXE_AT: at + EXE_AT + EXE_MAX]
        path = raw[at + PATH_AT: at + PATH_AT + path_len]
        details: dict[str, object] = {"fanotify": list(_mask_names(mask))}
        if truncated & PATH_TRUNCATED:
            details["path_truncated"] = True
        if action == Action.ProcessSpawn:
            add_argv(details, raw, at, extra_len, truncated)
        return Event(action=ACTION_NAMES[action], resource=os.fsdecode(path), decision="allow",
                     session_id=self.session_id, principal=self.principal, pid=pid, ppid=ppid,
                     executable=os.fsdecode(exe[: exe.find(b"\0")]), source="fanotify", details=details,
                     ts_ns=ts_ns)


class FanotifyObserver(Observer):
    name = "fanotify"
    pid_attribution = True

    def __init__(self, *, session_id: str, principal: str = "", cgroup: SessionCgroup | None = None,
                 mounts: list[str] | None = None, mask: int | None = None,
                 ring_capacity: int = RING_CAPACITY) -> None:
        self.session_id, self.principal = session_id, principal
        self._words = FanotifyRecords(session_id, principal)
        self.line_encoder = LineEncoder(session_id, principal)
        self.cgroup = cgroup or SessionCgroup(session_id)
        try:
            self._records = RecordRing(ring_capacity)
        except ValueError:
            self.cgroup.remove()
            raise
        error = ffi.new("int *")
        handle = lib.aegis_fan_new(self._records.ring, self.cgroup.relative.encode(),
                                   lib.AEGIS_FAN_DEFAULT_MASK if mask is None else mask, error)
        if handle == ffi.NULL:
            self.cgroup.remove()
            raise AegisError(f"cannot start the fanotify observer: {errno_name(error[0])} "
                             "(needs root or CAP_SYS_ADMIN)")
        self._handle = handle
        self.marked: list[str] = []
        self.unmarked: dict[str, str] = {}
        for mount in mounts if mounts is not None else observable_mounts():
            rc = lib.aegis_fan_mark(handle, os.fsencode(mount))
            if rc == 0:
                self.marked.append(mount)
            else:
                self.unmarked[mount] = errno_name(rc)
        if not self.marked:
            self.stop()
            raise AegisError(f"the fanotify observer could not mark any filesystem: {self.unmarked}")
        rc = lib.aegis_fan_start(handle)
        if rc != 0:
            self.stop()
            raise AegisError(f"cannot start the fanotify reader thread: {errno_name(rc)}")
        self._stats = ffi.new("struct aegis_fan_stats *")
        self._final_stats: dict[str, int] = {}
        self._attached = False
        self._tracked = 0

    def attach(self, pid: int, *, in_cgroup: bool = False) -> None:
        """Observe ``pid`` and its descendants; call before it runs the agent's code.
        ``in_cgroup``: it was born in the session cgroup, and needs no moving there."""
        if not in_cgroup:
            self.cgroup.add(pid)
        lib.aegis_fan_membership_changed(self._handle)
        rc = lib.aegis_fan_track_pid(self._handle, pid)
        if rc == -errno.ENOSPC:
            raise AegisError("the fanotify observer tracks at most 64 root processes per session")
        self._attached = True
        # Wait (briefly) until the reader has read the process's facts: it is still
        # held before exec now, and may be gone by the time its events are read.
        lib.aegis_fan_get_stats(self._handle, self._stats)
        deadline = time.monotonic() + ATTACH_WAIT_S
        while self._stats.tracked < self._tracked + 1 and time.monotonic() < deadline:
            time.sleep(0.0005)
            lib.aegis_fan_get_stats(self._handle, self._stats)
        self._tracked += 1

    def drain(self, max_events: int = 4096) -> list[Event]:
        return self._records.drain(self._words.event, max_events)

    def ring_sources(self) -> list[RingSource] | None:
        return [lambda n: self._records.pop(n, ORIGIN_FANOTIFY, self._words.event)]

    def take_dropped(self) -> int:
        return self._records.take_dropped()

    def finished(self) -> bool:
        """True once the cgroup is empty and the reader has drained the kernel queue
        (the last process's events were queued before it exited)."""
        if self._handle is None:
            return True
        if not self._attached or self.cgroup.populated():
            return False
        lib.aegis_fan_request_stop(self._handle)
        lib.aegis_fan_get_stats(self._handle, self._stats)
        return bool(self._stats.finished)

    def stats(self) -> dict[str, int]:
        if self._handle is None:
            return dict(self._final_stats)
        lib.aegis_fan_get_stats(self._handle, self._stats)
        s = self._stats
        return {"kernel_events": s.events, "records": s.records, "outside": s.outside,
                "unattributed": s.unattributed, "by_lineage": s.by_lineage, "unresolved": s.unresolved,
                "folded": s.folded, "overflows": s.overflows, "forks": s.forks,
                "connector_lost": s.connector_lost, "lineage": s.lineage,
                "marked_filesystems": len(self.marked)}

    def stop(self) -> None:
        if self._handle is None:
            return
        self._final_stats = self.stats()
        lib.aegis_fan_free(self._handle)
        self._handle = None
        self.cgroup.remove()


def available() -> bool:
    """fanotify filesystem marks (root/CAP_SYS_ADMIN) and a cgroup v2 mount."""
    from aegis.sandbox.capabilities import cgroup2_mount

    return lib.aegis_probe_fanotify() > 0 and cgroup2_mount() is not None
