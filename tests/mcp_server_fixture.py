"""A small MCP server (official `mcp` SDK, stdio) for the MCP proxy tests.

Every call that reaches a tool is appended to the file named by
$AEGIS_TEST_MCP_LOG, so tests can prove a denied call never got here.
"""

from __future__ import annotations

import os

from mcp.server.mcpserver import Context, MCPServer

app = MCPServer("fixture")


def _log(line: str) -> None:
    with open(os.environ["AEGIS_TEST_MCP_LOG"], "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


@app.tool()
def echo(text: str) -> str:
    """Return the text."""
    _log(f"echo {text}")
    return text


@app.tool()
async def count(n: int, ctx: Context) -> str:
    """Count to n, reporting progress at each step."""
    _log(f"count {n}")
    for i in range(n):
        await ctx.report_progress(i + 1, n)
    return f"counted {n}"


@app.tool()
def write_file(path: str, text: str) -> str:
    """Write text to path (under `--sandbox` the kernel decides whether it may)."""
    _log(f"write_file {path}")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return f"wrote {path}"


@app.tool()
def wipe(path: str) -> str:
    """Pretend to delete everything under path."""
    _log(f"wipe {path}")
    return f"wiped {path}"


if __name__ == "__main__":
    app.run()
