"""Agent integrations: tool calls governed by the same policies and ledger as kernel events.

``claude_code`` answers Claude Code hook events and installs the hooks;
``mcp_proxy`` sits between an MCP client and a stdio MCP server; ``toolcall``
holds what both share (canonical tool input, decisions).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def aegis_command() -> list[str]:
    """How another process starts this same aegis: the script beside this Python, else
    ``python -P -m aegis``. ``-P`` keeps the working directory off ``sys.path``: hooks run
    in the agent's project, and an ``aegis/`` directory there must not replace Aegis."""
    script = Path(sys.executable).with_name("aegis")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-P", "-m", "aegis"]
