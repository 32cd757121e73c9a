"""The click application: the ``aegis`` group and its lazily imported subcommands.

Subcommands are imported only when invoked, so ``--help`` or one command does not
pay for the whole package."""

from __future__ import annotations

import importlib

import click

# command name -> "module:attribute"; each module holds one command or group.
COMMANDS: dict[str, str] = {
    "setup": "aegis.cli.setup_cmd:setup",
    "init": "aegis.cli.init_cmd:init",
    "policy": "aegis.cli.policy_cmd:policy",
    "audit": "aegis.cli.audit_cmd:audit",
    "run": "aegis.cli.run_cmd:run",
    "wrap": "aegis.cli.wrap_cmd:wrap",
    "monitor": "aegis.cli.monitor_cmd:monitor",
    "report": "aegis.cli.report_cmd:report",
    "status": "aegis.cli.status_cmd:status",
    "hook": "aegis.cli.hook_cmd:hook",
    "integrate": "aegis.cli.integrate_cmd:integrate",
    "mcp-proxy": "aegis.cli.mcp_cmd:mcp_proxy",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="aegis-runtime", prog_name="aegis")
def cli() -> None:
    """Aegis: a zero-trust runtime for AI agents.

    Runs agents under kernel-enforced Cedar policies (default-deny), observes every
    file, process and network action per process, and records it all in a
    tamper-evident audit ledger.

    Start with `aegis setup`, then `aegis init NAME` or `aegis wrap -- CMD`.
    """
