"""The C decision table against cedarpy: same decision, same deciding policy.

"Deciding policy" is the first policy, in policy order, among the reasons cedarpy
reports; the table reports it as an index into ``CompiledPolicy.policy_ids``.
Random policy sets from the compiled fragment must never come back RESIDUAL; sets
with out-of-fragment conditions may, and when they do not, must still agree.
"""

from __future__ import annotations

import functools
import os
import random
import struct
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.actions import Action, Decision
from aegis.policy.compiler import compile_policy
from aegis.policy.engine import PolicyEngine

PATH_ACTIONS = (Action.FileRead, Action.FileWrite, Action.FileDelete, Action.DirCreate, Action.DirList,
                Action.ProcessSpawn)
SEGMENTS = ("a", "b", "ab", ".env", "*", "a*b", "é", "x.py")
PATTERN_PIECES = ("/", "a", "b", ".env", "é", "*", "*", "\\*", ".py")
RESIDUAL_CONDITIONS = ('context.pid == 7', 'context.executable like "*a*"', "resource has host",
                       'context.session == "s"')


def random_path(rng: random.Random, base: str = "", depth: int = 4) -> str:
    """A canonical path below ``base`` (``""`` = the root) built from a few names."""
    parts = [rng.choice(SEGMENTS) for _ in range(rng.randint(0, depth))]
    return base + "/" + "/".join(parts) if parts else base or "/"


def _cedar_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class PolicyGen:
    """Random Cedar policy sets from the compiled fragment (``residual=True`` mixes in
    conditions outside it). Paths are below ``base``; half of them, when ``known``
    is given, are taken from it so policies hit the paths a test will use."""

    def __init__(self, rng: random.Random, base: str = "", known: tuple[str, ...] = (),
                 residual: bool = False) -> None:
        self.rng, self.base, self.known, self.residual = rng, base, known, residual

    def path(self) -> str:
        if self.known and self.rng.random() < 0.5:
            return self.rng.choice(self.known)
        return random_path(self.rng, self.base)

    def pattern(self) -> str:
        """A `like` pattern: `*` wildcards and escaped literal `\\*` mixed with path pieces."""
        rng = self.rng
        if rng.random() < 0.5:  # a path with parts turned into wildcards: likely to match
            pieces = ["*" if rng.random() < 0.2 else "\\*" if ch == "*" else ch for ch in self.path()]
            pieces += ["*"] if rng.random() < 0.3 else []
        else:
            pieces = [rng.choice(PATTERN_PIECES) for _ in range(rng.randint(1, 6))]
            pieces[:0] = [self.base + "/"] if rng.random() < 0.6 else []
        return '"' + "".join(pieces) + '"'

    def condition(self, depth: int) -> str:
        rng, roll = self.rng, self.rng.random()
        if depth <= 0 or roll < 0.45:
            leaf = rng.random()
            if self.residual and leaf < 0.15:
                return rng.choice(RESIDUAL_CONDITIONS)
            if leaf < 0.55:
                return f"resource.path like {self.pattern()}"
            if leaf < 0.85:
                return f"resource.path == {_cedar_string(self.path())}"
            if leaf < 0.92:
                return rng.choice(("true", "false"))
            return f"[{_cedar_string(self.path())}, {_cedar_string(self.path())}].contains(resource.path)"
        if roll < 0.6:
            return f"!({self.condition(depth - 1)})"
        op = "&&" if roll < 0.8 else "||"
        return f"({self.condition(depth - 1)} {op} {self.condition(depth - 1)})"

    def policy_text(self) -> str:
        """1-6 policies: permits and forbids, action scopes, nested conditions."""
        rng, policies = self.rng, []
        for i in range(rng.randint(1, 6)):
            effect = "forbid" if rng.random() < 0.4 else "permit"
            roll = rng.random()
            if roll < 0.4:
                action = "action"
            elif roll < 0.7:
                action = f'action == Aegis::Action::"{rng.choice(PATH_ACTIONS).name}"'
            else:
                chosen = rng.sample(PATH_ACTIONS, rng.randint(1, 3))
                action = "action in [" + ", ".join(f'Aegis::Action::"{a.name}"' for a in chosen) + "]"
            resource = "resource"
            if rng.random() < 0.1:
                resource = f"resource == Aegis::Resource::{_cedar_string(self.path())}"
            clauses = f" when {{ {self.condition(3)} }}" if rng.random() < 0.85 else ""
            if rng.random() < 0.25:
                clauses += f" unless {{ {self.condition(2)} }}"
            policies.append(f'@id("p{i}")\n{effect} (principal, {action}, {resource}){clauses};')
        return "\n".join(policies)


