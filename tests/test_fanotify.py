"""The fanotify observer with real processes: what a child in the session cgroup
does appears with the right pids; what processes outside it do does not."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from support import aegis_import_root

from aegis.errors import AegisError
from aegis.ledger import Event
from aegis.native import lib

fanotify = pytest.importorskip("aegis.observer.fanotify")

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not fanotify.available(), reason="fanotify marks need root and a cgroup v2 mount"),
]


def start_waiting_child(script: str, cwd: Path) -> subprocess.Popen[bytes]:
    """A Python child that runs ``script`` only after a line on stdin (so it can be
    moved into the cgroup first, as the sandbox does between fork and exec)."""
    code = "import sys\nsys.stdin.readline()\n" + textwrap.dedent(script)
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, cwd=cwd)


def observe(script: str, cwd: Path, *, ring_capacity: int = fanotify.RING_CAPACITY,
            outside: str | None = None, drain_delay: float = 0.0) -> tuple[list[Event], int, dict[str, int]]:
    """Run ``script`` in the session cgroup (and ``outside`` beside it, not in the
    cgroup); return the events, the child's pid and the observer's stats."""
    observer = fanotify.FanotifyObserver(session_id=f"test-{uuid.uuid4().hex[:8]}",
                                         ring_capacity=ring_capacity)
    events: list[Event] = []
    try:
        child = start_waiting_child(script, cwd)
        observer.attach(child.pid)
        if outside is not None:
            subprocess.run([sys.executable, "-c", outside], cwd=cwd, check=True)
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(drain_delay)
            events.extend(observer.drain())
            if observer.finished():
                break
        events.extend(observer.drain())
        assert child.wait(timeout=10) == 0
        assert observer.take_dropped() == 0
        stats = observer.stats()
    finally:
        observer.stop()
    return events, child.pid, stats


def in_dir(events: list[Event], directory: Path) -> list[Event]:
    return [e for e in events if e.resource.startswith(f"{directory}/")]


def test_child_file_actions_are_recorded_with_its_pid(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "existing.txt").write_text("data")
    script = f"""
        import os
        w = {str(work)!r}
        open(w + '/existing.txt').read()
        open(w + '/new.txt', 'w').write('hello')
        with open(w + '/existing.txt', 'a') as f:
            f.write('more')
        os.mkdir(w + '/sub')
        os.listdir(w + '/sub')
        os.rename(w + '/new.txt', w + '/sub/moved.txt')
        os.unlink(w + '/existing.txt')
    """
    events, pid, stats = observe(script, tmp_path)
    seen = {(e.action, e.resource) for e in in_dir(events, work) if e.pid == pid}
    assert {
        ("FileRead", f"{work}/existing.txt"),
        ("FileWrite", f"{work}/new.txt"),
        ("FileWrite", f"{work}/existing.txt"),
        ("DirCreate", f"{work}/sub"),
        ("DirList", f"{work}/sub"),
        ("FileDelete", f"{work}/new.txt"),
        ("FileWrite", f"{work}/sub/moved.txt"),
        ("FileDelete", f"{work}/existing.txt"),
    } <= seen
    mine = [e for e in in_dir(events, work) if e.pid == pid]
    assert all(e.source == "fanotify" and e.decision == "allow" for e in mine)
    odd = [e for e in mine if (e.ppid, e.executable) != (os.getpid(), os.path.realpath(sys.executable))]
    assert not odd, [(e.action, e.pid, e.ppid, e.executable) for e in odd]
    # a write session is one FileWrite, not one per write()
    assert sum(1 for e in mine if (e.action, e.resource) == ("FileWrite", f"{work}/new.txt")) == 1
    assert stats["records"] >= len(mine) and stats["marked_filesystems"] >= 1


def test_grandchild_exec_is_a_spawn_with_argv_and_its_own_pid(tmp_path: Path) -> None:
    target = tmp_path / "read-by-cat.txt"
    target.write_text("x")
    # cat waits on its stdin for a moment: a process that exits and is reaped
    # before the reader sees its first event cannot be attributed (it is counted
    # in stats["unattributed"]), which is not what this test is about.
    script = f"""
        import subprocess, sys, time
        p = subprocess.Popen(['/bin/cat', {str(target)!r}, '-'], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL)
        time.sleep(0.5)
        p.stdin.close()
        sys.exit(p.wait())
    """
    events, pid, _ = observe(script, tmp_path)
    spawns = [e for e in events if e.action == "ProcessSpawn" and e.resource == os.path.realpath("/bin/cat")]
    assert len(spawns) == 1
    spawn = spawns[0]
    assert spawn.pid != pid and spawn.ppid == pid
    assert spawn.details["argv"] == ["/bin/cat", str(target), "-"]
    reads = [e for e in events if e.action == "FileRead" and e.resource == str(target)]
    assert [e.pid for e in reads] == [spawn.pid]
    assert reads[0].executable == os.path.realpath("/bin/cat")
    # the ELF loader opened by the same execve is a read, not a second spawn
    assert sum(1 for e in events if e.action == "ProcessSpawn" and e.pid == spawn.pid) == 1


def test_short_lived_children_are_attributed_after_they_are_reaped(tmp_path: Path) -> None:
    """Events are read after the fact: each `cat` below is usually gone (reaped)
    before its events are read; its fork lineage still makes it the session's."""
    files = [tmp_path / f"short-{i}.txt" for i in range(20)]
    for f in files:
        f.write_text("x")
    script = f"""
        import subprocess
        for name in {[str(f) for f in files]!r}:
            subprocess.run(['/bin/cat', name], stdout=subprocess.DEVNULL, check=True)
    """
    events, pid, stats = observe(script, tmp_path)
    prefix = f"{tmp_path}/short-"
    reads = {e.resource: e for e in events if e.action == "FileRead" and e.resource.startswith(prefix)}
    assert set(reads) == {str(f) for f in files}
    assert len({e.pid for e in reads.values()}) == len(files)
    assert all(e.ppid == pid and e.executable == os.path.realpath("/bin/cat") for e in reads.values())
    spawns = [e for e in events if e.action == "ProcessSpawn" and e.ppid == pid]
    assert len(spawns) == len(files)
    assert stats["lineage"] == 1 and stats["forks"] >= len(files)


