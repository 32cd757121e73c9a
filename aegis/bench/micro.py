"""Measurements other than workload overhead: session start-up, ledger ingest and
verify rates, compiled decisions against cedarpy, and Aegis's peak memory during
a large session. Each returns a plain dict (one row of the report), with
``"error"`` set instead of raising when the part it measures is missing."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aegis.bench.runners import RunFailed, aegis_command, run_timed

# Run the aegis CLI in this process and report its own peak RSS (KiB) at exit on
# the descriptor named by $AEGIS_BENCH_RSS_FD.
_RSS_PROBE = (
    "import atexit, os, resource, sys\n"
    "fd = int(os.environ.pop('AEGIS_BENCH_RSS_FD'))\n"
    "peak = lambda: str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss).encode()\n"
    "atexit.register(lambda: os.write(fd, peak()))\n"
    "from aegis.cli.main import main\n"
    "main(sys.argv[1:])\n"
)


def startup(runs: int, cwd: Path) -> dict[str, Any]:
    """`aegis run -- true` (its config created on first use) against bare `true`."""
    bare, wrapped = [], []
    try:
        run_timed([*aegis_command(), "run", "--", "true"], cwd)  # creates the config "true"
        for _ in range(runs):
            bare.append(run_timed(["true"], cwd)[0])
            wrapped.append(run_timed([*aegis_command(), "run", "--", "true"], cwd)[0])
    except (RunFailed, OSError) as exc:
        return {"error": f"not available: {exc}"}
    b, w = statistics.median(bare), statistics.median(wrapped)
    return {"bare_ms": b * 1e3, "aegis_ms": w * 1e3, "overhead_ms": (w - b) * 1e3, "target_ms": 150}


def _bench_events(n: int) -> list[Any]:
    from aegis.ledger import Event

    return [Event(action="FileRead", resource=f"/work/project/src/module_{i % 5000}.py", decision="allow",
                  session_id="bench", principal="bench", pid=1000 + i % 50, ppid=1,
                  executable="/usr/bin/python3", source="openat", details={"flags": 0}) for i in range(n)]


def ledger_rates(n: int, batch: int = 4096) -> dict[str, Any]:
    """Append ``n`` events in session-sized batches, then verify the whole ledger."""
    try:
        from aegis.ledger import Ledger
    except ImportError as exc:
        return {"error": f"not available: {exc}"}
    events = _bench_events(batch)
    with tempfile.TemporaryDirectory(prefix="aegis-bench-ledger-") as tmp:
        ledger = Ledger.open(Path(tmp) / "ledger.db", principal="bench", key_dir=Path(tmp) / "keys",
                             checkpoint_file=Path(tmp) / "checkpoints")
        try:
            start = time.perf_counter()
            done = 0
            while done < n:
                chunk = events[: min(batch, n - done)]
                ledger.append(chunk)
                done += len(chunk)
            ingest = time.perf_counter() - start
            start = time.perf_counter()
            result = ledger.verify()
            verify = time.perf_counter() - start
        finally:
            ledger.close()
    ok = bool(getattr(result, "ok", result))
    return {"events": n, "ingest_per_s": n / ingest, "verify_per_s": n / verify, "verify_s": verify,
            "verify_1m_s_estimate": verify * 1_000_000 / n, "verified": ok,
            "target_ingest_per_s": 250_000, "target_verify_1m_s": 2.0}


def decision_speed(n: int) -> dict[str, Any]:
    """The compiled C table against cedarpy on the same requests (workspace-write
    template), both with everything pre-built (as benches/bench_decision.py does):
    ``aegis_dtable_decide`` through cffi against ``cedarpy.is_authorized`` with a
    parsed policy set and pre-built requests and entities."""
    try:
        import cedarpy

        from aegis.actions import FILE_ACTIONS, Decision
        from aegis.native import ffi, lib
        from aegis.policy.compiler import compile_policy
        from aegis.policy.engine import PolicyEngine, schema
        from aegis.policy.templates import render_template
    except ImportError as exc:
        return {"error": f"not available: {exc}"}
    project = Path("/work/project")
    engine = PolicyEngine.from_sources({"workspace-write.cedar": render_template("workspace-write", project)},
                                       "bench")
    compiled = compile_policy(engine)
    paths = [f"{project}/src/m{i}.py" for i in range(20)] + [f"{Path.home()}/.ssh/id_{i}" for i in range(5)]
    paths += [f"/etc/conf{i}" for i in range(10)]
    paths += [f"{project}/.env", "/usr/lib/libc.so.6", "/tmp/scratch/x"]
    requests = [(action, path) for action in FILE_ACTIONS for path in paths]
    c_requests = [(int(a), p.encode()) for a, p in requests]
    cedar_requests = [engine.build_request(a, p) for a, p in requests]
    sch, index, decide = schema(), ffi.new("int *"), lib.aegis_dtable_decide
    rounds = max(1, n // len(requests))
    start = time.perf_counter()
    for _ in range(rounds):
        table_codes = [decide(compiled.table, a, raw, len(raw), index) for a, raw in c_requests]
    table_s = (time.perf_counter() - start) / (rounds * len(requests))
    cedar_rounds = max(1, rounds // 50)
    start = time.perf_counter()
    for _ in range(cedar_rounds):
        allowed = [cedarpy.is_authorized(req, engine.policy_set, ents, schema=sch).allowed
                   for req, ents in cedar_requests]
    cedar_s = (time.perf_counter() - start) / (cedar_rounds * len(requests))
    mismatches = sum(1 for code, ok in zip(table_codes, allowed, strict=True)
                     if code != Decision.residual and (code == Decision.allow) != ok)
    return {"requests": len(requests), "cedarpy_us": cedar_s * 1e6, "compiled_us": table_s * 1e6,
            "speedup": cedar_s / table_s, "mismatches": mismatches, "target_speedup": 100}


def session_memory(events: int, cwd: Path, observer: str = "") -> dict[str, Any]:
    """Peak RSS of the Aegis process itself during a wrapped session of ``events``
    opens (the agent's memory is not counted)."""
    target = cwd / "rss-target.txt"
    target.write_text("x")
    agent = (f"import os\nfor _ in range({events}):\n"
             f"    os.close(os.open({str(target)!r}, os.O_RDONLY))\n")
    name = f"bench-rss{('-' + observer) if observer else ''}"
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.run([sys.executable, "-c", _RSS_PROBE, "wrap", "--json", "--name", name, "--",
                               sys.executable, "-c", agent], cwd=cwd, pass_fds=(write_end,),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "AEGIS_BENCH_RSS_FD": str(write_end)})
        os.close(write_end)
        write_end = -1
        peak_kib = int(os.read(read_end, 64) or b"0")
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    if proc.returncode != 0:
        return {"error": f"not available: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"}
    summary = json.loads(proc.stderr.strip().splitlines()[-1])
    counts = summary.get("counts", {})
    return {"agent_opens": events, "observer": summary.get("observer"), "recorded": counts.get("events", 0),
            "dropped": counts.get("dropped", 0), "peak_rss_mb": peak_kib / 1024, "target_mb": 100}