def random_policy_text(rng: random.Random, residual: bool = False) -> str:
    return PolicyGen(rng, residual=residual).policy_text()


def cedar_deciding(engine: PolicyEngine, action: Action, path: str) -> tuple[int, str | None]:
    decision = engine.authorize(action, path)
    order = {p.id: i for i, p in enumerate(engine.policies)}
    first = min(decision.policy_ids, key=order.__getitem__) if decision.policy_ids else None
    return (Decision.allow if decision.allowed else Decision.deny), first


def check_agreement(text: str, rng: random.Random, requests: int, residual: bool) -> int:
    """Compare on ``requests`` random requests; returns how many the table decided itself."""
    engine = PolicyEngine.from_sources({"gen.cedar": text})
    compiled = compile_policy(engine)
    decided = 0
    for _ in range(requests):
        action, path = rng.choice(PATH_ACTIONS), random_path(rng)
        code, pid = compiled.decide(action, path)
        if code == Decision.residual:
            assert residual, f"fragment-only policy came back RESIDUAL: {action.name} {path}\n{text}"
            continue
        decided += 1
        assert (code, pid) == cedar_deciding(engine, action, path), f"{action.name} {path!r}\n{text}"
    return decided


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_table_equals_cedarpy_on_the_fragment(rng: random.Random) -> None:
    check_agreement(random_policy_text(rng), rng, requests=12, residual=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_table_with_residual_policies_agrees_when_it_decides(rng: random.Random) -> None:
    check_agreement(random_policy_text(rng, residual=True), rng, requests=12, residual=True)


def test_residual_policies_still_let_the_table_decide_some_requests() -> None:
    rng = random.Random(7)
    decided = sum(check_agreement(random_policy_text(rng, residual=True), rng, 20, True) for _ in range(40))
    assert decided > 200


def compiled_from(text: str):
    """Compile policy text; ``{ALL}`` stands for the scope ``(principal, action, resource)``."""
    text = text.replace("{ALL}", "(principal, action, resource)")
    return compile_policy(PolicyEngine.from_sources({"t.cedar": text}))


def test_forbid_exception_inside_a_permitted_tree() -> None:
    compiled = compiled_from('@id("work") permit {ALL} when { resource.path like "/work/*" };\n'
                             '@id("env") forbid {ALL} when { resource.path like "*/.env" };')
    assert compiled.decide(Action.FileRead, "/work/src/a.py") == (Decision.allow, "work")
    assert compiled.decide(Action.FileRead, "/work/src/.env") == (Decision.deny, "env")
    assert compiled.decide(Action.FileRead, "/work") == (Decision.deny, None)
    assert compiled.decide(Action.FileRead, "/etc/.env") == (Decision.deny, "env")


def test_escaped_star_is_a_literal_star() -> None:
    compiled = compiled_from('@id("star") permit {ALL} when { resource.path like "/a/\\**" };')
    assert compiled.decide(Action.FileRead, "/a/*x") == (Decision.allow, "star")
    assert compiled.decide(Action.FileRead, "/a/x") == (Decision.deny, None)


def test_first_forbid_in_policy_order_decides() -> None:
    compiled = compiled_from('@id("f1") forbid {ALL} when { resource.path like "/x/*" };\n'
                             '@id("ok") permit {ALL};\n'
                             '@id("f2") forbid {ALL} when { resource.path like "/x/a*" };')
    assert compiled.decide(Action.FileWrite, "/x/ab") == (Decision.deny, "f1")
    assert compiled.decide(Action.FileWrite, "/y") == (Decision.allow, "ok")


def test_residual_forbid_before_a_satisfied_forbid_is_residual() -> None:
    compiled = compiled_from('@id("r") forbid {ALL} when { context.pid == 1 };\n'
                             '@id("f") forbid {ALL} when { resource.path == "/x" };')
    assert compiled.decide(Action.FileRead, "/x") == (Decision.residual, None)
    reordered = compiled_from('@id("f") forbid {ALL} when { resource.path == "/x" };\n'
                              '@id("r") forbid {ALL} when { context.pid == 1 };')
    assert reordered.decide(Action.FileRead, "/x") == (Decision.deny, "f")
    assert reordered.decide(Action.FileRead, "/y") == (Decision.residual, None)


def test_short_circuit_false_and_residual_is_decided() -> None:
    compiled = compiled_from('@id("p") permit (principal, action, resource) '
                             'when { resource.path like "/w/*" && context.pid == 1 };')
    assert compiled.decide(Action.FileRead, "/etc/passwd") == (Decision.deny, None)
    assert compiled.decide(Action.FileRead, "/w/a") == (Decision.residual, None)


def test_unknown_action_fails_closed() -> None:
    from aegis.native import ffi, lib

    compiled = compiled_from('@id("all") permit {ALL};')
    index = ffi.new("int *")
    for action in (0, 10, -1):
        assert lib.aegis_dtable_decide(compiled.table, action, b"/x", 2, index) == Decision.deny
        assert index[0] == -1


def test_non_utf8_and_embedded_bytes_are_matched_as_bytes() -> None:
    from aegis.native import ffi, lib

    compiled = compiled_from('@id("w") permit {ALL} when { resource.path like "/w/*" };')
    index = ffi.new("int *")
    read = int(Action.FileRead)
    assert lib.aegis_dtable_decide(compiled.table, read, b"/w/\xff\x00z", 6, index) == Decision.allow
    assert lib.aegis_dtable_decide(compiled.table, read, b"/v/\xff", 4, index) == Decision.deny


def test_malformed_blobs_are_rejected() -> None:
    from aegis.native import ffi, lib

    blob = compiled_from('@id("w") permit {ALL} when '
                         '{ resource.path like "/w/*" || !(resource.path == "/x") };').table_blob
    assert lib.aegis_dtable_load(blob, len(blob)) != ffi.NULL
    lib.aegis_dtable_free(lib.aegis_dtable_load(blob, len(blob)))
    lib.aegis_dtable_free(ffi.NULL)
    bad = [b"", b"AGDT", b"XXXX" + blob[4:], blob[:-1], blob + b"\0",
           blob[:4] + struct.pack("<I", 2) + blob[8:],           # version
           blob[:8] + struct.pack("<I", 0) + blob[12:],          # policy index out of range
           blob[:16] + b"\x0a" + blob[17:],                       # action 10
           blob[:17] + b"\x03" + blob[18:]]                       # effect 3
    for raw in bad:
        assert lib.aegis_dtable_load(raw, len(raw)) == ffi.NULL, raw
    deep = b"AGDT" + struct.pack("<IIIBBHiI", 1, 1, 1, 1, 1, 0, 0, 301) + b"\x07" * 300 + b"\x01"
    assert lib.aegis_dtable_load(deep, len(deep)) == ffi.NULL
    for cut in range(len(blob)):  # every truncation is rejected, none crashes
        assert lib.aegis_dtable_load(blob[:cut], cut) == ffi.NULL


@functools.cache
def _fuzz_seed_blob() -> bytes:
    return compiled_from('@id("w") permit {ALL} when { resource.path like "/w/*.py" && '
                         '!(resource.path == "/w/x.py" || context.pid == 2) };\n'
                         '@id("f") forbid {ALL} when { resource.path like "*/.env" };').table_blob


@settings(max_examples=2000, deadline=None)
@given(st.data())
def test_corrupted_blobs_never_crash_the_loader(data) -> None:
    """Random byte flips: the loader rejects or accepts, and an accepted table decides."""
    from aegis.native import ffi, lib

    blob = bytearray(_fuzz_seed_blob())
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    table = lib.aegis_dtable_load(bytes(blob), len(blob))
    if table != ffi.NULL:
        index = ffi.new("int *")
        for action in range(0, 11):
            assert lib.aegis_dtable_decide(table, action, b"/w/a.py", 7, index) in (1, 2, 3)
            assert -1 <= index[0] < 2
        lib.aegis_dtable_free(table)


def test_long_set_literals_compile_to_a_shallow_table() -> None:
    names = ", ".join(f'"/f{i}"' for i in range(300))
    compiled = compiled_from(f'@id("many") permit {{ALL}} when {{ [{names}].contains(resource.path) }};')
    assert compiled.decide(Action.FileRead, "/f299") == (Decision.allow, "many")
    assert compiled.decide(Action.FileRead, "/f300") == (Decision.deny, None)


def test_null_policy_index_pointer_is_allowed() -> None:
    from aegis.native import ffi, lib

    compiled = compiled_from('@id("all") permit {ALL};')
    assert lib.aegis_dtable_decide(compiled.table, int(Action.FileRead), b"/x", 2, ffi.NULL) == Decision.allow


def test_concurrent_decides_agree() -> None:
    compiled = compiled_from('@id("work") permit {ALL} when { resource.path like "/w/*" };\n'
                             '@id("env") forbid {ALL} when { resource.path like "*/.env" };')
    expected = {p: compiled.decide(Action.FileRead, p) for p in ("/w/a", "/w/.env", "/x")}
    failures: list[str] = []

    def worker() -> None:
        for _ in range(2000):
            for path, want in expected.items():
                if compiled.decide(Action.FileRead, path) != want:
                    failures.append(path)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


@pytest.mark.parametrize("template", ["workspace-write", "allow-read-only", "default-deny", "permit-all"])
def test_templates_agree_with_cedarpy(template: str, tmp_path) -> None:
    from aegis.policy.templates import render_template

    engine = PolicyEngine.from_sources({"t.cedar": render_template(template, tmp_path)})
    compiled = compile_policy(engine)
    rng = random.Random(template)
    paths = [str(tmp_path / "src/a.py"), str(tmp_path / ".env"), "/etc/passwd", "/tmp/x", "/dev/null",
             "/dev/pts/3", "/root/.ssh/id_rsa", "/"] + [random_path(rng) for _ in range(40)]
    for action in PATH_ACTIONS:
        for path in paths:
            code, pid = compiled.decide(action, path)
            assert code != Decision.residual
            assert (code, pid) == cedar_deciding(engine, action, path), (template, action, path)


def _rss_pages() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1])


