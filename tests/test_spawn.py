"""The C spawner (csrc/spawn_linux.c) and the observer's pure helpers
(csrc/observe_seccomp.c), exercised on real processes."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import subprocess
import sys

import pytest

from aegis.native import ffi, lib
from aegis.policy.seccomp import SeccompSpec
from aegis.sandbox.linux import build_filter

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux spawner")


def cstrings(items: list[str]):
    keep = [ffi.new("char[]", s.encode()) for s in items]
    return ffi.new("char *[]", [*keep, ffi.NULL]), keep


def spawn(argv: list[str], bpf, cwd: str | None = None, stdout_path: str | None = None):
    """Spawn through aegis_spawn with stdout redirected to a file; returns (pid, listener, release rc)."""
    c_argv, keep = cstrings(argv)
    c_env, keep_env = cstrings([f"{k}={v}" for k, v in os.environ.items()])
    listener, control = ffi.new("int *", -1), ffi.new("int *", -1)
    saved = os.dup(1)
    if stdout_path:
        fd = os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.close(fd)
    try:
        pid = lib.aegis_spawn(argv[0].encode(), c_argv, c_env, cwd.encode() if cwd else ffi.NULL, -1, bpf,
                              listener, control)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    assert pid > 0, os.strerror(-pid)
    return pid, listener[0], lib.aegis_spawn_release(control[0])


def test_filter_without_notifications_runs_the_command_with_no_listener(tmp_path) -> None:
    bpf = build_filter(SeccompSpec(), notify=False, deny_datagram=False)
    pid, listener, rc = spawn(["/bin/sh", "-c", "pwd; exit 7"], bpf, cwd=str(tmp_path),
                              stdout_path=str(tmp_path / "out"))
    assert (listener, rc) == (-1, 0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7
    assert (tmp_path / "out").read_text().strip() == str(tmp_path)  # cwd passed through


def test_exec_failure_is_reported_by_release() -> None:
    bpf = build_filter(SeccompSpec(), notify=False, deny_datagram=False)
    pid, _, rc = spawn(["/nonexistent/program"], bpf)
    assert rc == -errno.ENOENT
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 127


def test_no_aegis_descriptor_leaks_into_the_agent(tmp_path) -> None:
    leak = os.open("/dev/null", os.O_RDONLY)  # inheritable on purpose
    os.set_inheritable(leak, True)
    try:
        bpf = build_filter(SeccompSpec(), notify=False, deny_datagram=False)
        pid, _, _ = spawn(["/bin/ls", "/proc/self/fd"], bpf, stdout_path=str(tmp_path / "fds"))
        os.waitpid(pid, 0)
    finally:
        os.close(leak)
    # 0-2 are stdio; 3 is ls's own directory handle on /proc/self/fd
    assert sorted(int(x) for x in (tmp_path / "fds").read_text().split()) == [0, 1, 2, 3]


def test_denied_syscalls_and_datagram_sockets_fail_in_the_child(tmp_path) -> None:
    bpf = build_filter(SeccompSpec(), notify=False, deny_datagram=True)
    code = ("import socket, os\n"
            "r = []\n"
            "for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW, socket.SOCK_STREAM):\n"
            "    try:\n        socket.socket(socket.AF_INET, kind).close(); r.append('ok')\n"
            "    except OSError as e:\n        r.append(e.errno)\n"
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "r.append('ok' if libc.unshare(0x10000000) == 0 else ctypes.get_errno())\n"
            "ring = libc.syscall(425, 8, ctypes.create_string_buffer(120))  # io_uring_setup\n"
            "r.append('ok' if ring >= 0 else ctypes.get_errno())\n"
            "print(r)\n")
    pid, _, rc = spawn([sys.executable, "-c", code], bpf, stdout_path=str(tmp_path / "out"))
    assert rc == 0
    os.waitpid(pid, 0)
    # UDP and raw sockets, a new user namespace, io_uring_setup: all refused
    assert (tmp_path / "out").read_text().strip() == str([errno.EACCES, errno.EACCES, "ok", errno.EPERM,
                                                          errno.EPERM])


def test_bpf_rejects_an_argument_index_out_of_range() -> None:
    flags = ffi.new("struct aegis_flag_deny[]", [{"nr": 1, "arg_index": 6, "mask": 1, "error": 1}])
    none = ffi.new("int[]", [0])
    assert lib.aegis_bpf_build(none, 0, none, none, 0, flags, 1, 0) == ffi.NULL
    ok = lib.aegis_bpf_build(none, 0, none, none, 0, flags, 0, 1)
    assert ok != ffi.NULL
    assert lib.aegis_bpf_length(ok) == 6 + 11 + 1
    lib.aegis_bpf_free(ok)


def test_child_subreaper_is_set() -> None:
    code = ("import ctypes; from aegis.native import lib; assert lib.aegis_set_child_subreaper() == 0\n"
            "v = ctypes.c_int(); libc = ctypes.CDLL(None)\n"
            "libc.prctl(37, ctypes.byref(v), 0, 0, 0); print(v.value)")  # PR_GET_CHILD_SUBREAPER
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize(("base", "path", "expected"), [
    ("/home/u", "a/b", "/home/u/a/b"),
    ("/home/u", "../../../etc/passwd", "/etc/passwd"),
    ("/x", "/a//b/./c/../d/", "/a/b/d"),
    ("/", ".", "/"),
    ("/a/b", "..", "/a"),
    ("/a", "/..", "/"),
])
def test_canonicalize(base: str, path: str, expected: str) -> None:
    out = ffi.new("char[]", 4096)
    n = lib.aegis_canonicalize(base.encode(), path.encode(), out, 4096)
    assert ffi.string(out).decode() == expected
    assert n == len(expected)


def test_canonicalize_reports_overflow() -> None:
    out = ffi.new("char[]", 8)
    assert lib.aegis_canonicalize(b"/", b"/abcdefghij", out, 8) == 0


def test_read_remote_string_stops_at_an_unmapped_page() -> None:
    """A path ending just before an inaccessible page must still be read (one iovec per page)."""
    page = mmap.PAGESIZE
    buf = mmap.mmap(-1, 2 * page)
    text = b"/tail/of/a/path"
    start = page - len(text) - 1
    buf[start:page] = text + b"\0"
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.mprotect(ctypes.c_void_p(addr + page), page, 0) == 0  # PROT_NONE
    try:
        out = ffi.new("char[]", 4096)
        assert lib.aegis_read_remote_string(os.getpid(), addr + start, out, 4096) == len(text)
        assert ffi.string(out) == text
        # no NUL before the protected page: not a readable string
        buf[page - 1:page] = b"x"
        assert lib.aegis_read_remote_string(os.getpid(), addr + page - 4, out, 4096) == -errno.EFAULT
    finally:
        libc.mprotect(ctypes.c_void_p(addr + page), page, 3)
        del out
        buf.close()


def test_read_remote_string_too_long() -> None:
    data = ffi.new("char[]", b"a" * 100)
    out = ffi.new("char[]", 16)
    address = int(ffi.cast("uintptr_t", data))
    assert lib.aegis_read_remote_string(os.getpid(), address, out, 16) == -errno.ENAMETOOLONG
