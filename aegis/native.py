"""The C layer (``aegis._native``), loaded once.

``ffi`` and ``lib`` are cffi's objects; higher-level modules wrap each C function
with a typed Python function next to the code that uses it.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def _load_override(path: str) -> None:
    """Load the extension from ``$AEGIS_NATIVE_LIB`` (an ASan build, or a developer's
    private build) under the name ``aegis._native``."""
    spec = importlib.util.spec_from_file_location("aegis._native", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"AEGIS_NATIVE_LIB={path} is not a loadable extension")
    module = importlib.util.module_from_spec(spec)
    sys.modules["aegis._native"] = module
    spec.loader.exec_module(module)


if os.environ.get("AEGIS_NATIVE_LIB") and "aegis._native" not in sys.modules:
    _load_override(os.environ["AEGIS_NATIVE_LIB"])

from aegis._native import ffi, lib  # type: ignore[import-not-found]  # noqa: E402

__all__ = ["ffi", "lib", "errno_name"]


def errno_name(code: int) -> str:
    """``-13`` -> ``"EACCES"`` (C probes return -errno)."""
    import errno

    return errno.errorcode.get(abs(code), f"errno {abs(code)}")
