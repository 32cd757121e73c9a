"""``aegis hook claude-code``: the command Claude Code runs for each hook event.

Fails closed: whatever goes wrong (bad input, missing config, invalid policy,
ledger error) exits with code 2, the one code Claude Code treats as "block",
with the reason on stderr (see ``aegis.integrations.hook_entry``).
"""

from __future__ import annotations

import sys

import click


@click.group()
def hook() -> None:
    """Answer agent hook events (run by the agent, not by people)."""


@hook.command("claude-code")
@click.option("--config", "config_name", required=True, help="Aegis config whose policies and ledger to use.")
def claude_code(config_name: str) -> None:
    """Decide and record one Claude Code hook event read from stdin.

    PreToolUse events are decided (ToolCall on the tool, plus FileRead/FileWrite
    for file tools) and answered with hookSpecificOutput.permissionDecision;
    PostToolUse, UserPromptSubmit, SessionStart and SessionEnd are recorded.
    Any error exits 2 (Claude Code blocks the tool call) with the reason on
    stderr. Install with `aegis integrate claude-code --config NAME`.
    """
    from aegis.integrations.hook_entry import run_claude_code_hook

    sys.exit(run_claude_code_hook(config_name))
