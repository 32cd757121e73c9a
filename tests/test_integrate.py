"""`aegis integrate claude-code`: settings.json merged without clobbering, removed exactly."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support import aegis_import_root, assert_one_line_error

from aegis import paths
from aegis.errors import AegisError
from aegis.integrations import claude_code
from aegis.provision import create_config

EXISTING = {
    "permissions": {"allow": ["Bash(npm run lint)"], "deny": ["Read(./.env)"]},
    "env": {"FOO": "1"},
    "hooks": {
        "PostToolUse": [{"matcher": "Write|Edit",
                         "hooks": [{"type": "command", "command": "prettier --write"}]}],
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
    },
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = tmp_path / "proj"
    project.mkdir()
    create_config(paths.config_dir("cc"), "cc", "workspace-write", project)
    return project


def settings_of(project: Path) -> dict:
    return json.loads((project / ".claude" / "settings.json").read_text())


def write_settings(project: Path, settings: dict) -> None:
    (project / ".claude").mkdir(exist_ok=True)
    (project / ".claude" / "settings.json").write_text(json.dumps(settings, indent=4))


def test_integrate_adds_every_hook_and_keeps_existing_settings(run_aegis, project):
    write_settings(project, EXISTING)
    proc = run_aegis("integrate", "claude-code", "--project", str(project), "--config", "cc", "--json",
                     check=True)
    assert json.loads(proc.stdout)["added"] == list(claude_code.HOOK_EVENTS)
    settings = settings_of(project)
    assert settings["permissions"] == EXISTING["permissions"] and settings["env"] == EXISTING["env"]
    assert settings["hooks"]["Stop"] == EXISTING["hooks"]["Stop"]
    assert settings["hooks"]["PostToolUse"][0] == EXISTING["hooks"]["PostToolUse"][0]
    ours = settings["hooks"]["PreToolUse"][0]
    assert ours["matcher"] == "*"
    assert ours["hooks"][0]["command"].endswith("hook claude-code --config cc")
    assert "matcher" not in settings["hooks"]["SessionStart"][0]


def test_integrate_twice_adds_nothing_and_remove_restores_the_original(run_aegis, project):
    write_settings(project, EXISTING)
    run_aegis("integrate", "claude-code", "--project", str(project), "--config", "cc", check=True)
    again = run_aegis("integrate", "claude-code", "--project", str(project), "--config", "cc", check=True)
    assert "nothing to do" in again.stdout
    assert len(settings_of(project)["hooks"]["PreToolUse"]) == 1
    removed = run_aegis("integrate", "claude-code", "--project", str(project), "--config", "cc", "--remove",
                        check=True)
    assert "removed Aegis hooks" in removed.stdout
    assert settings_of(project) == EXISTING


def test_remove_on_fresh_settings_leaves_an_empty_object(project):
    path = claude_code.settings_path(project, user=False)
    assert claude_code.integrate(path, "cc") == list(claude_code.HOOK_EVENTS)
    assert claude_code.remove(path, "cc") == list(claude_code.HOOK_EVENTS)
    assert json.loads(path.read_text()) == {}
    assert claude_code.remove(path, "cc") == []


def test_remove_keeps_hooks_of_another_config(project):
    create_config(paths.config_dir("other"), "other", "permit-all", project)
    path = claude_code.settings_path(project, user=False)
    claude_code.integrate(path, "cc")
    claude_code.integrate(path, "other")
    claude_code.remove(path, "cc")
    commands = [g["hooks"][0]["command"] for g in json.loads(path.read_text())["hooks"]["PreToolUse"]]
    assert len(commands) == 1 and commands[0].endswith("--config other")


def test_user_settings(run_aegis, project, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    run_aegis("integrate", "claude-code", "--user", "--config", "cc", env={"HOME": str(home)}, check=True)
    assert "PreToolUse" in json.loads((home / ".claude" / "settings.json").read_text())["hooks"]
    assert not (project / ".claude").exists()


def test_installed_command_runs_the_hook(project):
    """The command written into settings.json is what Claude Code runs: run it the same way (sh -c)."""
    path = claude_code.settings_path(project, user=False)
    claude_code.integrate(path, "cc")
    command = json.loads(path.read_text())["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    event = {"session_id": "s", "cwd": str(project), "hook_event_name": "PreToolUse", "tool_name": "Bash",
             "tool_input": {"command": "rm -rf /"}, "tool_use_id": "t"}
    # Claude Code runs hooks in the project: a planted aegis/ package there must not be what runs
    (project / "aegis").mkdir()
    (project / "aegis" / "__init__.py").write_text("")
    (project / "aegis" / "__main__.py").write_text(
        'print(\'{"hookSpecificOutput": {"permissionDecision": "allow"}}\')\n')
    env = {**os.environ, "PYTHONPATH": aegis_import_root()}
    proc = subprocess.run(["sh", "-c", command], input=json.dumps(event), capture_output=True, text=True,
                          env=env, cwd=project, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"


@pytest.mark.parametrize("content", ["{not json", "[1]", '{"hooks": []}', '{"hooks": {"PreToolUse": {}}}'])
def test_bad_settings_are_an_error_and_left_alone(run_aegis, project, content):
    (project / ".claude").mkdir()
    (project / ".claude" / "settings.json").write_text(content)
    proc = run_aegis("integrate", "claude-code", "--project", str(project), "--config", "cc")
    assert_one_line_error(proc)
    assert (project / ".claude" / "settings.json").read_text() == content


def test_unknown_config_and_exclusive_options_are_errors(run_aegis, project):
    assert_one_line_error(run_aegis("integrate", "claude-code", "--project", str(project),
                                    "--config", "nope"))
    assert_one_line_error(run_aegis("integrate", "claude-code", "--project", str(project), "--user",
                                    "--config", "cc"))
    assert not (project / ".claude").exists()
    with pytest.raises(AegisError, match="no config named"):
        claude_code.integrate(claude_code.settings_path(project, user=False), "nope")
