"""The fail-closed entry point of the Claude Code hook.

Kept free of click and of Aegis's heavier modules until it runs, so a caller can
answer a hook event without paying for the whole CLI (start-up time is on the
agent's critical path). Every failure, including one importing Aegis itself,
becomes exit code 2: the one code Claude Code treats as "block the tool call".
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

BLOCK_EXIT_CODE = 2


def run_claude_code_hook(config_name: str, stdin: TextIO | None = None, stdout: TextIO | None = None,
                         stderr: TextIO | None = None) -> int:
    """Answer one hook event from ``stdin`` on ``stdout``; returns the exit code (0, or 2 to block)."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    try:
        from aegis.integrations.claude_code import handle_event, parse_event

        answer = handle_event(config_name, parse_event(stdin.read()))
        if answer.stdout is not None:
            stdout.write(json.dumps(answer.stdout) + "\n")
        stdout.flush()
        return 0
    except BaseException as exc:  # noqa: BLE001 - fail closed on everything, including interrupts
        message = str(exc).replace("\n", " ") or type(exc).__name__
        stderr.write(f"aegis: blocked: hook failed: {message}\n")
        stderr.flush()
        return BLOCK_EXIT_CODE
