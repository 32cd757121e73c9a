"""Observers: one interface (``api.Observer``), one module per kernel mechanism.

``select_observer`` is the one place that chooses a mechanism for a session.
"""

from __future__ import annotations

from aegis.errors import AegisError
from aegis.observer.api import Observer

__all__ = ["Observer", "available_mechanisms", "select_observer"]

# Preference order for ``observer.mode = "auto"``.
_AUTO_ORDER = ("seccomp", "inotify")


def available_mechanisms() -> dict[str, bool]:
    """Which mechanisms this machine supports, asked of the kernel."""
    from aegis.native import lib

    return {"seccomp": lib.aegis_probe_seccomp_user_notif() > 0, "inotify": True}


def select_observer(mode: str) -> str:
    """The mechanism for config ``observer.mode`` ``mode``; raises AegisError if unavailable."""
    available = available_mechanisms()
    if mode == "auto":
        return next(name for name in _AUTO_ORDER if available[name])
    if mode not in available:
        raise AegisError(f"observer mode {mode!r} is not supported by `aegis run` on this machine "
                         f"(supported: auto, {', '.join(available)})")
    if not available[mode]:
        raise AegisError(f"observer mode {mode!r} is not available here; run `aegis setup` to see why")
    return mode
