"""The compiled C decision table against cedarpy: identical answers, per-decision cost.

1. Differential run over >= 100,000 (policy set, request) cases: random policy sets
   from the compiled fragment, random canonical paths; decision and deciding policy
   (first of cedarpy's reasons in policy order) must match on every case.
2. Per-decision cost on the same requests, same run: ``aegis_dtable_decide`` (called
   through cffi, so this is an upper bound for the supervisor's direct C call)
   against ``cedarpy.is_authorized`` with a pre-parsed ``PolicySet``, pre-built
   requests and entities. Target: >= 100x.

    AEGIS_NATIVE_LIB=... PYTHONPATH=. .venv/bin/pytest benches/bench_decision.py --benchmark-only -s
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import cedarpy
import pytest

from aegis.actions import Action, Decision
from aegis.native import ffi, lib
from aegis.policy.canonical import canonical_path
from aegis.policy.compiler import compile_policy
from aegis.policy.engine import PolicyEngine, schema
from aegis.policy.templates import render_template
from tests.test_decision_table import PATH_ACTIONS, PolicyGen, cedar_deciding, random_path

CASES = 100_000
SETS = 500


def test_differential_100k_cases(benchmark) -> None:
    checked = benchmark.pedantic(_differential, rounds=1, iterations=1)
    print(f"\ndifferential: {checked} cases, C table == cedarpy on every one")
    assert checked >= CASES


def _differential() -> int:
    rng = random.Random(100_000)
    checked = 0
    for _ in range(SETS):
        engine = PolicyEngine.from_sources({"gen.cedar": PolicyGen(rng).policy_text()})
        compiled = compile_policy(engine)
        for _ in range(CASES // SETS):
            action, path = rng.choice(PATH_ACTIONS), random_path(rng)
            got = compiled.decide(action, path)
            assert got == cedar_deciding(engine, action, path), (action, path, engine.sources)
            checked += 1
    return checked


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory):
    """The workspace-write template and 10,000 realistic requests, prepared for both sides."""
    project = tmp_path_factory.mktemp("project")
    engine = PolicyEngine.from_sources({"w.cedar": render_template("workspace-write", Path(project))})
    compiled = compile_policy(engine)
    rng = random.Random(5)
    roots = [str(project), "/usr/lib/python3", "/etc", "/tmp", str(Path.home())]
    requests = [(rng.choice(PATH_ACTIONS), canonical_path(rng.choice(roots) + random_path(rng)))
                for _ in range(10_000)]
    cedar_requests = [engine.build_request(a, p) for a, p in requests]
    c_requests = [(int(a), p.encode()) for a, p in requests]
    return engine, compiled, requests, cedar_requests, c_requests


def _run_c(compiled, c_requests) -> list[int]:
    table, index, decide = compiled.table, ffi.new("int *"), lib.aegis_dtable_decide
    return [decide(table, a, raw, len(raw), index) for a, raw in c_requests]


def _run_cedar(engine, cedar_requests) -> list[int]:
    policy_set, sch = engine.policy_set, schema()
    allowed = [cedarpy.is_authorized(req, policy_set, ents, schema=sch).allowed
               for req, ents in cedar_requests]
    return [Decision.allow if a else Decision.deny for a in allowed]


def test_c_table_decisions(benchmark, workload) -> None:
    engine, compiled, requests, cedar_requests, c_requests = workload
    result = benchmark(_run_c, compiled, c_requests)
    assert result == _run_cedar(engine, cedar_requests)


def test_cedarpy_decisions(benchmark, workload) -> None:
    engine, compiled, requests, cedar_requests, c_requests = workload
    benchmark.pedantic(_run_cedar, args=(engine, cedar_requests), rounds=3, iterations=1)


def test_speedup_same_run(workload, benchmark) -> None:
    """Both sides on the same 10,000 requests, interleaved rounds; reports the ratio."""
    engine, compiled, requests, cedar_requests, c_requests = workload
    c_times, cedar_times = [], []
    for _ in range(3):
        start = time.perf_counter()
        c_result = _run_c(compiled, c_requests)
        c_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        cedar_result = _run_cedar(engine, cedar_requests)
        cedar_times.append(time.perf_counter() - start)
        assert c_result == cedar_result
    per_c = min(c_times) / len(requests) * 1e9
    per_cedar = min(cedar_times) / len(requests) * 1e9
    benchmark.extra_info.update({"c_ns_per_decision": per_c, "cedarpy_ns_per_decision": per_cedar,
                                 "speedup": per_cedar / per_c})
    benchmark.pedantic(lambda: None, rounds=1)
    print(f"\nC table {per_c:.0f} ns/decision, cedarpy {per_cedar:.0f} ns/decision: {per_cedar / per_c:.0f}x")
    assert Action.FileRead in {a for a, _ in requests}
