"""Landlock soundness: the generated ruleset, applied by the real kernel to a real
child process on real files, never denies an (action, path) that cedarpy allows.

Each case builds a fresh tree, compiles a random policy set over it, and runs a
child that calls ``restrict_self`` and then performs every operation; the parent
compares each outcome with cedarpy's decision.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_decision_table import SEGMENTS, PolicyGen

from aegis.actions import Action
from aegis.native import lib
from aegis.policy.compiler import compile_policy
from aegis.policy.engine import PolicyEngine
from aegis.policy.landlock import LandlockSpec

pytestmark = pytest.mark.skipif(lib.aegis_landlock_abi_version() < 1, reason="Landlock unavailable")

CHILD = r"""
import json, os, socket, sys
from aegis.policy.landlock import LandlockSpec, restrict_self

request = json.load(sys.stdin)
restrict_self(LandlockSpec(**{**request["spec"], "rules": [tuple(r) for r in request["spec"]["rules"]],
                              "net_ports": [tuple(p) for p in request["spec"]["net_ports"]]}))

def run(action, path, kind):
    if action == "FileRead":
        os.close(os.open(path, os.O_RDONLY))
    elif action == "DirList":
        os.listdir(path)
    elif action == "FileWrite":
        # an existing file is opened read-write and truncated: what editors do, and the
        # strictest open a FileWrite permit has to let through
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL if kind == "new" else os.O_RDWR | os.O_TRUNC
        os.close(os.open(path, flags, 0o644))
    elif action == "DirCreate":
        os.mkdir(path)
    elif action == "FileDelete":
        (os.rmdir if kind == "dir" else os.unlink)(path)
    elif action == "ProcessSpawn":
        os.waitpid(os.posix_spawn(path, [path], {}), 0)
    elif action == "NetConnect":
        host, port = path.rsplit(":", 1)
        with socket.socket() as sock:  # not create_connection: it imports encodings.idna lazily
            sock.settimeout(10)
            sock.connect((host, int(port)))

results = []
for action, path, kind in request["ops"]:
    try:
        run(action, path, kind)
        results.append(0)
    except OSError as exc:
        results.append(exc.errno)
