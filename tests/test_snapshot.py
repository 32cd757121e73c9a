"""Snapshot diff on real directory trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import xxhash

from aegis.ledger import Event, Ledger
from aegis.nets.snapshot import (
    CHUNK_BYTES,
    SnapshotNet,
    SnapshotStore,
    changes_for_session,
    changes_table,
    decode_snapshot,
    diff_snapshots,
    encode_snapshot,
    observed_mutations,
    take_snapshot,
)


def _tree(root: Path) -> Path:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "a.py").write_text("print('a')\n")
    (root / "src" / "pkg" / "b.py").write_text("print('b')\n")
    (root / "README").write_text("readme\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "gone.txt").write_text("delete me\n")
    return root


def _changes(before, after) -> dict[str, str]:
    return {c.path: c.change for c in diff_snapshots(before, after)}


def test_detects_create_modify_delete_chmod_rename(tmp_path: Path) -> None:
    root = _tree(tmp_path / "project")
    before = take_snapshot([root])
    (root / "new.txt").write_text("new\n")
    (root / "src" / "pkg" / "a.py").write_text("print('A')\n")  # same size, new content
    (root / "gone.txt").unlink()
    os.chmod(root / "run.sh", 0o755)
    os.rename(root / "README", root / "README.md")
    (root / "docs").mkdir()
    after = take_snapshot([root])

    changes = diff_snapshots(before, after)
    assert {c.path: c.change for c in changes} == {
        str(root / "new.txt"): "created",
        str(root / "src" / "pkg" / "a.py"): "modified",
        str(root / "gone.txt"): "deleted",
        str(root / "run.sh"): "mode_changed",
        str(root / "README.md"): "renamed",
        str(root / "docs"): "created",
    }
    rename = next(c for c in changes if c.change == "renamed")
    assert rename.old_path == str(root / "README") and not rename.content_changed
    modified = next(c for c in changes if c.change == "modified")
    assert modified.after is not None and modified.after.digest == xxhash.xxh3_128_digest(b"print('A')\n")


def test_unchanged_tree_has_no_changes_and_reuses_digests(tmp_path: Path) -> None:
    root = _tree(tmp_path / "project")
    old = 1_600_000_000_000_000_000
    for path in root.rglob("*"):
        os.utime(path, ns=(old, old))
    before = take_snapshot([root])
    assert before.files_hashed == 5
    # ctime is "now", inside the racy window of the first walk: a walk that late re-reads.
    after = take_snapshot([root], reuse=before)
    assert diff_snapshots(before, after) == []
    before.taken_ns += 10_000_000_000  # as if the first walk were older than every ctime
    later = take_snapshot([root], reuse=before)
    assert later.files_hashed == 0 and later.digests_reused == 5


def test_restored_mtime_does_not_hide_a_modification(tmp_path: Path) -> None:
    root = _tree(tmp_path / "project")
    target = root / "src" / "pkg" / "b.py"
    st = target.stat()
    before = take_snapshot([root])
    before.taken_ns += 10_000_000_000  # digests would be reused if metadata matched
    target.write_text("print('X')\n")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # agent puts the mtime back
    after = take_snapshot([root], reuse=before)
    assert _changes(before, after) == {str(target): "modified"}


def test_large_file_streamed_and_size_cap(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    big = root / "big.bin"
    payload = os.urandom(CHUNK_BYTES * 2 + 123)
    big.write_bytes(payload)
    snap = take_snapshot([root])
    assert snap.entries[str(big)].digest == xxhash.xxh3_128_digest(payload)
    capped = take_snapshot([root], max_bytes=1024)
    assert capped.entries[str(big)].digest == b"" and capped.unhashed == 1
    # over the cap a change is still seen through its metadata
    with big.open("ab") as fh:
        fh.write(b"more")
    assert _changes(capped, take_snapshot([root], max_bytes=1024)) == {str(big): "modified"}


def test_symlink_out_of_tree_recorded_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "escape").symlink_to(outside)
    (root / "file-link").symlink_to(outside / "secret.txt")
    before = take_snapshot([root])
    assert set(before.entries) == {str(root), str(root / "escape"), str(root / "file-link")}
    link = before.entries[str(root / "escape")]
    assert link.kind == "link" and link.digest == os.fsencode(str(outside))
    (outside / "secret.txt").write_text("changed outside")
    (root / "file-link").unlink()
    (root / "file-link").symlink_to(tmp_path / "elsewhere")
    assert _changes(before, take_snapshot([root])) == {str(root / "file-link"): "modified"}


def test_directory_rename_reported_once(tmp_path: Path) -> None:
    root = _tree(tmp_path / "project")
    before = take_snapshot([root])
    os.rename(root / "src", root / "lib")
    (root / "lib" / "pkg" / "b.py").write_text("changed while moved\n")
    changes = _changes(before, take_snapshot([root]))
    assert changes == {str(root / "lib"): "renamed", str(root / "lib" / "pkg" / "b.py"): "renamed"}


def test_excluded_paths_and_nested_roots(tmp_path: Path) -> None:
    root = _tree(tmp_path / "project")
    state = root / ".aegis-state"
    state.mkdir()
    (state / "ledger.db").write_text("x")
    snap = take_snapshot([root, root / "src"], exclude=[state])
    assert snap.roots == [str(root)]
    assert not any(p.startswith(str(state)) for p in snap.entries)


def test_encoded_snapshot_round_trips(tmp_path: Path) -> None:
    root = _tree(tmp_path / "project")
    (root / "link").symlink_to("README")
    (root / "naïve file\nname").write_text("odd name")
    snap = take_snapshot([root])
    blob = encode_snapshot(snap)
    back = decode_snapshot(blob, snap.roots, snap.taken_ns)
    assert back.entries == snap.entries


def test_net_flags_unobserved_changes_and_stores_end_snapshot(tmp_path: Path) -> None:
    root = _tree(tmp_path / "project")
    store_path = tmp_path / "state" / "snapshots.sqlite"
    net = SnapshotNet.start([root], store=SnapshotStore(store_path))
    (root / "seen.txt").write_text("observer saw this write\n")
    (root / "unseen.txt").write_text("written behind the observer's back\n")
    observer_events = [Event(action="FileWrite", resource=str(root / "seen.txt"), decision="allow"),
                       Event(action="FileRead", resource=str(root / "unseen.txt"), decision="allow")]
    events = net.finish(observed_mutations(observer_events), session_id="sess-1")

    changes = {e.resource: e for e in events if e.action == "FileChange"}
    assert set(changes) == {str(root / "seen.txt"), str(root / "unseen.txt")}
    assert changes[str(root / "seen.txt")].details["unobserved"] is False
    assert changes[str(root / "unseen.txt")].details["unobserved"] is True
    assert all(e.source == "snapshot" and e.session_id == "sess-1" for e in events)
    note = events[-1]
    assert note.action == "ObserverNote"
    assert note.details["unobserved"] == 1 and note.details["changes"] == {"created": 2}

    store = SnapshotStore(store_path)
    stored = store.load("sess-1")
    assert stored is not None and str(root / "unseen.txt") in stored.entries
    assert note.details["end_snapshot"]["xxh3_128"] == xxhash.xxh3_128_hexdigest(encode_snapshot(stored))
    # the next session's start reuses the stored digests of settled files
    assert store.latest([root]) is not None
    store.close()
    with pytest.raises(RuntimeError):
        net.finish()


def test_changes_recorded_in_ledger_and_listed_per_session(tmp_path: Path) -> None:
    root = _tree(tmp_path / "project")
    ledger = Ledger.open(tmp_path / "ledger.db")
    session_id = ledger.begin_session(command=["agent"], cwd=str(root), policy_hash="h", observer="seccomp",
                                      config="demo")
    net = SnapshotNet.start([root])
    (root / "README").write_text("edited\n")
    os.rename(root / "gone.txt", root / "kept.txt")
    observed = [Event(action="FileWrite", resource=str(root / "README"), decision="allow",
                      session_id=session_id)]
    ledger.append(observed)
    ledger.append(net.finish(observed_mutations(observed), session_id=session_id))
    other = ledger.begin_session(command=["agent"], cwd=str(root), policy_hash="h", observer="seccomp",
                                 config="demo")
    ledger.append([Event(action="FileChange", resource="/elsewhere", decision="info", session_id=other,
                         source="snapshot", details={"change": "created", "unobserved": True})])

    changes = changes_for_session(ledger, session_id)
    assert [(c["change"], c["path"], c["from"], c["unobserved"]) for c in changes] == [
        ("modified", str(root / "README"), "", False),
        ("renamed", str(root / "kept.txt"), str(root / "gone.txt"), True),
    ]
    assert changes[0]["before"]["xxh3_128"] != changes[0]["after"]["xxh3_128"]
    headers, rows = changes_table(changes)
    assert headers[0] == "CHANGE"
    assert rows[1] == ["renamed", str(root / "kept.txt"), str(root / "gone.txt"), "no"]
    assert ledger.verify().ok
    ledger.close()


def test_for_config_uses_project_dir_cap_and_sidecar_store(tmp_path: Path, aegis_home: Path) -> None:
    from aegis.paths import config_dir
    from aegis.provision import create_config

    project = _tree(tmp_path / "project")
    config = create_config(config_dir("demo"), "demo", project_dir=project)
    config.snapshot_max_bytes = 4
    net = SnapshotNet.for_config(config, extra_roots=[tmp_path / "scratch"])
    assert net.roots == [str(project), str(tmp_path / "scratch")]
    (project / "README").write_text("changed\n")
    (tmp_path / "scratch").mkdir()  # a root missing at the start is walked at the end
    events = net.finish(session_id="s")
    assert [(e.action, e.resource, e.details.get("change")) for e in events][:2] == [
        ("FileChange", str(project / "README"), "modified"),
        ("FileChange", str(tmp_path / "scratch"), "created")]
    note = events[-1].details
    assert note["max_bytes"] == 4 and note["unhashed"] == 5  # every file is over 4 bytes
    assert Path(note["end_snapshot"]["store"]) == config.directory / "snapshots.sqlite"


def test_sparse_files_hash_their_data_not_their_holes(tmp_path):
    """A 64 GiB sparse file (made in an instant) is fingerprinted without reading its holes,
    and a change of content inside it, even one byte in the middle, changes the digest."""
    from aegis.nets.snapshot import hash_file

    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as fh:
        fh.truncate(64 << 30)
        fh.seek(32 << 30)
        fh.write(b"data in the middle")
    inode = sparse.stat().st_ino
    before = hash_file(str(sparse), inode)
    assert before
    assert hash_file(str(sparse), inode) == before
    with open(sparse, "r+b") as fh:
        fh.seek((32 << 30) + 5)
        fh.write(b"X")
    changed = hash_file(str(sparse), inode)
    assert changed and changed != before
    with open(sparse, "r+b") as fh:
        fh.seek(1 << 30)
        fh.write(b"new extent")
    assert hash_file(str(sparse), inode) not in (before, changed)
