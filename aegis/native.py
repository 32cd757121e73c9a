"""The C layer (``aegis._native``), loaded once.

``ffi`` and ``lib`` are cffi's objects; higher-level modules wrap each C function
with a typed Python function next to the code that uses it.
"""

from __future__ import annotations

from aegis._native import ffi, lib  # type: ignore[import-not-found]

__all__ = ["ffi", "lib", "errno_name"]


def errno_name(code: int) -> str:
    """``-13`` -> ``"EACCES"`` (C probes return -errno)."""
    import errno

    return errno.errorcode.get(abs(code), f"errno {abs(code)}")
