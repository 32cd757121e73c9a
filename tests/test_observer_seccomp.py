"""The seccomp supervisor's own paths (csrc/observe_seccomp.c through
aegis/observer/seccomp.py): the one-walk open of a path without symlinks, the
general way it falls back to whenever the lexical path may not be the file, and
the thread waiting in SECCOMP_IOCTL_NOTIF_RECV (stopped by a signal)."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import shutil
import struct
import sys
from pathlib import Path

import pytest

from aegis.config import load_config
from aegis.ledger import open_ledger
from aegis.native import ffi, lib
from aegis.observer.seccomp import SeccompObserver
from aegis.policy.seccomp import SeccompSpec
from aegis.sandbox.linux import build_filter, children_of

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="seccomp supervisor")
CAT = os.path.realpath(shutil.which("cat") or "/bin/cat")


def recorded(name: str, action: str) -> list:
    ledger = open_ledger(load_config(name))
    try:
        return list(ledger.query(action=action))
    finally:
        ledger.close()


def test_plain_reads_are_answered_and_recorded_as_the_path_read(tmp_path: Path, run_aegis) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("alpha\n")
    (tmp_path / "b.txt").write_text("beta\n")
    proc = run_aegis("run", "--policy", "workspace-write", "--", "cat", "sub/a.txt", str(tmp_path / "b.txt"),
                     "missing.txt", cwd=tmp_path)
    assert proc.returncode == 1  # the missing file, answered with the kernel's own error
    assert proc.stdout == "alpha\nbeta\n"
    assert "No such file" in proc.stderr
    reads = {e.resource: e for e in recorded("cat", "FileRead")}
    for name in ("sub/a.txt", "b.txt", "missing.txt"):
        event = reads[str(tmp_path / name)]
        assert (event.decision, event.source, event.executable) == ("allow", "openat", CAT)


def test_symlink_to_a_forbidden_file_is_decided_on_the_target(tmp_path: Path, run_aegis) -> None:
    """The lexical path is allowed, its target is not: the one-walk open must not be
    taken (it refuses symlinks), and the general way denies the resolved path."""
    (tmp_path / ".env").write_text("SECRET=1\n")
    (tmp_path / "notes.txt").symlink_to(".env")
    (tmp_path / "linked").symlink_to(tmp_path)
    proc = run_aegis("run", "--policy", "workspace-write", "--", "cat", "notes.txt", "linked/.env", cwd=tmp_path)
    assert proc.returncode != 0
    assert "SECRET" not in proc.stdout
    denials = [e for e in recorded("cat", "FileRead") if e.decision == "deny"]
    assert [e.resource for e in denials] == [str(tmp_path / ".env")] * 2
    assert all(e.policy_ids == ["forbid-secrets"] for e in denials)


def test_forbidden_looking_symlink_to_an_allowed_file_is_read(tmp_path: Path, run_aegis) -> None:
    """The lexical path is denied, its target is allowed: decided again on the target."""
    (tmp_path / "plain.txt").write_text("harmless\n")
    (tmp_path / ".env").symlink_to("plain.txt")
    proc = run_aegis("run", "--policy", "workspace-write", "--", "cat", ".env", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "harmless\n"), proc.stderr
    reads = [(e.resource, e.decision) for e in recorded("cat", "FileRead") if e.resource.startswith(str(tmp_path))]
    assert reads == [(str(tmp_path / "plain.txt"), "allow")]


def test_blocking_reads_of_devices_and_directories_still_work(tmp_path: Path, run_aegis) -> None:
    """Blocking opens of anything but a regular file take the general way (a FIFO
    or a device is opened with care); directories and regular files take one walk."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    code = ("import os\n"
            "print(len(open('/dev/zero', 'rb').read(3)), sorted(os.listdir('d')), open('d/f').read())\n")
    proc = run_aegis("wrap", "--name", "devices", "--dir", str(tmp_path), "--", sys.executable, "-c", code,
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3 ['f'] x"
    assert str(tmp_path / "d") in {e.resource for e in recorded("devices", "DirList")}
    reads = {e.resource for e in recorded("devices", "FileRead")}
    assert {"/dev/zero", str(tmp_path / "d" / "f")} <= reads


def spawn_served(argv: list[str], cwd: Path) -> tuple[int, int, SeccompObserver, int]:
    """The agent spawned under the notifying filter, its supervisor serving it:
    (init pid, lifeline fd, observer, listener fd). The release waits for the exec,
    which is itself notified, so the observer starts first."""
    keep = [ffi.new("char[]", os.fsencode(a)) for a in argv]
    env = [ffi.new("char[]", os.fsencode(f"{k}={v}")) for k, v in os.environ.items()]
    c_argv, c_env = ffi.new("char *[]", [*keep, ffi.NULL]), ffi.new("char *[]", [*env, ffi.NULL])
    listener, control, lifeline = ffi.new("int *", -1), ffi.new("int *", -1), ffi.new("int *", -1)
    bpf = build_filter(SeccompSpec(), notify=True, deny_datagram=False)
    init = lib.aegis_spawn(os.fsencode(argv[0]), c_argv, c_env, os.fsencode(cwd), -1, -1, bpf,
                           lib.AEGIS_CONTAIN_NONE, ffi.NULL, 0, listener, control, lifeline, ffi.new("int *"))
    assert init > 0, os.strerror(-init)
    observer = SeccompObserver(listener[0], session_id="s", principal="p", policy_ids=[], table=None,
                               residual=lambda *_: (True, None, []), protected_paths=[])
    assert lib.aegis_spawn_release(control[0]) == 0
    assert len(children_of(init)) == 1  # the agent, running
    return init, lifeline[0], observer, listener[0]


def test_stop_ends_the_supervisor_while_the_agent_still_runs(tmp_path: Path) -> None:
    """The thread waits in RECV itself (no poll) where the kernel has the synchronous
    wake-up; stop() must still end it while an agent holds the filter, and the agent
    then loses its intercepted calls (fail closed)."""
    go = tmp_path / "go"
    script = f"while [ ! -e {go} ]; do sleep 0.01; done; cat /etc/hostname > {tmp_path / 'out'}"
    init, lifeline, observer, listener = spawn_served(["/bin/sh", "-c", script], tmp_path)
    try:
        stats = observer.stats()
        assert stats["blocking_recv"] == stats["sync_wakeup"]
        assert stats["blocking_recv"] == (lib.aegis_probe_notif_sync_wakeup() == 1)
        spawned = [e for e in observer.drain() if e.action == "ProcessSpawn"]
        assert spawned[0].details["argv"] == ["/bin/sh", "-c", script]
        assert not observer.finished()  # serving: the agent holds the filter
        observer.stop()  # returns only once the thread has ended: the signal interrupted its RECV
        os.close(listener)  # no supervisor: intercepted calls now fail with ENOSYS
        go.touch()
        status = struct.unpack("i", os.read(lifeline, 4))[0]
        assert os.waitstatus_to_exitcode(status) != 0  # the shell could not open its output file
        assert not (tmp_path / "out").exists()
    finally:
        os.close(lifeline)
        os.waitpid(init, 0)


@pytest.mark.parametrize("length", [255, 256, 257, 3000, 4095])
def test_remote_strings_longer_than_the_first_read(length: int) -> None:
    """A path is read in a short first read and, without a NUL in it, the rest."""
    text = bytes(ord("a") + i % 26 for i in range(length))
    data = ffi.new("char[]", text + b"\0")
    out = ffi.new("char[]", 4097)
    address = int(ffi.cast("uintptr_t", data))
    assert lib.aegis_read_remote_string(os.getpid(), address, out, 4097) == length
    assert ffi.buffer(out, length + 1)[:] == text + b"\0"
    assert lib.aegis_read_remote_string(os.getpid(), address, out, length) == -errno.ENAMETOOLONG


def test_long_remote_string_ending_before_an_unmapped_page() -> None:
    page = mmap.PAGESIZE
    buf = mmap.mmap(-1, 2 * page)
    text = b"/" + b"d" * 999
    start = page - len(text) - 1
    buf[start:page] = text + b"\0"
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.mprotect(ctypes.c_void_p(addr + page), page, 0) == 0  # PROT_NONE
    out = ffi.new("char[]", 4096)
    try:
        assert lib.aegis_read_remote_string(os.getpid(), addr + start, out, 4096) == len(text)
        assert ffi.string(out) == text
        buf[page - 1:page] = b"x"  # no NUL before the protected page
        assert lib.aegis_read_remote_string(os.getpid(), addr + start, out, 4096) == -errno.EFAULT
    finally:
        libc.mprotect(ctypes.c_void_p(addr + page), page, 3)
        del out
        buf.close()


DIRFD_SCRIPT = """
import os
first = os.open("one", os.O_RDONLY | os.O_DIRECTORY)
out = [open("a", opener=lambda p, f: os.open(p, f, dir_fd=first)).read() for _ in range(3)]
os.close(first)
second = os.open("two", os.O_RDONLY | os.O_DIRECTORY)
assert second == first  # the same number, another directory
out.append(open("a", opener=lambda p, f: os.open(p, f, dir_fd=second)).read())
os.rename("two", "three")  # the directory moves under its descriptor
out.append(open("a", opener=lambda p, f: os.open(p, f, dir_fd=second)).read())
print(" ".join(out))
"""


def test_directory_descriptors_are_named_for_what_they_are_now(tmp_path: Path, run_aegis) -> None:
    """Opens relative to a directory descriptor: its name is cached after the second
    use, and must follow the agent closing it and reusing the number, and renaming it."""
    for name, text in (("one", "1"), ("two", "2")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a").write_text(text)
    proc = run_aegis("wrap", "--name", "dirfds", "--dir", str(tmp_path), "--", sys.executable, "-c", DIRFD_SCRIPT,
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "1", "1", "2", "2"]
    reads = [e.resource for e in recorded("dirfds", "FileRead") if e.resource.startswith(str(tmp_path))]
    assert reads == [str(tmp_path / p) for p in ("one/a", "one/a", "one/a", "two/a", "three/a")]
