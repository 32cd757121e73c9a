"""`aegis hook claude-code`: decisions, records and fail-closed exits, through the real CLI."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import pytest
from support import aegis_command

from aegis import paths
from aegis.actions import Action
from aegis.config import load_config
from aegis.errors import AegisError
from aegis.integrations.claude_code import handle_event, implied_file_actions, parse_event, tool_resource
from aegis.integrations.hook_entry import run_claude_code_hook
from aegis.integrations.toolcall import cap_text, normalise_url, tool_input_context
from aegis.ledger import open_ledger
from aegis.policy.engine import PolicyEngine
from aegis.provision import create_config


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "proj" / "src").mkdir(parents=True)
    return tmp_path / "proj"


@pytest.fixture
def config(project: Path) -> str:
    create_config(paths.config_dir("cc"), "cc", "workspace-write", project)
    return "cc"


def pre_tool_use(project: Path, tool: str, tool_input: dict, session: str = "sess-1") -> dict:
    return {"session_id": session, "transcript_path": "/tmp/t.jsonl", "cwd": str(project),
            "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": tool,
            "tool_input": tool_input, "tool_use_id": "toolu_01"}


def run_hook(run_aegis, config: str, event: dict | str):
    text = event if isinstance(event, str) else json.dumps(event)
    return run_aegis("hook", "claude-code", "--config", config, input=text)


def answer(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["hookSpecificOutput"]


def entries(config: str, **filters) -> list:
    with open_ledger(load_config(config)) as ledger:
        return list(ledger.query(**filters))


def test_allowed_bash_command_answers_allow_and_is_recorded(run_aegis, config, project):
    out = answer(run_hook(run_aegis, config, pre_tool_use(project, "Bash", {"command": "ls -la src"})))
    reason = "Aegis config 'cc' allowed: ToolCall Bash allow (policy tools)"
    assert out == {"hookEventName": "PreToolUse", "permissionDecision": "allow",
                   "permissionDecisionReason": reason}
    [entry] = entries(config, action="ToolCall")
    assert (entry.resource, entry.decision, entry.source, entry.session_id) == ("Bash", "allow",
                                                                               "hook:claude-code", "sess-1")
    assert entry.policy_ids == ["tools"]
    assert entry.details["tool_use_id"] == "toolu_01" and "ls -la src" in entry.details["input"]
    assert entry.details["policy_hash"]


@pytest.mark.parametrize("command", ["rm -rf /", "sudo rm  -fr ~/", "rm -rf --no-preserve-root /*",
                                     "cd / && rm -rf /*", "dd if=/dev/zero of=/dev/sda bs=1M"])
def test_destructive_bash_commands_are_denied(run_aegis, config, project, command):
    out = answer(run_hook(run_aegis, config, pre_tool_use(project, "Bash", {"command": command})))
    assert out["permissionDecision"] == "deny"
    assert "forbid-destructive-commands" in out["permissionDecisionReason"]
    [entry] = entries(config, action="ToolCall")
    assert entry.decision == "deny" and entry.policy_ids == ["forbid-destructive-commands"]


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/iam/",
                                 "http://0xa9fea9fe/latest/", "http://user@2852039166/",
                                 "HTTP://Metadata.Google.Internal./computeMetadata/v1/",
                                 "http://[::ffff:169.254.169.254]/"])
def test_webfetch_to_cloud_metadata_is_denied(run_aegis, config, project, url):
    out = answer(run_hook(run_aegis, config, pre_tool_use(project, "WebFetch", {"url": url, "prompt": "x"})))
    assert out["permissionDecision"] == "deny"
    assert "forbid-cloud-metadata" in out["permissionDecisionReason"]


def test_webfetch_elsewhere_is_allowed(run_aegis, config, project):
    out = answer(run_hook(run_aegis, config, pre_tool_use(project, "WebFetch", {"url": "https://example.com/"})))
    assert out["permissionDecision"] == "allow"


def test_write_tool_is_decided_as_file_write_on_the_canonical_path(run_aegis, config, project):
    inside = answer(run_hook(run_aegis, config, pre_tool_use(project, "Write", {"file_path": "src/a.py",
                                                                                "content": "x = 1\n"})))
    assert inside["permissionDecision"] == "allow"
    escape = answer(run_hook(run_aegis, config, pre_tool_use(project, "Edit", {
        "file_path": "src/" + "../" * 40 + "usr/local/outside.txt", "old_string": "a", "new_string": "b"})))
    outside = "/usr/local/outside.txt"  # outside the project and temp: no policy permits the write
    assert escape["permissionDecision"] == "deny"
    assert f"FileWrite {outside} deny (no policy permits it)" in escape["permissionDecisionReason"]
    writes = entries(config, action="FileWrite")
    assert [(e.resource, e.decision) for e in writes] == [(f"{project}/src/a.py", "allow"), (outside, "deny")]
    assert all(e.details["tool"] in ("Write", "Edit") for e in writes)


def test_read_of_a_secret_is_denied_by_the_file_rule(run_aegis, config, project):
    (project / ".env").write_text("TOKEN=1\n")
    event = pre_tool_use(project, "Read", {"file_path": str(project / ".env")})
    out = answer(run_hook(run_aegis, config, event))
    assert out["permissionDecision"] == "deny"
    assert f"FileRead {project}/.env deny (policy forbid-secrets)" in out["permissionDecisionReason"]


def test_symlinks_cannot_launder_a_file_tool_path(run_aegis, config, project):
    (project / ".env").write_text("TOKEN=1\n")
    (project / "settings.txt").symlink_to(project / ".env")
    (project / "out").symlink_to("/usr/local")
    read = answer(run_hook(run_aegis, config, pre_tool_use(project, "Read", {"file_path": "settings.txt"})))
    assert read["permissionDecision"] == "deny"
    assert f"FileRead {project}/.env deny (policy forbid-secrets)" in read["permissionDecisionReason"]
    write = answer(run_hook(run_aegis, config, pre_tool_use(project, "Write", {"file_path": "out/evil.sh",
                                                                               "content": ""})))
    assert write["permissionDecision"] == "deny"
    assert "FileWrite /usr/local/evil.sh deny (no policy permits it)" in write["permissionDecisionReason"]
    checked = [(e.resource, e.decision) for e in entries(config, action="FileWrite")]
    assert checked == [("/usr/local/evil.sh", "deny"), (f"{project}/out/evil.sh", "allow")]


def test_read_only_template_denies_write_tools(run_aegis, project):
    create_config(paths.config_dir("ro"), "ro", "allow-read-only", project)
    read = answer(run_hook(run_aegis, "ro", pre_tool_use(project, "Read", {"file_path": "src/a.py"})))
    write = answer(run_hook(run_aegis, "ro", pre_tool_use(project, "Write", {"file_path": "src/a.py",
                                                                              "content": ""})))
    assert read["permissionDecision"] == "allow"
    assert write["permissionDecision"] == "deny"
    assert "ToolCall Write deny" in write["permissionDecisionReason"]


@pytest.mark.parametrize("event", [
    {"hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_input": {"command": "ls"},
     "tool_response": {"stdout": "x" * 10000, "stderr": ""}, "tool_use_id": "toolu_02"},
    {"hook_event_name": "UserPromptSubmit", "prompt": "please list the files"},
    {"hook_event_name": "SessionStart", "source": "startup", "model": "claude"},
    {"hook_event_name": "SessionEnd", "reason": "exit"},
])
def test_other_events_are_recorded_without_an_answer(run_aegis, config, project, event):
    event = {"session_id": "sess-2", "cwd": str(project), **event}
    proc = run_hook(run_aegis, config, event)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    [entry] = [e for e in entries(config, session="sess-2")]
    assert entry.details["event"] == event["hook_event_name"] and entry.decision == "info"
    if event["hook_event_name"] == "SessionEnd":  # the session's records end under a signed checkpoint
        with open_ledger(load_config(config)) as ledger:
            result = ledger.verify()
        assert result.ok and result.checkpoints_checked >= 1
        assert load_config(config).checkpoints_path.read_text().strip()
    if event["hook_event_name"] == "PostToolUse":
        assert (entry.action, entry.resource) == ("ToolCall", "Bash")
        assert len(entry.details["response"]) < 4200 and "more characters" in entry.details["response"]
    else:
        assert entry.action == "ObserverNote"


PRE = '{"hook_event_name": "PreToolUse", '


@pytest.mark.parametrize("stdin", [
    "", "not json", "[1, 2]", '{"tool_name": "Bash"}',
    PRE + '"tool_input": {}}',
    PRE + '"tool_name": "Write", "tool_input": {}}',
    PRE + '"tool_name": "Bash", "tool_input": "ls"}',
    PRE + '"tool_name": "Read", "cwd": "rel", "tool_input": {"file_path": "a"}}',
    PRE + '"tool_name": "Read", "cwd": "/", "tool_input": {"file_path": "a\\u0000b"}}'])
def test_bad_input_blocks_with_exit_code_2(run_aegis, config, stdin):
    proc = run_hook(run_aegis, config, stdin)
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    assert proc.stderr.startswith("aegis: blocked: hook failed: ") and "Traceback" not in proc.stderr


def test_missing_config_blocks_with_exit_code_2(run_aegis, project):
    proc = run_hook(run_aegis, "nope", pre_tool_use(project, "Bash", {"command": "ls"}))
    assert proc.returncode == 2 and "no config named 'nope'" in proc.stderr


def test_missing_config_option_blocks_with_exit_code_2(run_aegis):
    proc = run_aegis("hook", "claude-code", input="{}")
    assert proc.returncode == 2


def test_invalid_policy_blocks_with_exit_code_2(run_aegis, config, project):
    policy_file = load_config(config).directory / "policies" / "default.cedar"
    policy_file.write_text("permit (principal, action, resourc);")
    proc = run_hook(run_aegis, config, pre_tool_use(project, "Bash", {"command": "ls"}))
    assert proc.returncode == 2 and "syntax error" in proc.stderr


def test_unwritable_ledger_blocks_with_exit_code_2(run_aegis, config, project):
    ledger_path = load_config(config).ledger_path
    ledger_path.unlink(missing_ok=True)
    ledger_path.mkdir()  # the ledger cannot be opened: nothing would be recorded, so nothing may run
    proc = run_hook(run_aegis, config, pre_tool_use(project, "Bash", {"command": "ls"}))
    assert proc.returncode == 2, proc
    assert proc.stdout == ""


def test_claude_code_mcp_tools_use_the_mcp_proxy_resource(run_aegis, project):
    """One policy governs an MCP tool whether Claude Code calls it directly or through `aegis mcp-proxy`."""
    config = create_config(paths.config_dir("m"), "m", "workspace-write", project)
    (config.directory / "policies" / "mcp.cedar").write_text(
        '@id("no-issue-delete")\nforbid (principal, action == Aegis::Action::"ToolCall", resource)\n'
        'when { resource.path == "mcp:github:delete_issue" };\n')
    denied = answer(run_hook(run_aegis, "m", pre_tool_use(project, "mcp__github__delete_issue", {})))
    allowed = answer(run_hook(run_aegis, "m", pre_tool_use(project, "mcp__github__get_issue", {})))
    assert denied["permissionDecision"] == "deny" and "no-issue-delete" in denied["permissionDecisionReason"]
    assert allowed["permissionDecision"] == "allow"
    assert [e.resource for e in entries("m", action="ToolCall")] == ["mcp:github:delete_issue",
                                                                     "mcp:github:get_issue"]
    assert tool_resource("mcp__bad") == "mcp__bad" and tool_resource("Bash") == "Bash"


def test_parse_event_and_implied_actions_directly(project):
    event = parse_event(json.dumps(pre_tool_use(project, "NotebookEdit", {"notebook_path": "nb.ipynb"})))
    context_input = tool_input_context(event["tool_input"], event["cwd"])
    assert context_input["file_path"] == str(project / "nb.ipynb")
    assert implied_file_actions("NotebookEdit", event["tool_input"], event["cwd"]) == [
        (Action.FileWrite, str(project / "nb.ipynb"))]
    assert implied_file_actions("Grep", {"pattern": "x"}, "/w") == [(Action.DirList, "/w")]
    assert implied_file_actions("Bash", {"command": "ls"}, "/w") == []
    with pytest.raises(AegisError, match="no file_path"):
        implied_file_actions("Write", {"content": "x"}, "/w")


def test_tool_input_context_canonicalises_paths_url_and_command():
    out = tool_input_context({"file_path": "a/../b/./c", "path": "/x//y/..", "command": "rm\t -rf\n /",
                              "url": "https://u:p@EXAMPLE.com.:8443/p?q=1", "other": 3}, "/w")
    assert out == {"file_path": "/w/b/c", "path": "/x", "command": "rm -rf /",
                   "url": "https://example.com:8443/p?q=1", "other": 3}
    assert normalise_url("http://[0:0:0:0:0:ffff:a9fe:a9fe]/") == "http://169.254.169.254/"
    assert normalise_url("http://0251.0376.0251.0376/") == "http://169.254.169.254/"
    with pytest.raises(AegisError, match="invalid url"):
        normalise_url("http://[not-ipv6/")
    assert cap_text("x" * 10, 4) == "xxxx…[6 more characters]"


def test_handle_event_library_call_matches_cli(config, project):
    event = parse_event(json.dumps(pre_tool_use(project, "Bash", {"command": "rm -rf ~"})))
    result = handle_event(config, event)
    assert result.stdout["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert [e.action for e in result.events] == ["ToolCall"]



def test_documented_policy_examples_validate_and_decide_as_described():
    docs = Path(__file__).resolve().parents[1] / "docs" / "integrations.md"
    examples = re.search(r"```cedar\n(.*?)```", docs.read_text(), re.S).group(1)
    permit_all = '@id("all") permit (principal, action, resource);'
    engine = PolicyEngine.from_sources({"examples.cedar": examples + permit_all}, "agent")
    cases = [
        ("Bash", {"command": "git push origin main"}, False), ("Bash", {"command": "git status"}, True),
        ("WebFetch", {"url": "https://docs.example.com/a"}, True),
        ("WebFetch", {"url": "https://x.y/"}, False),
        ("WebFetch", {}, False), ("mcp:github:get_issue", {}, True), ("mcp:github:delete_repo", {}, False),
        ("Edit", {"file_path": "/home/me/project/src/a.py"}, True),
        ("Edit", {"file_path": "/home/me/project/setup.py"}, False)]
    for tool, tool_input, allowed in cases:
        decision = engine.authorize("ToolCall", tool, {"input": tool_input})
        assert decision.allowed is allowed, (tool, tool_input)


def test_fail_closed_entry_point_directly(config, project):
    out, err = io.StringIO(), io.StringIO()
    event = json.dumps(pre_tool_use(project, "Bash", {"command": "ls"}))
    assert run_claude_code_hook(config, io.StringIO(event), out, err) == 0
    assert json.loads(out.getvalue())["hookSpecificOutput"]["permissionDecision"] == "allow"
    out, err = io.StringIO(), io.StringIO()
    assert run_claude_code_hook("missing", io.StringIO(event), out, err) == 2
    assert out.getvalue() == "" and err.getvalue().startswith("aegis: blocked: hook failed: no config named")


def test_parallel_hook_calls_all_answer_and_all_are_recorded(config, project):
    """Claude Code runs hooks of parallel tool calls at the same time: none may fail (and so block)."""
    argv = [*aegis_command(), "hook", "claude-code", "--config", config]
    procs = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(8)]
    for i, proc in enumerate(procs):  # every process gets its event before any answer is read
        proc.stdin.write(json.dumps(pre_tool_use(project, "Bash", {"command": f"echo {i}"})))
        proc.stdin.close()
    for proc in procs:
        out, err = proc.stdout.read(), proc.stderr.read()
        assert proc.wait(timeout=120) == 0, err
        assert json.loads(out)["hookSpecificOutput"]["permissionDecision"] == "allow"
    assert len(entries(config, action="ToolCall")) == 8
    with open_ledger(load_config(config)) as ledger:
        assert ledger.verify().ok
