"""Seatbelt profiles from csrc/sbpl_emit.c, checked against golden files.

Each tests/golden/sbpl/NAME.cedar has its expected profile in NAME.sb. After an
intended change, regenerate with AEGIS_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_decision_table import PolicyGen, random_path

from aegis.actions import Action
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


# A small evaluator for the SBPL this emitter writes (Seatbelt itself exists only on
# macOS): last matching rule wins, default deny.
def parse_sexprs(text: str) -> list:
    tokens = re.findall(r'\(|\)|"(?:[^"\\]|\\.)*"|[^\s()]+', "\n".join(
        ln for ln in text.splitlines() if not ln.startswith(";")))
    stack: list[list] = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            done = stack.pop()
            stack[-1].append(done)
        elif tok.startswith('"'):
            stack[-1].append(("str", re.sub(r"\\(.)", r"\1", tok[1:-1])))
        else:
            stack[-1].append(tok)
    return stack[0]


def filter_matches(f, path: str, is_dir: bool) -> bool:
    head, args = f[0], f[1:]
    if head == "literal":
        return path == args[0][1]
    if head == "subpath":
        return path == args[0][1] or path.startswith(args[0][1].rstrip("/") + "/")
    if head == "regex":
        return re.search(args[0][1], path, re.S) is not None
    if head == "vnode-type":
        return is_dir == (args[0] == "DIRECTORY")
    if head == "require-all":
        return all(filter_matches(a, path, is_dir) for a in args)
    if head == "require-any":
        return any(filter_matches(a, path, is_dir) for a in args)
    if head == "require-not":
        return not filter_matches(args[0], path, is_dir)
    raise AssertionError(f"unexpected filter {head}")


def profile_allows(rules: list, op: str, path: str, is_dir: bool) -> bool:
    allowed = False
    for rule in rules:
        if rule[0] in ("allow", "deny") and rule[1] == op:
            if len(rule) == 2 or filter_matches(rule[2], path, is_dir):
                allowed = rule[0] == "allow"
    return allowed


ACTION_OPS = {Action.FileRead: ("file-read-data", False), Action.DirList: ("file-read-data", True),
              Action.FileWrite: ("file-write-data", False), Action.DirCreate: ("file-write-create", True),
              Action.FileDelete: ("file-write-unlink", False), Action.ProcessSpawn: ("process-exec", False)}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_profile_never_denies_what_cedar_allows(rng: random.Random) -> None:
    engine = PolicyEngine.from_sources({"g.cedar": PolicyGen(rng, residual=rng.random() < 0.5).policy_text()})
    rules = parse_sexprs(seatbelt_profile(compile_policy(engine)))
    for _ in range(15):
        action, path = rng.choice(list(ACTION_OPS)), random_path(rng)
        op, is_dir = ACTION_OPS[action]
        if engine.authorize(action, path).allowed:
            assert profile_allows(rules, op, path, is_dir), (action, path, engine.sources)


def test_profile_is_tight_on_the_fragment() -> None:
    rng, agree, total = random.Random(11), 0, 0
    for _ in range(60):
        engine = PolicyEngine.from_sources({"g.cedar": PolicyGen(rng).policy_text()})
        rules = parse_sexprs(seatbelt_profile(compile_policy(engine)))
        for _ in range(20):
            action, path = rng.choice(list(ACTION_OPS)), random_path(rng)
            op, is_dir = ACTION_OPS[action]
            total += 1
            agree += engine.authorize(action, path).allowed == profile_allows(rules, op, path, is_dir)
    assert agree > 0.97 * total  # only `subpath` for "D/*" (which also holds D) widens
