"""Claude Code hooks: decide and record every tool call, and install the hooks.

Claude Code runs ``aegis hook claude-code --config NAME`` for each hook event
with the event as JSON on stdin. ``PreToolUse`` is decided (``ToolCall`` plus
the file action a file tool implies) and answered with a ``permissionDecision``;
the other events are recorded, and ``SessionEnd`` also writes a signed
checkpoint of the ledger. Exit codes follow Claude Code's rules: 0 means
the JSON on stdout is the answer, 2 blocks the tool call with stderr as the
reason, and anything else would let the call go ahead. So every failure inside
the hook is turned into exit code 2 (see ``aegis.integrations.hook_entry``):
fail closed.

``integrate`` merges the hook entries into a ``.claude/settings.json`` without
touching anything else in it; ``remove`` takes out exactly those entries.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aegis.actions import Action
from aegis.config import load_config, write_atomically
from aegis.errors import AegisError
from aegis.integrations import aegis_command
from aegis.integrations.toolcall import ToolGate, cap_text, resolved_path, tool_input_context
from aegis.ledger import Event, open_ledger
from aegis.policy.canonical import canonical_path

SOURCE = "hook:claude-code"
TOOL_EVENTS = ("PreToolUse", "PostToolUse")
SESSION_EVENTS = ("UserPromptSubmit", "SessionStart", "SessionEnd")
HOOK_EVENTS = TOOL_EVENTS + SESSION_EVENTS
# Tools whose input names a file, and the file action running them implies.
FILE_TOOLS = {
    "Read": Action.FileRead,
    "NotebookRead": Action.FileRead,
    "Write": Action.FileWrite,
    "Edit": Action.FileWrite,
    "MultiEdit": Action.FileWrite,
    "NotebookEdit": Action.FileWrite,
}
# Tools that search a directory (``path``, else the working directory).
LISTING_TOOLS = ("Glob", "Grep", "LS")


@dataclass
class HookAnswer:
    """What the hook prints (None: nothing) and the ledger events it recorded."""

    stdout: dict[str, Any] | None = None
    events: list[Event] = field(default_factory=list)


def parse_event(text: str) -> dict[str, Any]:
    """The hook event from stdin; raises AegisError when it is not one Claude Code sends."""
    try:
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AegisError(f"hook input is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise AegisError("hook input is not a JSON object")
    name = event.get("hook_event_name")
    if not isinstance(name, str) or not name:
        raise AegisError("hook input has no hook_event_name")
    if name in TOOL_EVENTS:
        if not isinstance(event.get("tool_name"), str) or not event["tool_name"]:
            raise AegisError(f"{name} hook input has no tool_name")
        if not isinstance(event.get("tool_input", {}), dict):
            raise AegisError(f"{name} hook input has a tool_input that is not an object")
    cwd = event.get("cwd")
    if cwd is not None and (not isinstance(cwd, str) or not cwd.startswith("/")):
        raise AegisError(f"hook input has a cwd that is not an absolute path: {cwd!r}")
    return event


def tool_resource(tool_name: str) -> str:
    """The ToolCall resource for a Claude Code tool: its name, except that MCP tools
    (``mcp__<server>__<tool>``) become ``mcp:<server>:<tool>``, the resource `aegis mcp-proxy`
    uses, so one policy governs an MCP tool whichever way the agent reaches it."""
    if tool_name.startswith("mcp__"):
        server, sep, tool = tool_name[len("mcp__"):].partition("__")
        if sep and server and tool:
            return f"mcp:{server}:{tool}"
    return tool_name


def implied_file_actions(tool: str, tool_input: dict[str, Any], cwd: str) -> list[tuple[Action, str]]:
    """The file actions running ``tool`` implies: on the path with its symlinks resolved and,
    when that differs, on the path as written too (a link must not launder either one)."""
    if tool in FILE_TOOLS:
        action, path = FILE_TOOLS[tool], tool_input.get("file_path") or tool_input.get("notebook_path")
        if not isinstance(path, str) or not path:
            raise AegisError(f"{tool} tool input has no file_path")
    elif tool in LISTING_TOOLS:
        action, path = Action.DirList, tool_input.get("path")
        path = path if isinstance(path, str) and path else cwd
    else:
        return []
    lexical = canonical_path(path, cwd)
    real = resolved_path(path, cwd)
    return [(action, real)] if real == lexical else [(action, real), (action, lexical)]


def handle_event(config_name: str, event: dict[str, Any]) -> HookAnswer:
    """Decide (PreToolUse) and record one hook event in the config's ledger."""
    gate = ToolGate.for_config(config_name)
    name = event["hook_event_name"]
    session = str(event.get("session_id", ""))
    cwd = event.get("cwd") or os.getcwd()
    common = {"session_id": session, "principal": gate.config.name, "pid": os.getppid(), "source": SOURCE}
    details = {"event": name, "cwd": cwd}
    answer = HookAnswer()
    if name in TOOL_EVENTS:
        tool, tool_input = event["tool_name"], event.get("tool_input", {})
        details.update(tool=tool, tool_use_id=event.get("tool_use_id", ""), input=cap_text(tool_input))
    if name == "PreToolUse":
        context_input = tool_input_context(tool_input, cwd)
        implied = implied_file_actions(tool, tool_input, cwd)
        verdict = gate.decide(tool_resource(tool), context_input, implied, session)
        reason = verdict.reason(gate.config.name)
        for check in verdict.checks:
            answer.events.append(Event(
                action=check.action.name, resource=check.resource, decision=check.decision.decision,
                policy_ids=list(check.decision.policy_ids), errors=list(check.decision.errors),
                reason=reason, details=dict(details), **common))
        answer.stdout = {"hookSpecificOutput": {"hookEventName": "PreToolUse",
                                                "permissionDecision": verdict.decision,
                                                "permissionDecisionReason": reason}}
    elif name == "PostToolUse":
        details["response"] = cap_text(event.get("tool_response"))
        answer.events.append(Event(action="ToolCall", resource=tool_resource(tool), decision="info",
                                   reason="tool finished", details=details, **common))
    else:
        for key in ("prompt", "source", "reason", "model"):
            if key in event:
                details[key] = cap_text(event[key])
        answer.events.append(Event(action="ObserverNote", resource=f"claude-code:{name}", decision="info",
                                   reason=f"Claude Code {name}", details=details, **common))
    with open_ledger(gate.config) as ledger:
        policy_hash = ledger.record_policy_snapshot(gate.sources)
        for recorded in answer.events:
            recorded.details["policy_hash"] = policy_hash
        ledger.append(answer.events)
        if name == "SessionEnd":  # like every session, a Claude Code session ends with a signed checkpoint
            ledger.checkpoint()
    return answer


