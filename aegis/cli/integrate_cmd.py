"""``aegis integrate``: install Aegis into an agent's own configuration."""

from __future__ import annotations

from pathlib import Path

import click

from aegis.cli.output import echo_json


@click.group()
def integrate() -> None:
    """Install (or remove) Aegis hooks in an agent's configuration."""


@integrate.command("claude-code")
@click.option("--project", "project", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Project whose .claude/settings.json to change (default: current directory).")
@click.option("--user", is_flag=True, help="Change ~/.claude/settings.json (every project) instead.")
@click.option("--config", "config_name", required=True, help="Aegis config the hooks decide and record with.")
@click.option("--remove", is_flag=True, help="Take out the hooks a previous integrate added for this config.")
@click.option("--json", "as_json", is_flag=True, help="Print what changed as JSON.")
def claude_code(project: Path | None, user: bool, config_name: str, remove: bool, as_json: bool) -> None:
    """Add Aegis hooks to Claude Code's settings.json (other settings are kept).

    Every PreToolUse is then decided by the config's policies (ToolCall, plus
    FileRead/FileWrite for file tools) and every hook event is recorded in its
    ledger. --remove undoes exactly this.
    """
    from aegis.errors import AegisError
    from aegis.integrations import claude_code as cc

    if user and project is not None:
        raise AegisError("--project and --user are exclusive: choose one settings file")
    path = cc.settings_path(project, user)
    changed = cc.remove(path, config_name) if remove else cc.integrate(path, config_name)
    if as_json:
        echo_json({"settings": str(path), "config": config_name, "removed" if remove else "added": changed})
        return
    verb = "removed" if remove else "added"
    if changed:
        click.echo(f"{verb} Aegis hooks for config {config_name!r} in {path}: {', '.join(changed)}")
    else:
        click.echo(f"nothing to do: {path} {'has no' if remove else 'already has the'} Aegis hooks for "
                   f"config {config_name!r}")
