"""Backends built from the IR: the Landlock spec (anchors, ports, ABI masking, the C
ruleset builder) and the seccomp description."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aegis.actions import Action
from aegis.native import ffi, lib
from aegis.policy.compiler import PathEq, PathLike, Residual, compile_policy
from aegis.policy.engine import PolicyEngine
from aegis.policy.landlock import (
    FS_EXECUTE,
    FS_MAKE_DIR,
    FS_READ_FILE,
    FS_REFER,
    FS_REMOVE_FILE,
    FS_TRUNCATE,
    FS_WRITE_FILE,
    NET_CONNECT_TCP,
    Anchor,
    anchors,
    ports,
)
from aegis.policy.seccomp import SeccompSpec


def spec_of(text: str):
    return compile_policy(PolicyEngine.from_sources({"t.cedar": text})).landlock


def test_anchors_over_approximate_each_matcher_shape() -> None:
    assert anchors(PathEq("/a/b")) == (Anchor("/a/b", "exact"),)
    assert anchors(PathLike(("/w/", ""))) == (Anchor("/w", "below"),)
    assert anchors(PathLike(("/w/x", ".py"))) == (Anchor("/w", "below"),)
    assert anchors(PathLike(("/work", ""))) == (Anchor("/", "below"),)
    assert anchors(PathLike(("", "/.env"))) == (Anchor("/", "tree"),)
    assert anchors(Residual("context.pid")) == (Anchor("/", "tree"),)


def test_anchor_coverage() -> None:
    assert Anchor("/a", "tree").covers(Anchor("/a", "exact"))
    assert Anchor("/a", "below").covers(Anchor("/a/b", "tree"))
    assert not Anchor("/a", "below").covers(Anchor("/a", "exact"))
    assert not Anchor("/a", "tree").covers(Anchor("/ab", "exact"))
    assert Anchor("/", "below").covers(Anchor("/x", "exact"))


def test_ports_of_netconnect_matchers() -> None:
    assert ports(PathLike(("", ":443"))) == {443}
    assert ports(PathEq("example.com:80")) == {80}
    assert ports(PathLike(("", ":4", "3"))) is None
    assert ports(Residual("context.port")) is None
    spec = spec_of('permit (principal, action == Aegis::Action::"NetConnect", resource) '
                   'when { resource.path like "*:443" || resource.path == "localhost:8080" };')
    assert spec.handled_net == NET_CONNECT_TCP
    assert spec.net_ports == [(443, NET_CONNECT_TCP), (8080, NET_CONNECT_TCP)]
    assert spec_of('permit (principal, action, resource);').handled_net == 0


def test_rights_land_on_the_object_or_its_parent() -> None:
    spec = spec_of('permit (principal, action == Aegis::Action::"FileWrite", resource) '
                   'when { resource.path == "/srv/out.txt" };\n'
                   'permit (principal, action == Aegis::Action::"DirCreate", resource) '
                   'when { resource.path like "/srv/new/*" };')
    rules = dict(spec.rules)
    assert rules["/srv/out.txt"] & FS_WRITE_FILE and rules["/srv/out.txt"] & FS_TRUNCATE
    assert rules["/srv"] & FS_REMOVE_FILE  # creating / replacing out.txt is checked on /srv
    assert rules["/srv/new"] == FS_MAKE_DIR
    assert spec.handled_fs & FS_EXECUTE  # no ProcessSpawn permitted: execve denied by the kernel
    assert not spec.handled_fs & FS_REFER


def test_spawn_permits_leave_execute_to_the_supervisor() -> None:
    spec = spec_of('permit (principal, action == Aegis::Action::"ProcessSpawn", resource) '
                   'when { resource.path like "/opt/tools/*" };')
    assert not spec.handled_fs & FS_EXECUTE
    assert dict(spec.rules)["/opt/tools"] & FS_READ_FILE
    assert any("ProcessSpawn" in note for note in spec.notes)


READ_ALL = 'permit (principal, action in [Aegis::Action::"FileRead", Aegis::Action::"DirList"], resource);\n'
WRITE = 'permit (principal, action in [Aegis::Action::"FileWrite", Aegis::Action::"FileDelete"], resource) when '


@pytest.mark.parametrize(("text", "looser"), [
    ('permit (principal, action, resource);', []),
    ("", []),                                                                    # default-deny
    (READ_ALL + WRITE + '{ resource.path like "/w/*" };', []),                  # a whole tree: exact
    (READ_ALL + WRITE + '{ resource.path like "/w/*" || resource.path like "/t/*" };', []),
    (READ_ALL + WRITE + '{ resource.path like "/w/*.py" };', ["FileWrite", "FileDelete"]),  # a glob shape
    (READ_ALL + WRITE + '{ resource.path == "/w/out.txt" };', ["FileWrite", "FileDelete"]),  # the parent's rights
    (READ_ALL + 'forbid (principal, action, resource) when { resource.path like "/home/u/.ssh/*" };',
     ["FileRead", "DirList"]),                                                   # a hole in a permitted tree
    ('permit (principal, action == Aegis::Action::"FileRead", resource) when { resource.path like "/r/*" };\n'
     + WRITE + '{ resource.path like "/w/*" };', ["FileRead"]),                  # write regions get read_file
    ('permit (principal, action == Aegis::Action::"ProcessSpawn", resource) when { resource.path like "/bin/*" };',
     ["ProcessSpawn"]),                                                          # execute is not the kernel's
    ('permit (principal, action == Aegis::Action::"FileRead", resource) when { context.pid == 1 };',
     ["FileRead"]),                                                              # a residual condition
])
def test_looser_lists_the_actions_landlock_cannot_enforce_exactly(text: str, looser: list[str]) -> None:
    assert spec_of(text).looser == looser


def test_for_abi_masks_and_reports() -> None:
    spec = spec_of('permit (principal, action == Aegis::Action::"FileWrite", resource) '
                   'when { resource.path like "/w/*" };\n'
                   'permit (principal, action == Aegis::Action::"NetConnect", resource) '
                   'when { resource.path like "*:443" };')
    old = spec.for_abi(2)
    assert not old.handled_fs & FS_TRUNCATE and all(not a & FS_TRUNCATE for _, a in old.rules)
    assert old.handled_net == 0 and old.net_ports == [] and old.scoped == 0
    assert any("truncate" in d for d in old.dropped) and any("TCP" in d for d in old.dropped)
    assert any("cross-directory" in d for d in spec.for_abi(1).dropped)
    none = spec.for_abi(0)
    assert (none.handled_fs, none.rules, none.abi) == (0, [], 0)
    assert spec.for_abi(7).dropped == []


def test_rights_granted_at_the_root_are_left_unhandled() -> None:
    # the same ruleset without the walk to the root on every access
    everything = spec_of("permit (principal, action, resource);").for_abi(7)
    assert everything.handled_fs == 0 and everything.rules == [] and everything.scoped
    reads = spec_of('permit (principal, action == Aegis::Action::"FileRead", resource);\n'
                    'permit (principal, action == Aegis::Action::"FileWrite", resource) '
                    'when { resource.path like "/w/*" };').for_abi(7)
    assert not reads.handled_fs & FS_READ_FILE and reads.handled_fs & FS_WRITE_FILE
    assert reads.rules and all(p != "/" and not a & FS_READ_FILE for p, a in reads.rules)
    # with nothing else to handle (ABI 4: no scopes) the root rule stays, so there is still a domain
    old = spec_of("permit (principal, action, resource);").for_abi(4)
    assert old.handled_fs and old.rules == [("/", old.handled_fs)]


def test_kernel_view_per_action() -> None:
    spec = spec_of('permit (principal, action == Aegis::Action::"FileRead", resource) '
                   'when { resource.path like "/srv/*" };')
    assert spec.kernel_view(Action.FileRead) == ["/srv (and below): read_file,read_dir"]
    assert spec.kernel_view(Action.FileWrite) == ["write_file,remove_file,make_char,make_reg,make_sock,"
                                                  "make_fifo,make_block,make_sym,truncate denied everywhere"]
    assert spec.kernel_view(Action.ProcessSpawn) == ["execute denied everywhere"]
    assert spec.kernel_view(Action.NetConnect) == ["every TCP connect denied"]


CHILD = r"""
import os, sys
from aegis.native import ffi, lib
handled = int(sys.argv[1])
paths = [ffi.new("char[]", p.encode()) for p in sys.argv[2:3]]
fd = lib.aegis_landlock_build_ruleset(handled, 0, 0, ffi.new("const char *[]", paths),
                                      ffi.new("uint64_t[]", [handled]), 1, ffi.NULL, ffi.NULL, 0)