@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="ASan's quarantine keeps freed memory resident (ASan checks leaks itself)")
def test_load_free_and_emit_do_not_leak() -> None:
    """psutil-style leak check: repeat the C calls and watch resident memory."""
    from aegis.native import ffi, lib

    blob = _fuzz_seed_blob()
    index = ffi.new("int *")

    def cycle(n: int) -> None:
        for _ in range(n):
            table = lib.aegis_dtable_load(blob, len(blob))
            lib.aegis_dtable_decide(table, int(Action.FileRead), b"/w/a.py", 7, index)
            lib.aegis_sbpl_emit(table, ffi.NULL, 0)
            lib.aegis_dtable_free(table)

    cycle(2000)  # warm up allocator pools
    before = _rss_pages()
    cycle(20000)
    assert _rss_pages() - before < 256  # < 1 MiB over 20,000 cycles (a leak of each table is ~10 MiB)


NET_HOSTS = ("10.0.0.1", "[::1]", "example.com")
NET_PORTS = ("22", "80", "443", "0443", "8080")


def random_net_condition(rng: random.Random, depth: int) -> str:
    if depth <= 0 or rng.random() < 0.45:
        port = rng.choice((22, 80, 443, 8080))
        return rng.choice((f"context.port == {port}", f"{port} == context.port", f"context.port != {port}",
                           f"(resource has port && resource.port == {port})",
                           f'resource.path like "*:{port}"', f'resource.path == "10.0.0.1:{port}"',
                           'context.host == "example.com"', "context.port < 1024"))
    if rng.random() < 0.3:
        return f"!({random_net_condition(rng, depth - 1)})"
    op = rng.choice(("&&", "||"))
    return f"({random_net_condition(rng, depth - 1)} {op} {random_net_condition(rng, depth - 1)})"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_network_port_conditions_agree_with_cedarpy(rng: random.Random) -> None:
    scope = '(principal, action == Aegis::Action::"NetConnect", resource)'
    text = "\n".join(f'@id("n{i}") {rng.choice(("permit", "forbid"))} {scope} '
                     f'when {{ {random_net_condition(rng, 2)} }};' for i in range(rng.randint(1, 4)))
    engine = PolicyEngine.from_sources({"net.cedar": text})
    compiled = compile_policy(engine)
    for _ in range(10):
        resource = f"{rng.choice(NET_HOSTS)}:{rng.choice(NET_PORTS)}"
        code, pid = compiled.decide(Action.NetConnect, resource)
        if code != Decision.residual:
            assert (code, pid) == cedar_deciding(engine, Action.NetConnect, resource), (resource, text)


def test_port_conditions_are_decided_by_the_table() -> None:
    compiled = compiled_from('@id("web") permit (principal, action == Aegis::Action::"NetConnect", resource) '
                             'when { context.port == 443 || (resource has port && resource.port == 80) };')
    assert compiled.decide(Action.NetConnect, "example.com:443") == (Decision.allow, "web")
    assert compiled.decide(Action.NetConnect, "[::1]:0443") == (Decision.allow, "web")
    assert compiled.decide(Action.NetConnect, "10.0.0.1:80") == (Decision.allow, "web")
    assert compiled.decide(Action.NetConnect, "10.0.0.1:22") == (Decision.deny, None)
    for invalid in ("10.0.0.1:99999", "[]:443", ":443", "10.0.0.1:", "10.0.0.1:+443", "h:٤٤٣", "443"):
        # the engine refuses these resources; the table leaves them to it
        assert compiled.decide(Action.NetConnect, invalid) == (Decision.residual, None), invalid
    assert compiled.residual_actions == set()
    assert compiled.landlock.net_ports == [(80, 2), (443, 2)]
