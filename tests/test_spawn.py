"""The C spawner (csrc/spawn_linux.c) and the observer's pure helpers
(csrc/observe_seccomp.c), exercised on real processes."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import aegis_import_root, alive

from aegis.native import ffi, lib
from aegis.observer import fanotify
from aegis.policy.seccomp import SeccompSpec
from aegis.sandbox.linux import build_filter, children_of

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux spawner")


def cstrings(items: list[str]):
    keep = [ffi.new("char[]", s.encode()) for s in items]
    return ffi.new("char *[]", [*keep, ffi.NULL]), keep


@dataclass
class Spawned:
    init: int      # the session init (our child)
    agent: int     # the agent, the init's child
    listener: int
    lifeline: int
    in_cgroup: int      # aegis_spawn's report: born in the cgroup of cgroup_fd
    born_in: str        # the agent's /proc/PID/cgroup before its release, as it was born
    release: int        # what aegis_spawn_release returned

    def wait(self) -> int:
        """The agent's exit code, as the init reports it; then hang up and reap the init."""
        message = os.read(self.lifeline, 4)
        self.end()
        return os.waitstatus_to_exitcode(struct.unpack("i", message)[0])

    def end(self) -> None:
        os.close(self.lifeline)
        os.waitpid(self.init, 0)


def spawn(argv: list[str], bpf, cwd: str | None = None, stdout_path: str | None = None,
          containment: int = lib.AEGIS_CONTAIN_NONE, hidden: tuple[str, ...] = (), cgroup_fd: int = -1) -> Spawned:
    """Spawn through aegis_spawn with stdout redirected to a file."""
    c_argv, keep = cstrings(argv)
    c_env, keep_env = cstrings([f"{k}={v}" for k, v in os.environ.items()])
    listener, control, lifeline = ffi.new("int *", -1), ffi.new("int *", -1), ffi.new("int *", -1)
    in_cgroup = ffi.new("int *", -1)
    saved = os.dup(1)
    if stdout_path:
        fd = os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.close(fd)
    try:
        c_hidden, keep_hidden = cstrings(list(hidden))
        init = lib.aegis_spawn(argv[0].encode(), c_argv, c_env, cwd.encode() if cwd else ffi.NULL, -1, cgroup_fd,
                               bpf, containment, c_hidden, len(keep_hidden), listener, control, lifeline, in_cgroup)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    assert init > 0, os.strerror(-init)
    agent = children_of(init)
    assert len(agent) == 1
    born_in = Path(f"/proc/{agent[0]}/cgroup").read_text()
    return Spawned(init, agent[0], listener[0], lifeline[0], in_cgroup[0], born_in,
                   lib.aegis_spawn_release(control[0]))


def test_filter_without_notifications_runs_the_command_with_no_listener(tmp_path) -> None:
    bpf = build_filter(SeccompSpec(), notify=False, deny_datagram=False)
    run = spawn(["/bin/sh", "-c", "pwd; exit 7"], bpf, cwd=str(tmp_path), stdout_path=str(tmp_path / "out"))
    assert (run.listener, run.release, run.in_cgroup) == (-1, 0, 0)  # no cgroup asked for
    assert run.wait() == 7
    assert (tmp_path / "out").read_text().strip() == str(tmp_path)  # cwd passed through


def test_exec_failure_is_reported_by_release() -> None:
    bpf = build_filter(SeccompSpec(), notify=False, deny_datagram=False)
    run = spawn(["/nonexistent/program"], bpf)
    assert run.release == -errno.ENOENT
    assert run.wait() == 127


def test_no_aegis_descriptor_leaks_into_the_agent(tmp_path) -> None:
    leak = os.open("/dev/null", os.O_RDONLY)  # inheritable on purpose
    os.set_inheritable(leak, True)
    try:
        bpf = build_filter(SeccompSpec(), notify=False, deny_datagram=False)
        spawn(["/bin/ls", "/proc/self/fd"], bpf, stdout_path=str(tmp_path / "fds")).wait()
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
    run = spawn([sys.executable, "-c", code], bpf, stdout_path=str(tmp_path / "out"))
    assert run.release == 0
    run.wait()
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