assert fd >= 0, fd
assert lib.aegis_landlock_enforce(fd, 0) == 0
for target in sys.argv[3:]:
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
        print("ok")
    except OSError as exc:
        print(exc.errno)
"""


@pytest.mark.skipif(lib.aegis_landlock_abi_version() < 1, reason="Landlock unavailable")
def test_missing_rule_paths_are_granted_at_the_nearest_existing_ancestor(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    missing = tmp_path / "in" / "not" / "yet"
    handled = FS_WRITE_FILE | 0x100  # write_file | make_reg
    argv = [sys.executable, "-c", CHILD, str(handled), str(missing), str(tmp_path / "in" / "f"),
            str(tmp_path / "out" / "f")]
    proc = subprocess.run(argv, capture_output=True, text=True, env=os.environ.copy(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", str(errno.EACCES)]


def test_landlock_c_functions_report_errors() -> None:
    assert lib.aegis_landlock_add_path(-1, b"relative", FS_READ_FILE) == -errno.EINVAL
    assert lib.aegis_landlock_add_path(-1, b"", FS_READ_FILE) == -errno.EINVAL
    if lib.aegis_landlock_abi_version() >= 1:
        assert lib.aegis_landlock_add_path(-1, b"/", FS_READ_FILE) == -errno.EBADF
        # a right outside the handled set is refused by the kernel
        bad = lib.aegis_landlock_build_ruleset(1 << 40, 0, 0, ffi.NULL, ffi.NULL, 0, ffi.NULL, ffi.NULL, 0)
        assert bad == -errno.EINVAL
    assert lib.aegis_landlock_enforce(-1, 0) < 0


def _header_numbers(path: str) -> dict[str, int]:
    text = Path(path).read_text()
    return {m[1]: int(m[2]) for m in re.finditer(r"#define __NR_(\w+)\s+(\d+)", text)}


def test_seccomp_numbers_match_the_kernel_headers() -> None:
    spec = SeccompSpec()
    x86 = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
    generic = "/usr/include/asm-generic/unistd.h"
    if not (os.path.exists(x86) and os.path.exists(generic)):
        pytest.skip("kernel uapi headers not installed")
    want_x86 = _header_numbers(x86)
    want_x86["fchmodat2"] = 452  # Linux 6.6: newer than Debian's 6.1 headers
    assert spec.numbers("x86_64") == {n: want_x86[n] for n in spec.numbers("x86_64")}
    want_arm = _header_numbers(generic)
    want_arm["truncate"] = 45  # __NR3264_truncate
    want_arm["fchmodat2"] = 452
    arm = spec.numbers("aarch64")
    assert arm == {n: want_arm[n] for n in arm}
    assert "open" not in arm and "openat" in arm
    with pytest.raises(ValueError):
        spec.numbers("riscv64")


def test_seccomp_spec_covers_the_security_model() -> None:
    spec = SeccompSpec()
    for name in ("openat", "openat2", "execve", "execveat", "unlinkat", "renameat2", "mkdirat", "linkat",
                 "symlinkat", "truncate", "connect", "bind", "exit_group"):
        assert name in spec.notified
    denied = dict(spec.denied)
    assert denied["io_uring_setup"] == denied["io_uring_enter"] == denied["io_uring_register"] == errno.EPERM
    assert denied["ptrace"] == denied["process_vm_writev"] == errno.EPERM
    assert ("unshare", 0, 0x10000000, errno.EPERM) in spec.denied_if_flags
    assert spec.to_json()["denied"][0] == {"syscall": "io_uring_setup", "errno": "EPERM"}
