"""`aegis setup`: probes agree with the kernel, home is created 0700, exit code follows."""

from __future__ import annotations

import ctypes
import json
import os
import stat

from aegis.native import lib
from aegis.sandbox import capabilities

LANDLOCK_CREATE_RULESET = 444
LANDLOCK_CREATE_RULESET_VERSION = 1


def direct_landlock_abi() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                       ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return abi if abi >= 0 else -ctypes.get_errno()


def test_landlock_probe_agrees_with_direct_syscall():
    assert lib.aegis_landlock_abi_version() == direct_landlock_abi()


def test_setup_json_lists_every_probe_and_creates_home(run_aegis, aegis_home):
    home = aegis_home / "fresh"
    proc = run_aegis("setup", "--json", env={"AEGIS_HOME": str(home)})
    data = json.loads(proc.stdout)
    names = [c["name"] for c in data["checks"]]
    assert names == ["kernel", "landlock", "seccomp-filter", "seccomp-user-notif", "seccomp-sync-wakeup",
                     "wake-latency", "user-namespaces", "fanotify", "cgroup-v2"]
    wake = next(c for c in data["checks"] if c["name"] == "wake-latency")
    assert wake["ok"] == os.access("/dev/cpu_dma_latency", os.W_OK) and not wake["required"]
    landlock = next(c for c in data["checks"] if c["name"] == "landlock")
    abi = direct_landlock_abi()
    assert landlock["ok"] == (abi >= 1)
    assert landlock["value"].startswith(f"ABI {abi}") or abi < 0
    assert proc.returncode == (0 if data["enforcement_possible"] else 1)
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700


def test_setup_text_has_one_line_per_probe(run_aegis):
    proc = run_aegis("setup")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("OK", "MISSING"))]
    assert len(lines) == 9
    assert "Kernel enforcement:" in proc.stdout


def test_fanotify_probe_follows_privilege(unprivileged):
    # As root fanotify is available on this kernel; as nobody it must say EPERM, not guess.
    import subprocess
    import sys

    code = "from aegis.native import lib; print(lib.aegis_probe_fanotify())"
    out = subprocess.run([*unprivileged, sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ), cwd="/")
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 0
    assert capabilities.probe()  # the privileged probe still runs


def test_cgroup2_probe_rejects_non_cgroup_fs():
    assert lib.aegis_probe_cgroup2(b"/proc") == 0
    assert lib.aegis_probe_cgroup2(b"/nonexistent") < 0


def test_sync_wakeup_and_userns_probes_answer():
    assert lib.aegis_probe_notif_sync_wakeup() in (0, 1) or lib.aegis_probe_notif_sync_wakeup() < 0
    assert lib.aegis_probe_seccomp_filter() == 1
    assert lib.aegis_probe_seccomp_user_notif() == 1
