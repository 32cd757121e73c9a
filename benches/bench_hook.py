"""Latency of one Claude Code hook call, end to end: a fresh `aegis hook claude-code`
process (Python start-up, imports, policy load, decision, ledger append), as Claude
Code runs it for every tool call. Target: <= 100 ms per call on this machine.

The first call after a policy change validates the policies with cedarpy and caches
their compiled rules in the config directory; every other call decides from that
cache without importing cedarpy (the warm-up rounds make the cache, as the first
tool call of a session does). The cold call is measured on its own row.

    PYTHONPATH=. .venv/bin/pytest benches/bench_hook.py --benchmark-only
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aegis import paths
from aegis.config import load_config
from aegis.integrations import aegis_command
from aegis.policy.compiled_rules import RULES_FILE
from aegis.provision import create_config

REPO = str(Path(__file__).resolve().parents[1])


# The same work without the click CLI in front: what a click-free dispatch of `aegis hook` would cost.
ENTRY_ONLY = [sys.executable, "-P", "-c", "import sys; from aegis.integrations.hook_entry import "
              "run_claude_code_hook; sys.exit(run_claude_code_hook('bench'))"]


def bench_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": REPO}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installation has its .pyc files: measure that
    return env


def make_hook_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]):
    monkeypatch.setenv("AEGIS_HOME", str(tmp_path / "home"))
    create_config(paths.config_dir("bench"), "bench", "workspace-write", tmp_path)
    env = bench_env()

    def call(tool: str, tool_input: dict) -> dict:
        event = {"session_id": "bench", "cwd": str(tmp_path), "hook_event_name": "PreToolUse",
                 "tool_name": tool, "tool_input": tool_input, "tool_use_id": "t"}
        proc = subprocess.run(argv, input=json.dumps(event), capture_output=True, text=True, env=env,
                              check=True)
        return json.loads(proc.stdout)["hookSpecificOutput"]

    return call


@pytest.fixture
def hook_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    argv = [*aegis_command(), "hook", "claude-code", "--config", "bench"]
    return make_hook_call(tmp_path, monkeypatch, argv)


def test_hook_pre_tool_use_bash(benchmark, hook_call):
    out = benchmark.pedantic(hook_call, args=("Bash", {"command": "ls -la"}), rounds=20, warmup_rounds=2)
    assert out["permissionDecision"] == "allow"


def test_hook_pre_tool_use_write(benchmark, hook_call, tmp_path):
    write = {"file_path": str(tmp_path / "a.txt"), "content": "x"}
    out = benchmark.pedantic(hook_call, args=("Write", write), rounds=20, warmup_rounds=2)
    assert out["permissionDecision"] == "allow"


def test_hook_entry_without_cli(benchmark, tmp_path, monkeypatch):
    call = make_hook_call(tmp_path, monkeypatch, ENTRY_ONLY)
    out = benchmark.pedantic(call, args=("Bash", {"command": "ls -la"}), rounds=20, warmup_rounds=2)
    assert out["permissionDecision"] == "allow"


def test_hook_first_call_after_a_policy_change(benchmark, hook_call):
    """The cold call: no cached rules, so cedarpy validates and the rules are compiled and cached."""
    cache = load_config("bench").directory / RULES_FILE

    def without_cache():
        cache.unlink(missing_ok=True)
        return ("Bash", {"command": "ls -la"}), {}

    out = benchmark.pedantic(hook_call, setup=without_cache, rounds=10, warmup_rounds=1)
    assert out["permissionDecision"] == "allow" and cache.exists()


def test_python_start_up_floor(benchmark):
    """The part no hook can avoid: a bare interpreter start, for comparison."""
    benchmark.pedantic(subprocess.run, args=([sys.executable, "-c", "pass"],), kwargs={"check": True},
                       rounds=20, warmup_rounds=2)


def test_import_floor_hook_modules(benchmark):
    """Start-up plus the modules a warm hook call imports (config, ledger, compiled rules; no cedarpy)."""
    argv = [sys.executable, "-P", "-c", "import aegis.integrations.claude_code"]
    benchmark.pedantic(subprocess.run, args=(argv,), kwargs={"check": True, "env": bench_env()}, rounds=20,
                       warmup_rounds=2)
