"""Observers: one interface (``api.Observer``), one module per kernel mechanism.

``select_observer`` is the one place that chooses a mechanism for a session.
"""

from __future__ import annotations

from collections.abc import Callable

from aegis.errors import AegisError
from aegis.observer.api import Observer

__all__ = ["Observer", "auto_choice", "available_mechanisms", "select_observer"]

# Preference order for ``observer.mode = "auto"``. fanotify is chosen by name only: it
# leaves file decisions to Landlock, so denials are the kernel's (harvested from the
# audit log) rather than the supervisor's, with the deciding policy id; and an attempt
# on Aegis's own (hidden) directories fails without a record, where the supervisor
# records it (tests/escape/test_toctou.py asks for that record). Even for permit-all.
_AUTO_ORDER = ("seccomp", "inotify")


def _probes() -> dict[str, Callable[[], bool]]:
    """Mechanism -> a question to the kernel: can it run here? (asked only when needed)"""
    from aegis.native import lib

    def fanotify_available() -> bool:
        from aegis.observer import fanotify

        return fanotify.available()

    return {"seccomp": lambda: lib.aegis_probe_seccomp_user_notif() > 0, "fanotify": fanotify_available,
            "inotify": lambda: True}


def available_mechanisms() -> dict[str, bool]:
    """Which mechanisms this machine supports, asked of the kernel."""
    return {name: probe() for name, probe in _probes().items()}


def auto_choice(available: Callable[[str], bool]) -> str:
    """The mechanism ``auto`` runs with, given whether a mechanism is available here
    (asked in preference order, only as far as needed)."""
    return next(name for name in _AUTO_ORDER if available(name))


def select_observer(mode: str) -> str:
    """The mechanism for config ``observer.mode`` ``mode``; raises AegisError if unavailable."""
    probes = _probes()
    if mode == "auto":
        return auto_choice(lambda name: probes[name]())
    if mode not in probes:
        raise AegisError(f"observer mode {mode!r} is not supported by `aegis run` on this machine "
                         f"(supported: auto, {', '.join(probes)})")
    if not probes[mode]():
        raise AegisError(f"observer mode {mode!r} is not available here; run `aegis setup` to see why")
    return mode
