"""Snapshot diff: which files did this session change, exactly?

At session start and end every writable root is walked and each entry fingerprinted:
kind, size, mtime, ctime, mode, inode and, for regular files, an xxh3-128 of the
content read in chunks (for symlinks the target; links are recorded, never followed).
The two snapshots are diffed into "FileChange" events (created, modified, deleted,
mode_changed, renamed = same inode at a new path), each flagged ``unobserved`` when
the observer recorded no write, delete or creation of that path.

Cost control:
- At session end a file whose size, mtime, ctime and inode equal the start's is not
  re-read. ctime is included because an agent can restore mtime with ``utimensat``
  but cannot set ctime. A file whose timestamps fall within ``RACY_WINDOW_NS`` of the
  earlier walk is re-read anyway: it may have changed again within the same
  timestamp tick (git's "racily clean" problem).
- The end snapshot is stored in full, compressed, in a sidecar SQLite file next to the
  config (``snapshots.sqlite``), and the next session's start reuses its digests by
  the same rule. The ledger's summary note carries the stored blob's xxh3, so the
  sidecar can be checked against the hash-chained ledger. The start snapshot lives
  only in memory until the diff is written.
- ``max_bytes`` (config ``snapshot.max_bytes``, 0 = no cap) bounds the size of a file
  whose content is hashed; larger files are compared by metadata alone.
- The walk stays on each root's filesystem (like ``find -xdev``) and skips Aegis's
  own state (``exclude``).
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
import struct
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from aegis.actions import MUTATING_ACTIONS
from aegis.ledger import Event

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.ledger import Ledger

KIND_FILE, KIND_DIR, KIND_LINK, KIND_OTHER = "file", "dir", "link", "other"
_KIND_CODES = (KIND_FILE, KIND_DIR, KIND_LINK, KIND_OTHER)
CHUNK_BYTES = 1 << 20
RACY_WINDOW_NS = 2_000_000_000
STORE_FILE = "snapshots.sqlite"
STORE_KEEP = 5
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One entry of a snapshot. ``digest`` is the xxh3-128 of a file's content (b"" when
    it was over the size cap or unreadable), a symlink's target, b"" otherwise."""

    kind: str
    size: int
    mtime_ns: int
    ctime_ns: int
    mode: int
    inode: int
    dev: int
    digest: bytes = b""

    def same_metadata(self, other: Fingerprint) -> bool:
        return (self.kind == other.kind and self.size == other.size and self.mtime_ns == other.mtime_ns
                and self.ctime_ns == other.ctime_ns and self.inode == other.inode and self.dev == other.dev)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "size": self.size,
                                "mode": f"{stat.S_IMODE(self.mode):04o}", "mtime_ns": self.mtime_ns,
                                "inode": self.inode}
        if self.kind == KIND_FILE and self.digest:
            data["xxh3_128"] = self.digest.hex()
        elif self.kind == KIND_LINK:
            data["target"] = self.digest.decode("utf-8", "surrogateescape")
        return data


@dataclass
class Snapshot:
    """Fingerprints by absolute path, and what taking them cost."""

    roots: list[str]
    taken_ns: int
    entries: dict[str, Fingerprint] = field(default_factory=dict)
    files_hashed: int = 0
    bytes_hashed: int = 0
    digests_reused: int = 0
    unhashed: int = 0


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return KIND_FILE
    if stat.S_ISDIR(mode):
        return KIND_DIR
    if stat.S_ISLNK(mode):
        return KIND_LINK
    return KIND_OTHER


def hash_file(path: str, inode: int) -> bytes:
    """xxh3-128 of a regular file's content, streamed; b"" if it cannot be read or was
    swapped for something else since it was stat'ed."""
    try:
        # O_NOATIME avoids an inode write per file read; only the owner (or root) may use it.
        fd = os.open(path, _OPEN_FLAGS | os.O_NOATIME)
    except PermissionError:
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError:
            return b""
    except OSError:
        return b""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_ino != inode:
            return b""
        if st.st_blocks * 512 < st.st_size:
            return _hash_sparse(fd, st.st_size)
        chunk = os.read(fd, CHUNK_BYTES)
        if len(chunk) < CHUNK_BYTES:
            return xxhash.xxh3_128_digest(chunk)
        hasher = xxhash.xxh3_128(chunk)
        while chunk := os.read(fd, CHUNK_BYTES):
            hasher.update(chunk)
        return hasher.digest()
    except OSError:
        return b""
    finally:
        os.close(fd)


