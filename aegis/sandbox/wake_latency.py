"""Keeping CPUs quick to wake while the agent hands syscalls to the supervisor in bursts.

Every notified syscall is a hand-off: the agent sleeps until the supervisor
answers, and an on-behalf open (``SECCOMP_IOCTL_NOTIF_ADDFD``) wakes each side
with a plain wake-up, which the scheduler sends to an idle CPU when there is
one. On a VM whose idle CPUs halt at once, waking one costs tens of
microseconds: measured on the 2-core machine, about 35 us a hand-off, and
`grep -r` over 13,000 files ran 600 ms under the supervisor instead of 400.

So while hand-offs come fast, Aegis holds a PM QoS request for zero wake-up
latency (``/dev/cpu_dma_latency``, which only root may open): idle CPUs poll
instead of halting. The request is dropped as soon as the rate falls, so an
agent that waits on the network for minutes does not keep CPUs spinning, and
the kernel drops it if Aegis dies (the descriptor closes).
"""

from __future__ import annotations

import os
import struct

DEVICE = "/dev/cpu_dma_latency"
BURST_PER_S = 2000  # hand-offs per second from which the request is held


class WakeLatency:
    """Holds the zero-latency request while ``update`` sees a burst of hand-offs."""

    def __init__(self, device: str = DEVICE) -> None:
        self._device = device
        self._fd = -1
        self._count = 0
        self._at = 0.0
        self._held_since = 0.0
        self.held_s = 0.0  # how long the request was held, in all
        self.available = os.access(device, os.W_OK)

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def begin(self, now: float) -> None:
        """Hold the request from the start: a program's first milliseconds (its exec,
        its libraries) are a burst, which the first ``update`` would see too late."""
        self._count, self._at = 0, now
        self._hold(now)

    def update(self, handoffs: int, now: float) -> None:
        """``handoffs``: the supervisor's count of notified syscalls so far; ``now``:
        time.monotonic(). Holds the request when the rate since the last call is a
        burst, drops it when not."""
        rate = (handoffs - self._count) / max(now - self._at, 1e-3) if self._at else 0.0
        self._count, self._at = handoffs, now
        if rate >= BURST_PER_S:
            self._hold(now)
        else:
            self.release(now)

    def _hold(self, now: float) -> None:
        if self._fd >= 0 or not self.available:
            return
        try:
            fd = os.open(self._device, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            self.available = False
            return
        try:
            os.write(fd, struct.pack("=i", 0))
        except OSError:
            os.close(fd)
            self.available = False
            return
        self._fd, self._held_since = fd, now

    def release(self, now: float) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self.held_s += now - self._held_since
