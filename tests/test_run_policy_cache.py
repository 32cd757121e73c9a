"""The compiled-policy cache behind `aegis run` start-up: used only when it matches
the policy files exactly, recompiled otherwise, and out of the agent's reach."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from aegis.config import load_config
from aegis.policy.sources import read_policy_files
from aegis.provision import create_config
from aegis.sandbox.capabilities import landlock_abi
from aegis.sandbox.policy_cache import CACHE_FILE, compile_session_policy, session_policy


def make_config(tmp_path: Path, template: str = "allow-read-only"):
    from aegis import paths

    return create_config(paths.config_dir("cached"), "cached", template, tmp_path)


def test_cache_written_then_used_and_equal_to_a_fresh_compile(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    abi = landlock_abi()
    first = session_policy(config, abi)
    assert not first.from_cache
    assert (config.directory / CACHE_FILE).is_file()
    second = session_policy(config, abi)
    assert second.from_cache
    texts, sources = read_policy_files(config.policy_files())
    fresh = compile_session_policy(texts, sources, config.name, abi)
    for field in ("policy_ids", "table_blob", "landlock_abi", "handled_fs", "landlock_rules", "scoped",
                  "not_enforced_by_kernel", "net_permit", "residual_actions", "sources", "files"):
        assert getattr(second, field) == getattr(fresh, field), field


def test_policy_change_invalidates_the_cache(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    before = session_policy(config, landlock_abi())
    policy_file = config.policy_files()[0]
    policy_file.write_text(policy_file.read_text(encoding="utf-8") + '\n@id("extra")\n'
                           'permit (principal, action == Aegis::Action::"NetConnect", resource);\n',
                           encoding="utf-8")
    after = session_policy(load_config("cached"), landlock_abi())
    assert not after.from_cache
    assert "extra" in after.policy_ids and "extra" not in before.policy_ids
    assert before.net_permit == "none" and after.net_permit != "none"


def test_other_abi_or_corrupt_cache_is_recompiled(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    abi = landlock_abi()
    session_policy(config, abi)
    assert not session_policy(config, max(abi - 1, 0)).from_cache  # the key covers the kernel's ABI
    cache = config.directory / CACHE_FILE
    data = json.loads(cache.read_text(encoding="utf-8"))
    data["table"] = "not base64!"
    cache.write_text(json.dumps(data), encoding="utf-8")
    policy = session_policy(config, abi)
    assert not policy.from_cache
    assert session_policy(config, abi).from_cache  # rewritten
    cache.write_text("{", encoding="utf-8")
    assert not session_policy(config, abi).from_cache


def test_cached_run_enforces_and_the_agent_cannot_touch_the_cache(tmp_path: Path) -> None:
    config = make_config(tmp_path, "permit-all")
    cache = config.directory / CACHE_FILE

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "aegis", "run", "--config", "cached", "--", *command],
                              capture_output=True, text=True, cwd=tmp_path, timeout=60)

    assert run("true").returncode == 0
    written = cache.read_text(encoding="utf-8")
    attempt = run("sh", "-c", f"echo '{{}}' > {cache}")
    assert attempt.returncode != 0
    assert cache.read_text(encoding="utf-8") == written