def test_processes_outside_the_cgroup_are_not_recorded(tmp_path: Path) -> None:
    work = tmp_path / "shared"
    work.mkdir()
    inside = f"open({str(work / 'inside.txt')!r}, 'w').write('in')"
    outside = (f"open({str(work / 'outside.txt')!r}, 'w').write('out')\n"
               f"open({str(work / 'inside.txt')!r}, 'w')")
    (work / "by-test.txt").write_text("written by the test process itself")
    events, pid, stats = observe(inside, tmp_path, outside=outside)
    resources = {e.resource for e in in_dir(events, work)}
    assert f"{work}/inside.txt" in resources
    assert f"{work}/outside.txt" not in resources
    assert f"{work}/by-test.txt" not in resources
    assert {e.pid for e in in_dir(events, work)} == {pid}
    assert stats["outside"] > 0


def test_a_small_ring_waits_for_the_consumer_instead_of_dropping(tmp_path: Path) -> None:
    work = tmp_path / "many"
    work.mkdir()
    for i in range(300):
        (work / f"f{i}").write_text("x")
    script = f"""
        import os
        for name in os.listdir({str(work)!r}):
            open(os.path.join({str(work)!r}, name)).read()
    """
    events, pid, _ = observe(script, tmp_path, ring_capacity=4, drain_delay=0.001)
    reads = {e.resource for e in in_dir(events, work) if e.action == "FileRead" and e.pid == pid}
    assert reads == {f"{work}/f{i}" for i in range(300)}


def test_pid_in_cgroup_matches_the_session_and_below_only(tmp_path: Path) -> None:
    cgroup = fanotify.SessionCgroup(f"test-{uuid.uuid4().hex[:8]}")
    child = start_waiting_child("", tmp_path)
    try:
        name = cgroup.relative.encode()
        assert lib.aegis_pid_in_cgroup(child.pid, name) == 0
        cgroup.add(child.pid)
        assert lib.aegis_pid_in_cgroup(child.pid, name) == 1
        assert lib.aegis_pid_in_cgroup(child.pid, b"/" + fanotify.CGROUP_PARENT.encode()) == 1
        assert lib.aegis_pid_in_cgroup(child.pid, name[:-1]) == 0  # "/aegis/s1" is not "/aegis/s10"
        assert lib.aegis_pid_in_cgroup(os.getpid(), name) == 0
        assert cgroup.populated()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
        cgroup.remove()
    assert lib.aegis_pid_in_cgroup(child.pid, b"/aegis") < 0  # reaped: /proc/PID is gone
    assert not cgroup.path.exists()


def test_stop_kills_what_is_left_in_the_cgroup(tmp_path: Path) -> None:
    observer = fanotify.FanotifyObserver(session_id=f"test-{uuid.uuid4().hex[:8]}")
    child = subprocess.Popen(["sleep", "60"])
    observer.attach(child.pid)
    assert not observer.finished()
    observer.stop()
    assert child.wait(timeout=5) == -9
    assert not observer.cgroup.path.exists()
    assert observer.finished() and observer.stats()["marked_filesystems"] >= 1


def test_unprivileged_start_fails_with_a_clear_error(unprivileged: list[str], tmp_path: Path) -> None:
    code = ("from aegis.errors import AegisError\n"
            "from aegis.native import ffi, lib\n"
            "ring = lib.aegis_ring_new(8)\n"
            "err = ffi.new('int *')\n"
            "fan = lib.aegis_fan_new(ring, b'/aegis/x', lib.AEGIS_FAN_DEFAULT_MASK, err)\n"
            "rc = lib.aegis_fan_mark(fan, b'/') if fan != ffi.NULL else err[0]\n"
            "print(rc)\n")
    env = {**os.environ, "PYTHONPATH": aegis_import_root()}
    proc = subprocess.run([*unprivileged, sys.executable, "-c", code], capture_output=True, text=True,
                          cwd="/", env=env)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) < 0  # EPERM: filesystem marks need CAP_SYS_ADMIN


def test_observer_refuses_a_cgroup_that_exists() -> None:
    name = f"test-{uuid.uuid4().hex[:8]}"
    first = fanotify.SessionCgroup(name)
    try:
        with pytest.raises(AegisError, match="cannot create the session cgroup"):
            fanotify.SessionCgroup(name)
    finally:
        first.remove()