print(json.dumps(results))
"""

KERNEL_DENIALS = (errno.EACCES, errno.EPERM)


def build_tree(root: Path) -> dict[str, str]:
    """Depth-1 names are directories; below them ``ab`` (to create in) and ``a*b`` (to
    remove) are empty directories, every other name an executable file (a copy of
    ``true``). Returns path -> kind."""
    kinds = {str(root): "dir"}
    true = shutil.which("true")
    assert true
    for first in SEGMENTS:
        (root / first).mkdir(parents=True)
        kinds[str(root / first)] = "dir"
        for second in SEGMENTS:
            p = root / first / second
            if second in ("ab", "a*b"):
                p.mkdir()
                kinds[str(p)] = "dir"
            else:
                shutil.copy(true, p)
                kinds[str(p)] = "file"
    return kinds


def operations(kinds: dict[str, str], root: Path, rng: random.Random) -> list[tuple[str, str, str]]:
    """Operations that succeed without Landlock, ordered so none disturbs a later one."""
    files = [p for p, k in kinds.items() if k == "file"]
    dirs = [p for p, k in kinds.items() if k == "dir"]
    fresh = [str(root / a / "ab" / b) for a in SEGMENTS for b in SEGMENTS]
    rng.shuffle(fresh)
    ops = [("FileRead", p, "file") for p in files] + [("DirList", p, "dir") for p in dirs]
    ops += [("ProcessSpawn", p, "file") for p in rng.sample(files, 12)]
    ops += [("FileWrite", p, "file") for p in files]
    ops += [("FileWrite", p, "new") for p in fresh[:20]] + [("DirCreate", p, "new") for p in fresh[20:40]]
    empty_dirs = [p for p in dirs if p.endswith("/a*b") and p.count("/") > str(root).count("/") + 1]
    ops += [("FileDelete", p, "file") for p in files] + [("FileDelete", p, "dir") for p in empty_dirs]
    return ops


def run_restricted(spec: LandlockSpec, ops: list[tuple[str, str, str]]) -> list[int]:
    request = {"spec": {"handled_fs": spec.handled_fs, "rules": spec.rules, "handled_net": spec.handled_net,
                        "net_ports": spec.net_ports, "scoped": spec.scoped},
               "ops": ops}
    proc = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(request), capture_output=True,
                          text=True, timeout=60, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def check_policy(text: str | None, root: Path, rng: random.Random) -> tuple[int, int]:
    """Returns (cedar-allowed ops, cedar-denied ops that the kernel also denied).
    ``text=None``: a random policy set over the paths the operations use."""
    kinds = build_tree(root)
    ops = operations(kinds, root, rng)
    if text is None:
        text = PolicyGen(rng, base=str(root), known=tuple(sorted({p for _, p, _ in ops}))).policy_text()
    engine = PolicyEngine.from_sources({"gen.cedar": text})
    spec = compile_policy(engine).landlock.for_abi(lib.aegis_landlock_abi_version())
    results = run_restricted(spec, ops)
    allowed = kernel_tight = 0
    for (action, path, _), err in zip(ops, results, strict=True):
        if engine.authorize(Action[action], path).allowed:
            allowed += 1
            assert err not in KERNEL_DENIALS, f"kernel denied allowed {action} {path}\n{text}\n{spec}"
            assert err == 0, (action, path, os.strerror(err))
        elif err in KERNEL_DENIALS:
            kernel_tight += 1
    return allowed, kernel_tight


@pytest.mark.slow
def test_random_policies_are_never_denied_by_the_kernel_when_cedar_allows(tmp_path: Path) -> None:
    rng = random.Random(20261128)
    total_allowed = total_tight = 0
    for case in range(30):
        root = tmp_path / f"case{case}"
        allowed, tight = check_policy(None, root, rng)
        total_allowed += allowed
        total_tight += tight
    assert total_allowed > 500  # the property was exercised
    assert total_tight > 100    # and the ruleset is not just "allow everything"


def test_workspace_policy_is_sound_and_tight(tmp_path: Path) -> None:
    root = tmp_path / "w"
    text = (f'@id("read") permit (principal, action in [Aegis::Action::"FileRead", Aegis::Action::"DirList", '
            f'Aegis::Action::"ProcessSpawn"], resource);\n'
            f'@id("write") permit (principal, action in [Aegis::Action::"FileWrite", '
            f'Aegis::Action::"FileDelete", Aegis::Action::"DirCreate"], resource) '
            f'when {{ resource.path like "{root}/a/*" }};\n'
            f'@id("env") forbid (principal, action, resource) when {{ resource.path like "*/.env" }};')
    allowed, tight = check_policy(text, root, random.Random(1))
    assert allowed > 60
    assert tight > 20  # writes outside {root}/a are denied by the kernel itself


def test_default_deny_denies_everything_in_the_kernel(tmp_path: Path) -> None:
    root = tmp_path / "d"
    kinds = build_tree(root)
    engine = PolicyEngine.from_sources({"d.cedar": '@id("no") forbid (principal, action, resource);'})
    spec = compile_policy(engine)
    ops = operations(kinds, root, random.Random(2))
    results = run_restricted(spec.landlock, ops)
    assert all(err in KERNEL_DENIALS for err in results), list(zip(ops, results, strict=True))


@pytest.mark.skipif(lib.aegis_landlock_abi_version() < 4, reason="Landlock TCP rules need ABI 4")
def test_tcp_ports_are_enforced_by_the_kernel() -> None:
    servers = [socket.create_server(("127.0.0.1", 0)) for _ in range(3)]
    try:
        p1, p2, p3 = (s.getsockname()[1] for s in servers)
        engine = PolicyEngine.from_sources({"n.cedar": (
            f'@id("net") permit (principal, action == Aegis::Action::"NetConnect", resource) '
            f'when {{ resource.path like "*:{p1}" || resource.path == "127.0.0.1:{p2}" }};')})
        spec = compile_policy(engine).landlock.for_abi(lib.aegis_landlock_abi_version())
        ops = [("NetConnect", f"127.0.0.1:{p}", "") for p in (p1, p2, p3)]
        results = run_restricted(spec, ops)
        for (action, path, _), err in zip(ops, results, strict=True):
            assert (err == 0) == engine.authorize(Action[action], path).allowed, (path, err)
        assert results[2] in KERNEL_DENIALS
    finally:
        for s in servers:
            s.close()