def daemon_pid(out: str) -> int:
    """The host pid of the daemon the agent started (its /proc/self, written to a file)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = open(out).read().strip() if os.path.exists(out) else ""
        if text.isdigit():
            return int(text)
        time.sleep(0.02)
    raise AssertionError("the daemon never started")


# The agent starts a daemon in its own session that outlives it, and exits.
DAEMON = [sys.executable, "-c", "import os, sys, time\n"
          "if os.fork() == 0:\n"
          "    os.setsid()\n"
          "    with open(sys.argv[1], 'w') as out:\n"
          "        out.write(os.readlink('/proc/self'))\n"
          "    time.sleep(60)\n"]


@pytest.mark.parametrize(("containment", "agent_pid_inside"), [
    (lib.AEGIS_CONTAIN_PIDNS, "2"), (lib.AEGIS_CONTAIN_USERNS_PIDNS, "2")])
def test_agent_is_the_second_process_of_a_new_pid_namespace(tmp_path, containment, agent_pid_inside) -> None:
    if os.geteuid() != 0 and containment == lib.AEGIS_CONTAIN_PIDNS:
        pytest.skip("a PID namespace of its own needs root")
    bpf = build_filter(SeccompSpec(), notify=False, deny_datagram=False)
    run = spawn(["/bin/sh", "-c", "echo $$ $PPID; id -u; cat /proc/self/uid_map"], bpf,
                stdout_path=str(tmp_path / "out"), containment=containment)
    assert run.wait() == 0
    pid, ppid, uid, *uid_map = (tmp_path / "out").read_text().split()
    assert (pid, ppid) == (agent_pid_inside, "1")   # the init is process 1
    assert uid == str(os.geteuid())                 # the caller's own id, not an unmapped one
    if containment == lib.AEGIS_CONTAIN_USERNS_PIDNS:
        assert uid_map == [uid, uid, "1"]


def test_hanging_up_on_the_init_ends_the_namespace_daemons_included(tmp_path) -> None:
    bpf = build_filter(SeccompSpec(), notify=False, deny_datagram=False)
    out = str(tmp_path / "daemon")
    run = spawn([*DAEMON, out], bpf, containment=lib.AEGIS_CONTAIN_PIDNS)
    daemon = daemon_pid(out)
    assert os.waitstatus_to_exitcode(struct.unpack("i", os.read(run.lifeline, 4))[0]) == 0
    assert alive(daemon), "the daemon should still run while the session does"
    assert children_of(run.init) == [daemon]  # orphans land on the init
    run.end()
    assert not alive(daemon)


def test_without_a_namespace_the_init_only_collects_orphans(tmp_path) -> None:
    """The control: no namespace, so hanging up leaves the daemon running (the session
    ends it by signal, aegis/sandbox/linux.py end_stragglers)."""
    bpf = build_filter(SeccompSpec(), notify=False, deny_datagram=False)
    out = str(tmp_path / "daemon")
    run = spawn([*DAEMON, out], bpf)
    daemon = daemon_pid(out)
    try:
        os.read(run.lifeline, 4)
        assert children_of(run.init) == [daemon]
        run.end()
        assert alive(daemon)
    finally:
        os.kill(daemon, 9)


def test_containment_out_of_range_is_refused() -> None:
    bpf = build_filter(SeccompSpec(), notify=False, deny_datagram=False)
    argv, keep = cstrings(["/bin/true"])
    fds = [ffi.new("int *", -1) for _ in range(4)]
    assert lib.aegis_spawn(b"/bin/true", argv, argv, ffi.NULL, -1, -1, bpf, 3, argv, 0, *fds) == -errno.EINVAL


@pytest.mark.parametrize("containment", [lib.AEGIS_CONTAIN_PIDNS, lib.AEGIS_CONTAIN_USERNS_PIDNS])
def test_hidden_directories_are_empty_to_the_agent_and_only_to_it(tmp_path, containment) -> None:
    state = tmp_path / "aegis-home"
    (state / "config").mkdir(parents=True)
    (state / "config" / "ledger.sqlite").write_text("the record")
    bpf = build_filter(SeccompSpec(), notify=False, deny_datagram=False)
    script = f"ls -A {state}; cat {state}/config/ledger.sqlite; touch {state}/new; echo done"
    run = spawn(["/bin/sh", "-c", "{ " + script + "; } 2>&1"], bpf, stdout_path=str(tmp_path / "out"),
                containment=containment, hidden=(str(state),))
    assert run.wait() == 0
    out = (tmp_path / "out").read_text()
    lines = out.splitlines()
    assert "config" not in lines and "the record" not in out  # ls listed nothing, cat read nothing
    assert "No such file or directory" in lines[0] and "Read-only file system" in lines[1] and lines[2] == "done"
    assert not (state / "new").exists()
    # nothing propagated back: here the directory is as it was, and not a mount point
    assert (state / "config" / "ledger.sqlite").read_text() == "the record"
    assert str(state) not in open("/proc/self/mountinfo").read()


def test_a_directory_that_cannot_be_hidden_fails_the_spawn(tmp_path) -> None:
    bpf = build_filter(SeccompSpec(), notify=False, deny_datagram=False)
    argv, keep = cstrings(["/bin/true"])
    hidden, keep_hidden = cstrings([str(tmp_path / "missing")])
    fds = [ffi.new("int *", -1) for _ in range(4)]
    assert lib.aegis_spawn(b"/bin/true", argv, argv, ffi.NULL, -1, -1, bpf, lib.AEGIS_CONTAIN_PIDNS, hidden, 1,
                           *fds) == -errno.ENOENT


needs_cgroup = pytest.mark.skipif(os.geteuid() != 0 or not fanotify.available(),
                                  reason="a session cgroup needs root and a cgroup v2 mount")


def unified(proc_cgroup: str) -> str:
    """The cgroup v2 path in a /proc/PID/cgroup text (its "0::" line; hybrid hosts list v1 ones too)."""
    return next(line[3:] for line in proc_cgroup.splitlines() if line.startswith("0::"))


@pytest.fixture
def session_cgroup():
    """A session cgroup and a descriptor of its directory, as the fanotify session passes it."""
    cgroup = fanotify.SessionCgroup(f"test-{uuid.uuid4().hex[:8]}")
    fd = cgroup.open_directory()
    try:
        yield cgroup, fd
    finally:
        os.close(fd)
        cgroup.remove()


@needs_cgroup
@pytest.mark.parametrize("containment", [lib.AEGIS_CONTAIN_NONE, lib.AEGIS_CONTAIN_PIDNS])
def test_the_agent_is_born_in_the_session_cgroup(tmp_path, session_cgroup, containment) -> None:
    """clone3 CLONE_INTO_CGROUP: in the cgroup before its release, with nothing written to
    cgroup.procs; the init stays outside (the cgroup empties when the agent's tree ends)."""
    cgroup, fd = session_cgroup
    bpf = build_filter(SeccompSpec(), notify=False, deny_datagram=False)
    run = spawn(["/bin/cat", "/proc/self/cgroup"], bpf, stdout_path=str(tmp_path / "out"),
                containment=containment, cgroup_fd=fd)
    assert run.in_cgroup == 1
    assert unified(run.born_in) == cgroup.relative
    assert lib.aegis_pid_in_cgroup(run.init, cgroup.relative.encode()) == 0
    assert run.wait() == 0
    assert unified((tmp_path / "out").read_text()) == cgroup.relative  # its first instruction ran there
    assert not cgroup.populated()


# Spawns /bin/true into the cgroup (argv[1]) from under a filter that refuses clone3 with
# ENOSYS, as container seccomp profiles do; prints the report and where the agent was born.
NO_CLONE3 = """
import os, sys
from test_spawn import spawn, unified
from aegis.policy.seccomp import SeccompSpec
from aegis.sandbox.linux import build_filter
fd = os.open(sys.argv[1], os.O_PATH | os.O_DIRECTORY)
run = spawn(["/bin/true"], build_filter(SeccompSpec(), notify=False, deny_datagram=False), cgroup_fd=fd)
run.wait()
print(run.in_cgroup, unified(run.born_in))
"""


@needs_cgroup
def test_without_clone3_the_agent_is_born_outside_and_the_report_says_so(tmp_path, session_cgroup,
                                                                        monkeypatch) -> None:
    """The fallback: a plain fork, and the caller (FanotifyObserver.attach) moves the agent."""
    cgroup, _ = session_cgroup
    bpf = build_filter(SeccompSpec(), notify=False, deny_datagram=False)  # clone3 -> ENOSYS
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([aegis_import_root(), str(Path(__file__).parent)]))
    run = spawn([sys.executable, "-c", NO_CLONE3, str(cgroup.path)], bpf, stdout_path=str(tmp_path / "out"))
    assert run.wait() == 0
    report, born_in = (tmp_path / "out").read_text().split()
    assert report == "0" and born_in != cgroup.relative
    assert not cgroup.populated()


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
