"""What this machine can enforce and observe, asked of the kernel (``aegis setup``)."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass

from aegis.native import errno_name, lib

UNPRIVILEGED_ID = 65534


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    value: str
    enables: str
    fix: str = ""
    required: bool = False

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _answer(code: int) -> tuple[bool, str]:
    return (code > 0, "yes") if code >= 0 else (False, f"no ({errno_name(code)})")


def cgroup2_mount() -> str | None:
    """Mount point of the cgroup v2 hierarchy, if any."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) > 2 and parts[2] == "cgroup2":
                    return parts[1]
    except OSError:
        return None
    return None


def landlock_abi() -> int:
    """The Landlock ABI version of the running kernel (0 when unavailable)."""
    return max(lib.aegis_landlock_abi_version(), 0)


def probe() -> list[Check]:
    """Run every probe; each line says what it enables and how to fix it."""
    checks = []
    kernel = platform.release()
    checks.append(Check("kernel", platform.system() == "Linux", f"{platform.system()} {kernel}",
                        "kernel enforcement needs Linux", "run Aegis on Linux 6.x (macOS: Seatbelt profile only)",
                        required=True))
    abi = lib.aegis_landlock_abi_version()
    checks.append(Check(
        "landlock", abi >= 1, f"ABI {abi}" if abi >= 0 else f"unavailable ({errno_name(abi)})",
        "kernel-enforced file rules (ABI 4: TCP rules, ABI 6: signal/abstract-socket scopes, ABI 7: audit logs)",
        "boot with lsm=landlock,... (CONFIG_SECURITY_LANDLOCK=y) on kernel >= 5.13", required=True))
    ok, value = _answer(lib.aegis_probe_seccomp_filter())
    checks.append(Check("seccomp-filter", ok, value, "syscall filtering (io_uring denied, socket families)",
                        "kernel needs CONFIG_SECCOMP_FILTER=y", required=True))
    ok, value = _answer(lib.aegis_probe_seccomp_user_notif())
    checks.append(Check("seccomp-user-notif", ok, value, "per-process observation and decisions without root",
                        "kernel >= 5.9 with CONFIG_SECCOMP_FILTER", required=True))
    ok, value = _answer(lib.aegis_probe_notif_sync_wakeup())
    checks.append(Check("seccomp-sync-wakeup", ok, value,
                        "faster supervisor hand-off (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)", "kernel >= 6.6"))
    from aegis.sandbox.wake_latency import DEVICE

    ok = os.access(DEVICE, os.W_OK)
    checks.append(Check("wake-latency", ok, "writable" if ok else f"{DEVICE} not writable (needs root)",
                        "quicker hand-offs during bursts of notified syscalls: idle CPUs poll instead of halting",
                        "run as root; otherwise each hand-off may wait for a halted CPU to wake"))
    ok, value = _answer(lib.aegis_probe_userns(UNPRIVILEGED_ID, UNPRIVILEGED_ID))
    checks.append(Check("user-namespaces", ok, value,
                        "unprivileged sessions in their own PID and mount namespaces (nothing the agent starts "
                        "outlives a killed aegis; the Aegis home hidden from the agent); root needs none",
                        "sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0"))
    ok, value = _answer(lib.aegis_probe_fanotify())
    checks.append(Check("fanotify", ok, value if ok else f"{value}; needs root or CAP_SYS_ADMIN",
                        "asynchronous low-overhead observer (filesystem marks with FID reports)",
                        "run as root or grant CAP_SYS_ADMIN; otherwise the seccomp observer is used"))
    mount = cgroup2_mount()
    if mount:
        ok, value = _answer(lib.aegis_probe_cgroup2(mount.encode()))
        value = f"{value} at {mount}"
    else:
        ok, value = False, "no cgroup2 mount"
    checks.append(Check("cgroup-v2", ok, value, "process-tree membership for the fanotify observer",
                        "mount cgroup2 (systemd.unified_cgroup_hierarchy=1)"))
    return checks


def enforcement_possible(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.required)


def is_privileged() -> bool:
    return os.geteuid() == 0
