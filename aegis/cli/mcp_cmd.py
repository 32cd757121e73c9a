"""``aegis mcp-proxy``: govern an MCP server's tools with the config's policies."""

from __future__ import annotations

import click


@click.command("mcp-proxy",
               context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--config", "config_name", required=True, help="Aegis config whose policies and ledger to use.")
@click.option("--server", "server", default=None,
              help="Server name in resources mcp:<server>:<tool> (default: SERVER_CMD's file name).")
@click.option("--sandbox", is_flag=True,
              help="Run the server itself under `aegis run` with the same config (kernel enforcement).")
@click.argument("server_argv", nargs=-1, required=True, type=click.UNPROCESSED)
def mcp_proxy(config_name: str, server: str | None, sandbox: bool, server_argv: tuple[str, ...]) -> int:
    """Run a stdio MCP server behind a policy-enforcing proxy.

    Point the MCP client at `aegis mcp-proxy --config NAME -- SERVER_CMD ARGS`
    instead of SERVER_CMD. Every tools/call is decided as ToolCall on
    mcp:<server>:<tool> with the call's arguments as context.input; denied
    calls get an isError result and never reach the server; tools/list hides
    tools the policy denies; calls, decisions and results go to the ledger.
    Everything else passes through unchanged. With --sandbox the server runs
    under `aegis run --config NAME`: its own file, process and network actions
    are enforced by the kernel too. Exits with the server's code.
    """
    from aegis.integrations.mcp_proxy import run_proxy

    return run_proxy(config_name, list(server_argv), server, sandbox)