def _hash_sparse(fd: int, size: int) -> bytes:
    """Digest of a file with holes, over its data extents and their offsets only.

    Reading a hole costs the kernel as much as reading data, so an agent could make
    a 32 GiB file in an instant (`truncate -s 32G`) and stall the end of its session
    for most of a minute. Any change of content still changes this digest; a file
    whose holes are filled or punched without a content change is merely reported
    modified (over-reporting, never a missed change)."""
    hasher = xxhash.xxh3_128(b"aegis-sparse\0" + size.to_bytes(8, "little"))
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after offset: the rest is a hole
                break
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        hasher.update(start.to_bytes(8, "little") + (end - start).to_bytes(8, "little"))
        os.lseek(fd, start, os.SEEK_SET)
        remaining = end - start
        while remaining > 0 and (chunk := os.read(fd, min(CHUNK_BYTES, remaining))):
            hasher.update(chunk)
            remaining -= len(chunk)
        offset = end
    return hasher.digest()


def _distinct_roots(roots: Iterable[str | Path]) -> list[str]:
    """Absolute, symlink-resolved roots (observer paths are canonical), nested ones dropped."""
    resolved = sorted({os.path.realpath(r) for r in roots})
    kept: list[str] = []
    for root in resolved:
        if not any(root == k or root.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(root)
    return kept


def take_snapshot(roots: Iterable[str | Path], *, max_bytes: int = 0, exclude: Iterable[str | Path] = (),
                  reuse: Snapshot | None = None) -> Snapshot:
    """Walk ``roots`` and fingerprint every entry (the roots themselves included).

    ``reuse`` is an earlier snapshot whose digests are taken for files with unchanged
    metadata whose timestamps are older than that snapshot by ``RACY_WINDOW_NS``."""
    snapshot = Snapshot(_distinct_roots(roots), time.time_ns())
    excluded = {os.path.realpath(p) for p in exclude}
    previous = reuse.entries if reuse is not None else {}
    settled_before = reuse.taken_ns - RACY_WINDOW_NS if reuse is not None else 0
    entries = snapshot.entries
    for root in snapshot.roots:
        try:
            root_dev = os.lstat(root).st_dev
        except OSError:
            continue
        stack = [root]
        while stack:
            path = stack.pop()
            if path in excluded:
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue  # vanished during the walk
            mode = st.st_mode
            kind = _kind(mode)
            digest = b""
            if kind == KIND_FILE:
                if max_bytes and st.st_size > max_bytes:
                    snapshot.unhashed += 1
                else:
                    old = previous.get(path)
                    if (old is not None and old.digest and old.kind == KIND_FILE and old.size == st.st_size
                            and old.mtime_ns == st.st_mtime_ns and old.ctime_ns == st.st_ctime_ns
                            and old.inode == st.st_ino and old.dev == st.st_dev
                            and st.st_mtime_ns < settled_before and st.st_ctime_ns < settled_before):
                        digest = old.digest
                        snapshot.digests_reused += 1
                    else:
                        digest = hash_file(path, st.st_ino)
                        if digest:
                            snapshot.files_hashed += 1
                            snapshot.bytes_hashed += st.st_size
                        else:
                            snapshot.unhashed += 1
            elif kind == KIND_LINK:
                try:
                    digest = os.fsencode(os.readlink(path))
                except OSError:
                    digest = b""
            entries[path] = Fingerprint(kind, st.st_size, st.st_mtime_ns, st.st_ctime_ns, mode, st.st_ino,
                                        st.st_dev, digest)
            if kind == KIND_DIR and st.st_dev == root_dev:
                try:
                    with os.scandir(path) as it:
                        stack.extend(entry.path for entry in it)
                except OSError:
                    continue
    return snapshot


@dataclass(frozen=True)
class FileChange:
    """One difference between two snapshots."""

    change: str  # "created" | "modified" | "deleted" | "mode_changed" | "renamed"
    path: str
    before: Fingerprint | None
    after: Fingerprint | None
    old_path: str = ""

    @property
    def content_changed(self) -> bool:
        return (self.before is not None and self.after is not None
                and _content_differs(self.before, self.after))

    @property
    def mode_changed(self) -> bool:
        return (self.before is not None and self.after is not None
                and stat.S_IMODE(self.before.mode) != stat.S_IMODE(self.after.mode))


def _content_differs(a: Fingerprint, b: Fingerprint) -> bool:
    if a.kind != b.kind:
        return True
    if a.kind == KIND_FILE:
        if a.digest and b.digest:
            return a.digest != b.digest
        return not a.same_metadata(b)
    return a.kind == KIND_LINK and a.digest != b.digest


def _implied_by_directory_rename(old: str, new: str, dir_renames: dict[str, str]) -> bool:
    parent = os.path.dirname(old)
    while parent and parent != "/":
        moved = dir_renames.get(parent)
        if moved is not None:
            return new == moved + old[len(parent):]
        parent = os.path.dirname(parent)
    return False


def diff_snapshots(before: Snapshot, after: Snapshot) -> list[FileChange]:
    """Created, deleted, modified, mode-changed and renamed entries, sorted by path.

    A deleted and a created entry with the same device, inode and kind are one rename;
    entries carried along by a renamed directory (same relative name, unchanged) are
    not listed apart from it."""
    old, new = before.entries, after.entries
    deleted = {p: fp for p, fp in old.items() if p not in new}
    created = {p: fp for p, fp in new.items() if p not in old}
    by_inode: dict[tuple[int, int, str], str | None] = {}
    for path, fp in deleted.items():
        key = (fp.dev, fp.inode, fp.kind)
        by_inode[key] = None if key in by_inode else path  # ambiguous when an inode repeats
    renames: dict[str, str] = {}
    for path, fp in created.items():
        source = by_inode.get((fp.dev, fp.inode, fp.kind))
        if source is not None:
            renames[path] = source
    dir_renames = {src: dst for dst, src in renames.items() if new[dst].kind == KIND_DIR}
    changes: list[FileChange] = []
    for path, source in renames.items():
        change = FileChange("renamed", path, old[source], new[path], old_path=source)
        if not (_implied_by_directory_rename(source, path, dir_renames)
                and not change.content_changed and not change.mode_changed):
            changes.append(change)
        del deleted[source]
        del created[path]
    changes.extend(FileChange("deleted", p, fp, None) for p, fp in deleted.items())
    changes.extend(FileChange("created", p, None, fp) for p, fp in created.items())
    for path, fp in old.items():
        after_fp = new.get(path)
        if after_fp is None:
            continue
        change = FileChange("modified", path, fp, after_fp)
        if change.content_changed:
            changes.append(change)
        elif change.mode_changed:
            changes.append(FileChange("mode_changed", path, fp, after_fp))
    changes.sort(key=lambda c: (c.path, c.change))
    return changes


_RECORD = struct.Struct("<HBQqqIQQH")


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """Compact binary form: zlib over fixed-size records sorted by path."""
    parts = []
    for path in sorted(snapshot.entries):
        fp = snapshot.entries[path]
        raw = os.fsencode(path)
        parts.append(_RECORD.pack(len(raw), _KIND_CODES.index(fp.kind), fp.size, fp.mtime_ns, fp.ctime_ns,
                                  fp.mode, fp.inode, fp.dev, len(fp.digest)))
        parts.append(raw)
        parts.append(fp.digest)
    return zlib.compress(b"".join(parts), 6)


def decode_snapshot(blob: bytes, roots: list[str], taken_ns: int) -> Snapshot:
    data = zlib.decompress(blob)
    snapshot = Snapshot(roots, taken_ns)
    offset = 0
    while offset < len(data):
        path_len, kind, size, mtime, ctime, mode, inode, dev, digest_len = _RECORD.unpack_from(data, offset)
        offset += _RECORD.size
        path = os.fsdecode(data[offset:offset + path_len])
        offset += path_len
        digest = data[offset:offset + digest_len]
        offset += digest_len
        snapshot.entries[path] = Fingerprint(_KIND_CODES[kind], size, mtime, ctime, mode, inode, dev, digest)
    return snapshot


class SnapshotStore:
    """End snapshots of recent sessions in a sidecar SQLite file (the newest ``STORE_KEEP``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS snapshots (session_id TEXT PRIMARY KEY, "
                         "taken_ns INTEGER NOT NULL, roots TEXT NOT NULL, entries INTEGER NOT NULL, "
                         "xxh3_128 TEXT NOT NULL, data BLOB NOT NULL)")

    def save(self, session_id: str, snapshot: Snapshot) -> str:
        """Store ``snapshot`` for ``session_id``; returns the xxh3-128 (hex) of the stored blob."""
        blob = encode_snapshot(snapshot)
        digest = xxhash.xxh3_128_hexdigest(blob)
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?, ?)",
                             (session_id, snapshot.taken_ns, json.dumps(snapshot.roots),
                              len(snapshot.entries), digest, blob))
            self._db.execute("DELETE FROM snapshots WHERE session_id NOT IN (SELECT session_id "
                             "FROM snapshots ORDER BY taken_ns DESC LIMIT ?)", (STORE_KEEP,))
        return digest

    def load(self, session_id: str) -> Snapshot | None:
        row = self._db.execute("SELECT data, roots, taken_ns FROM snapshots WHERE session_id = ?",
                               (session_id,)).fetchone()
        return decode_snapshot(row[0], json.loads(row[1]), row[2]) if row else None

    def latest(self, roots: Iterable[str | Path]) -> Snapshot | None:
        """The newest stored snapshot of exactly these roots (a digest cache for the next walk)."""
        key = json.dumps(_distinct_roots(roots))
        row = self._db.execute("SELECT data, roots, taken_ns FROM snapshots WHERE roots = ? "
                               "ORDER BY taken_ns DESC LIMIT 1", (key,)).fetchone()
        return decode_snapshot(row[0], json.loads(row[1]), row[2]) if row else None

    def close(self) -> None:
        self._db.close()


def observed_mutations(events: Iterable[Event]) -> set[str]:
    """Paths the observer saw written, deleted or created: what explains a change on disk."""
    return {e.resource for e in events if e.action in MUTATING_ACTIONS}


def _change_event(change: FileChange, unobserved: bool, session_id: str) -> Event:
    details: dict[str, Any] = {"change": change.change, "unobserved": unobserved}
    if change.old_path:
        details["from"] = change.old_path
    if change.before is not None:
        details["before"] = change.before.to_json()
    if change.after is not None:
        details["after"] = change.after.to_json()
    if change.change == "renamed":
        details["content_changed"] = change.content_changed
    what = f"{change.change} (from {change.old_path})" if change.old_path else change.change
    reason = f"{what}; not seen by the observer" if unobserved else what
    return Event(action="FileChange", resource=change.path, decision="info", session_id=session_id,
                 source="snapshot", reason=reason, details=details)


class SnapshotNet:
    """The snapshot net for one session: ``start`` before the agent runs, ``finish`` after."""

    def __init__(self, roots: list[str], max_bytes: int, exclude: list[str], store: SnapshotStore | None,
                 start_snapshot: Snapshot, start_seconds: float) -> None:
        self.roots = roots
        self.max_bytes = max_bytes
        self.exclude = exclude
        self.store = store
        self.start_snapshot: Snapshot | None = start_snapshot
        self.start_seconds = start_seconds

    @classmethod
    def start(cls, roots: Iterable[str | Path], *, max_bytes: int = 0, exclude: Iterable[str | Path] = (),
              store: SnapshotStore | None = None) -> SnapshotNet:
        """Fingerprint ``roots`` now, reusing digests from the store's last snapshot of them."""
        roots_list = _distinct_roots(roots)
        excluded = [str(p) for p in exclude]
        began = time.perf_counter()
        cached = store.latest(roots_list) if store is not None else None
        snapshot = take_snapshot(roots_list, max_bytes=max_bytes, exclude=excluded, reuse=cached)
        return cls(roots_list, max_bytes, excluded, store, snapshot, time.perf_counter() - began)

    @classmethod
    def for_config(cls, config: Config, extra_roots: Iterable[str | Path] = ()) -> SnapshotNet:
        """Start on the config's project directory plus ``extra_roots`` (the policy's other
        writable roots), with its size cap, its sidecar store, Aegis's state excluded."""
        from aegis.paths import aegis_home

        store = SnapshotStore(config.directory / STORE_FILE)
        exclude = [config.directory, config.ledger_path.parent, aegis_home()]
        return cls.start([config.project_dir, *extra_roots], max_bytes=config.snapshot_max_bytes,
                         exclude=exclude, store=store)

    def finish(self, observed_paths: Iterable[str] = (), *, session_id: str = "") -> list[Event]:
        """Fingerprint again and return one "FileChange" event per change, then a summary
        "ObserverNote". ``observed_paths``: paths the observer recorded as mutated (see
        ``observed_mutations``); a change to any other path is flagged ``unobserved``."""
        if self.start_snapshot is None:
            raise RuntimeError("SnapshotNet.finish called twice")
        began = time.perf_counter()
        end = take_snapshot(self.roots, max_bytes=self.max_bytes, exclude=self.exclude,
                            reuse=self.start_snapshot)
        changes = diff_snapshots(self.start_snapshot, end)
        self.start_snapshot = None
        observed = set(observed_paths)
        events = []
        unobserved_count = 0
        for change in changes:
            unobserved = change.path not in observed and change.old_path not in observed
            unobserved_count += unobserved
            events.append(_change_event(change, unobserved, session_id))
        details: dict[str, Any] = {
            "net": "snapshot", "roots": self.roots, "entries": len(end.entries),
            "changes": dict(Counter(c.change for c in changes)), "unobserved": unobserved_count,
            "files_hashed": end.files_hashed, "bytes_hashed": end.bytes_hashed,
            "digests_reused": end.digests_reused, "unhashed": end.unhashed, "max_bytes": self.max_bytes,
            "start_seconds": round(self.start_seconds, 3),
            "end_seconds": round(time.perf_counter() - began, 3),
        }
        if self.store is not None:
            details["end_snapshot"] = {"store": str(self.store.path),
                                       "xxh3_128": self.store.save(session_id, end)}
            self.store.close()
        reason = f"snapshot diff: {len(changes)} change(s), {unobserved_count} not seen by the observer"
        events.append(Event(action="ObserverNote", resource="file-changes", decision="info",
                            session_id=session_id, source="snapshot", reason=reason, details=details))
        return events


def changes_for_session(ledger: Ledger, session_id: str) -> list[dict[str, Any]]:
    """The session's snapshot changes from the ledger (``aegis audit session NAME --id ID --changes``)."""
    rows = []
    for entry in ledger.query(session=session_id, action="FileChange"):
        details = entry.details
        rows.append({"seq": entry.seq, "ts_ns": entry.ts_ns, "change": details.get("change", ""),
                     "path": entry.resource, "from": details.get("from", ""),
                     "unobserved": bool(details.get("unobserved")), "before": details.get("before"),
                     "after": details.get("after")})
    return rows


def changes_table(changes: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows for ``echo_table`` from ``changes_for_session``'s result."""
    return (["CHANGE", "PATH", "FROM", "OBSERVED"],
            [[c["change"], c["path"], c["from"], "no" if c["unobserved"] else "yes"] for c in changes])