# ---- settings.json -------------------------------------------------------------------------

def hook_command(config_name: str) -> str:
    """The shell command Claude Code runs for each hook event."""
    return shlex.join([*aegis_command(), "hook", "claude-code", "--config", config_name])


def hook_entries(config_name: str) -> dict[str, dict[str, Any]]:
    """The matcher group added to each hook event (tool events match every tool)."""
    handler = {"type": "command", "command": hook_command(config_name)}
    return {event: ({"matcher": "*", "hooks": [handler]} if event in TOOL_EVENTS else {"hooks": [handler]})
            for event in HOOK_EVENTS}


def settings_path(project: Path | None, user: bool) -> Path:
    if user:
        return Path.home() / ".claude" / "settings.json"
    return (project or Path.cwd()).expanduser().absolute() / ".claude" / "settings.json"


def _is_aegis_group(group: Any, config_name: str) -> bool:
    """Whether ``group`` is a matcher group ``integrate`` added for ``config_name`` (wherever aegis lives)."""
    if not isinstance(group, dict) or not isinstance(group.get("hooks"), list) or len(group["hooks"]) != 1:
        return False
    handler = group["hooks"][0]
    if not isinstance(handler, dict) or handler.get("type") != "command":
        return False
    if not isinstance(handler.get("command"), str):
        return False
    try:
        argv = shlex.split(handler["command"])
    except ValueError:
        return False
    return argv[-4:] == ["hook", "claude-code", "--config", config_name]


def _read_settings(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise AegisError(f"{path}: cannot read: {exc}") from None
    try:
        settings = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise AegisError(f"{path}: not valid JSON ({exc}); fix it before integrating") from None
    if not isinstance(settings, dict):
        raise AegisError(f"{path}: settings are not a JSON object")
    hooks = settings.get("hooks", {})
    if not isinstance(hooks, dict):
        raise AegisError(f"{path}: \"hooks\" is not a JSON object")
    for event in HOOK_EVENTS:
        if not isinstance(hooks.get(event, []), list):
            raise AegisError(f"{path}: \"hooks\".\"{event}\" is not a list")
    return settings


def _write_settings(path: Path, settings: dict[str, Any]) -> None:
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    write_atomically(path, (json.dumps(settings, indent=2, ensure_ascii=False) + "\n").encode(), mode=mode)


def integrate(settings_file: Path, config_name: str) -> list[str]:
    """Add the Aegis hooks for ``config_name``; returns the events that gained an entry."""
    load_config(config_name)  # a hook for a config that does not exist would deny every tool call
    settings = _read_settings(settings_file)
    hooks = settings.setdefault("hooks", {})
    added = []
    for event, group in hook_entries(config_name).items():
        groups = hooks.setdefault(event, [])
        if not any(_is_aegis_group(g, config_name) for g in groups):
            groups.append(group)
            added.append(event)
    if added:
        _write_settings(settings_file, settings)
    return added


def remove(settings_file: Path, config_name: str) -> list[str]:
    """Take out the hooks ``integrate`` added for ``config_name``; returns the events changed."""
    if not settings_file.exists():
        return []
    settings = _read_settings(settings_file)
    hooks = settings.get("hooks", {})
    removed = []
    for event in HOOK_EVENTS:
        groups = hooks.get(event)
        if not groups:
            continue
        kept = [g for g in groups if not _is_aegis_group(g, config_name)]
        if len(kept) != len(groups):
            removed.append(event)
            if kept:
                hooks[event] = kept
            else:
                del hooks[event]
    if removed:
        if "hooks" in settings and not hooks:
            del settings["hooks"]
        _write_settings(settings_file, settings)
    return removed
