"""Seatbelt profiles from csrc/sbpl_emit.c, checked against golden files.

Each tests/golden/sbpl/NAME.cedar has its expected profile in NAME.sb. After an
intended change, regenerate with AEGIS_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aegis.native import ffi, lib
from aegis.policy.compiler import compile_policy
from aegis.policy.engine import PolicyEngine
from aegis.policy.sbpl import seatbelt_profile

GOLDEN = Path(__file__).parent / "golden" / "sbpl"
CASES = sorted(p.stem for p in GOLDEN.glob("*.cedar"))


def profile_of(text: str) -> str:
    return seatbelt_profile(compile_policy(PolicyEngine.from_sources({"p.cedar": text})))


@pytest.mark.parametrize("name", CASES)
def test_profile_matches_golden_file(name: str) -> None:
    profile = profile_of((GOLDEN / f"{name}.cedar").read_text(encoding="utf-8"))
    expected = GOLDEN / f"{name}.sb"
    if os.environ.get("AEGIS_UPDATE_GOLDEN"):
        expected.write_text(profile, encoding="utf-8")
    assert profile == expected.read_text(encoding="utf-8")


def test_golden_cases_exist() -> None:
    assert {"workspace", "escapes", "residual", "default-deny", "network"} <= set(CASES)


def test_profile_shape_and_forbids_after_permits() -> None:
    profile = profile_of((GOLDEN / "workspace.cedar").read_text(encoding="utf-8"))
    assert profile.startswith("(version 1)\n(deny default)\n")
    write = profile[profile.index("; FileWrite"):profile.index("; DirCreate")]
    assert write.rindex("(allow ") < write.index("(deny ")  # last match wins in SBPL
    assert '(subpath "/home/dev/project")' in write
    assert '(regex "^.*/\\\\.env$")' in write
    assert profile.count("(") == profile.count(")")


def test_paths_are_escaped() -> None:
    profile = profile_of((GOLDEN / "escapes.cedar").read_text(encoding="utf-8"))
    assert '(literal "/data/say \\"hi\\"")' in profile
    assert '(subpath "/data/back\\\\slash")' in profile
    # regex metacharacters and the literal star are escaped; the wildcard becomes .*
    assert '(regex "^/data/\\\\(v1\\\\.2\\\\)\\\\+\\\\[x\\\\]/\\\\*.*\\\\.txt$")' in profile


def test_residual_is_over_approximated() -> None:
    profile = profile_of((GOLDEN / "residual.cedar").read_text(encoding="utf-8"))
    read = profile[profile.index("; FileRead"):profile.index("; DirList")]
    assert "(allow file-read-data" in read and '(subpath "/srv")' in read
    assert "(deny " not in read  # a forbid that depends on context never denies in the profile
    write = profile[profile.index("; FileWrite"):profile.index("; DirCreate")]
    assert '(require-not (regex "^.*/\\\\.git/.*$"))' in write
    assert "(deny " not in write


def test_default_deny_allows_only_the_base() -> None:
    profile = profile_of((GOLDEN / "default-deny.cedar").read_text(encoding="utf-8"))
    rules = [ln for ln in profile.splitlines() if ln.startswith("(allow")]
    assert rules == ["(allow process-fork)", "(allow signal (target same-sandbox))", "(allow sysctl-read)",
                     "(allow mach-lookup)", "(allow file-read-metadata)"]
    assert "(allow network-outbound)" not in profile


def test_emit_reports_the_length_without_overflowing_a_short_buffer() -> None:
    compiled = compile_policy(PolicyEngine.from_sources(
        {"p.cedar": (GOLDEN / "workspace.cedar").read_text(encoding="utf-8")}))
    full = seatbelt_profile(compiled).encode()
    for cap in (0, 1, 10, len(full), len(full) + 1):
        buf = ffi.new("char[]", cap + 8)
        for i in range(cap, cap + 8):
            buf[i] = b"Z"
        assert lib.aegis_sbpl_emit(compiled.table, buf, cap) == len(full)
        nul = 1 if cap > len(full) else 0  # the terminating NUL only when it fits
        assert ffi.buffer(buf, cap + 8)[cap + nul:] == b"Z" * (8 - nul)
        assert ffi.buffer(buf, min(cap, len(full)))[:] == full[:cap]
    assert lib.aegis_sbpl_emit(ffi.NULL, ffi.NULL, 0) == -1
