"""The macOS Seatbelt profile of a compiled policy (text written by csrc/sbpl_emit.c).

The same decision table the Linux supervisor uses is walked in C, so both
platforms enforce one compiled policy. Residual conditions cannot be asked of
cedarpy inside Seatbelt, so they are over-approximated (the profile never denies
what the policy allows); ``aegis policy explain`` lists them.
"""

from __future__ import annotations

from aegis.policy.compiler import CompiledPolicy


def seatbelt_profile(compiled: CompiledPolicy) -> str:
    """The SBPL profile text for ``compiled`` (``sandbox-exec -p PROFILE``)."""
    from aegis.native import ffi, lib

    needed = lib.aegis_sbpl_emit(compiled.table, ffi.NULL, 0)
    buf = ffi.new("char[]", needed + 1)
    written = lib.aegis_sbpl_emit(compiled.table, buf, needed + 1)
    if written != needed:
        raise RuntimeError(f"aegis_sbpl_emit wrote {written} bytes, expected {needed}")
    return ffi.string(buf, needed).decode("utf-8", "surrogateescape")
