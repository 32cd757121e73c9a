"""The PM QoS wake-up latency request held during bursts of hand-offs (aegis/sandbox/wake_latency.py),
read back from the kernel through /dev/cpu_dma_latency itself."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

from support import aegis_import_root

from aegis.sandbox.wake_latency import BURST_PER_S, DEVICE, WakeLatency


def kernel_latency_limit() -> int:
    """The CPU wake-up latency the kernel currently allows idle states (us)."""
    fd = os.open(DEVICE, os.O_RDONLY)
    try:
        return struct.unpack("=i", os.read(fd, 4))[0]
    finally:
        os.close(fd)


def test_held_during_a_burst_and_dropped_after_it() -> None:
    before = kernel_latency_limit()
    assert before > 0, "something else on this machine holds zero latency: the test would prove nothing"
    wake = WakeLatency()
    assert wake.available
    wake.update(0, 100.0)
    assert not wake.held and kernel_latency_limit() == before
    wake.update(int(BURST_PER_S * 0.02) + 10, 100.02)  # a burst: faster than BURST_PER_S over 20 ms
    assert wake.held and kernel_latency_limit() == 0
    wake.update(int(BURST_PER_S * 0.02) + 12, 100.5)  # two hand-offs in half a second: quiet
    assert not wake.held and kernel_latency_limit() == before
    assert abs(wake.held_s - 0.48) < 1e-6


def test_begin_holds_until_an_update_sees_no_burst() -> None:
    before = kernel_latency_limit()
    wake = WakeLatency()
    wake.begin(5.0)
    assert wake.held and kernel_latency_limit() == 0
    wake.update(3, 5.02)
    assert not wake.held and kernel_latency_limit() == before


def test_an_unprivileged_aegis_does_without(unprivileged: list[str]) -> None:
    code = ("from aegis.sandbox.wake_latency import WakeLatency\n"
            "w = WakeLatency(); w.begin(1.0); w.update(10**6, 1.01)\n"
            "print(w.available, w.held)")
    out = subprocess.run([*unprivileged, sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": aegis_import_root()}, cwd="/")
    assert out.stdout.split() == ["False", "False"]


def test_a_session_of_many_opens_holds_it_and_leaves_the_kernel_as_it_was(tmp_path: Path) -> None:
    before = kernel_latency_limit()
    project = tmp_path / "p"
    project.mkdir()
    for i in range(3000):
        (project / f"f{i}").write_text("x")
    env = {**os.environ, "PYTHONPATH": aegis_import_root()}
    run = subprocess.run([sys.executable, "-m", "aegis", "wrap", "--no-snapshot", "--name", "burst", "--dir",
                          str(project), "--", "grep", "-r", "nothing-matches", "."], cwd=project, env=env,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 1, run.stderr  # grep found nothing
    end = subprocess.run([sys.executable, "-m", "aegis", "audit", "query", "burst", "--action", "SessionEnd",
                          "--json"], env=env, capture_output=True, text=True, check=True)
    counts = json.loads(end.stdout)[-1]["details"]["counts"]
    assert counts["low_latency_ms"] > 0
    assert kernel_latency_limit() == before
