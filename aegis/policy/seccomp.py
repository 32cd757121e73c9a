"""The seccomp filter description: which syscalls the observer is notified of, and
which are always denied (the security model's escape routes), with syscall
numbers for x86_64 and aarch64. The spawner turns this into the BPF program.

Notified syscalls carry the paths and addresses policies decide on. The denied
ones would let the agent act unobserved or attack the supervisor: io_uring does
file I/O without syscalls seccomp sees, ptrace/process_vm_writev/pidfd_getfd
reach into other processes, userfaultfd can stall the supervisor's reads of
agent memory (a TOCTOU aid), and a new user namespace gives the agent
capabilities (mounts, new filters' owners) inside it. ``clone3`` passes its flags in
memory BPF cannot read, so it fails with ENOSYS and libc falls back to ``clone``,
whose flags are checked.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000

# name -> (x86_64 number, aarch64 number or None when the arch lacks the syscall)
SYSCALLS: dict[str, tuple[int, int | None]] = {
    "open": (2, None), "openat": (257, 56), "openat2": (437, 437), "creat": (85, None),
    "execve": (59, 221), "execveat": (322, 281),
    "unlink": (87, None), "unlinkat": (263, 35), "rmdir": (84, None),
    "rename": (82, None), "renameat": (264, 38), "renameat2": (316, 276),
    "mkdir": (83, None), "mkdirat": (258, 34),
    "link": (86, None), "linkat": (265, 37), "symlink": (88, None), "symlinkat": (266, 36),
    "truncate": (76, 45), "connect": (42, 203), "bind": (49, 200), "exit_group": (231, 94),
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427),
    "ptrace": (101, 117), "process_vm_writev": (311, 271), "pidfd_getfd": (438, 438),
    "userfaultfd": (323, 282), "unshare": (272, 97), "setns": (308, 268), "clone": (56, 220),
    "chmod": (90, None), "fchmodat": (268, 53), "fchmodat2": (452, 452),
    "chown": (92, None), "lchown": (94, None), "fchownat": (260, 54),
    "setxattr": (188, 5), "lsetxattr": (189, 6), "removexattr": (197, 14), "lremovexattr": (198, 15),
    "utimensat": (280, 88), "utimes": (235, None), "utime": (132, None),
    "clone3": (435, 435), "name_to_handle_at": (303, 264), "open_by_handle_at": (304, 265),
    "chroot": (161, 51), "socket": (41, 198),
}

NOTIFIED = ("open", "openat", "openat2", "creat", "execve", "execveat", "unlink", "unlinkat", "rmdir",
            "rename", "renameat", "renameat2", "mkdir", "mkdirat", "link", "linkat", "symlink", "symlinkat",
            "truncate", "connect", "bind", "exit_group",
            # metadata changes: no Landlock right covers them, so the supervisor decides them (FileWrite)
            "chmod", "fchmodat", "fchmodat2", "chown", "lchown", "fchownat",
            "setxattr", "lsetxattr", "removexattr", "lremovexattr", "utimensat", "utimes", "utime")
DENIED = (("io_uring_setup", errno.EPERM), ("io_uring_enter", errno.EPERM),
          ("io_uring_register", errno.EPERM), ("ptrace", errno.EPERM), ("process_vm_writev", errno.EPERM),
          ("pidfd_getfd", errno.EPERM), ("userfaultfd", errno.EPERM), ("setns", errno.EPERM),
          ("clone3", errno.ENOSYS),
          # opens by inode: no path to decide on (agents running as root have CAP_DAC_READ_SEARCH)
          ("open_by_handle_at", errno.EPERM), ("name_to_handle_at", errno.EPERM),
          # a root of its own would make the agent's absolute paths mean other files than the decided ones
          ("chroot", errno.EPERM))
# (name, argument index, flag mask, errno): denied when (arg & mask) != 0
DENIED_IF_FLAGS = (("unshare", 0, CLONE_NEWUSER, errno.EPERM), ("clone", 0, CLONE_NEWUSER, errno.EPERM))

ARCHES = ("x86_64", "aarch64")


@dataclass(frozen=True)
class SeccompSpec:
    notified: list[str] = field(default_factory=lambda: list(NOTIFIED))
    denied: list[tuple[str, int]] = field(default_factory=lambda: list(DENIED))
    denied_if_flags: list[tuple[str, int, int, int]] = field(default_factory=lambda: list(DENIED_IF_FLAGS))

    def numbers(self, arch: str) -> dict[str, int]:
        """Syscall numbers on ``arch`` for every syscall this spec names (absent ones omitted)."""
        if arch not in ARCHES:
            raise ValueError(f"unsupported architecture {arch!r} (expected one of {', '.join(ARCHES)})")
        column = ARCHES.index(arch)
        # socket: the filter refuses datagram, raw and other families by its arguments
        names = [*self.notified, *(n for n, _ in self.denied), *(n for n, *_ in self.denied_if_flags), "socket"]
        return {n: SYSCALLS[n][column] for n in names if SYSCALLS[n][column] is not None}

    def refusals(self, arch: str) -> dict[int, int]:
        """Syscall number -> errno of every refusal the supervisor records: the denied
        syscalls, those denied by their flags, and ``socket`` (datagram, raw and other
        families, when the network is not open); not the ENOSYS ones, which ask libc
        to fall back (csrc/spawn_linux.c: refuse)."""
        numbers = self.numbers(arch)
        pairs = [*self.denied, *((n, e) for n, _, _, e in self.denied_if_flags), ("socket", errno.EACCES)]
        return {numbers[n]: e for n, e in pairs if n in numbers and e != errno.ENOSYS}

    def to_json(self) -> dict[str, object]:
        return {"notified": self.notified,
                "denied": [{"syscall": n, "errno": errno.errorcode[e]} for n, e in self.denied],
                "denied_if_flags": [{"syscall": n, "arg": i, "mask": hex(m), "errno": errno.errorcode[e]}
                                    for n, i, m, e in self.denied_if_flags]}


def seccomp_spec() -> SeccompSpec:
    """The filter for every policy: what is observed and denied does not depend on it
    (the decision on each notified call does)."""
    return SeccompSpec()
