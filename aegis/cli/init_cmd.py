"""``aegis init``."""

from __future__ import annotations

from pathlib import Path

import click

from aegis import paths
from aegis.errors import AegisError
from aegis.policy.templates import TEMPLATES
from aegis.provision import MODES, create_config


def _ask_name(value: str) -> str:
    try:
        return paths.validate_name(value)
    except AegisError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.argument("name", required=False)
@click.option("--policy", "template", type=click.Choice(TEMPLATES), default=None,
              help="Policy template (default: workspace-write).")
@click.option("--dir", "project_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Project directory the agent works in (default: current directory).")
@click.option("--network/--no-network", default=None, help="Allow network connections (default: no).")
@click.option("--force", is_flag=True, help="Overwrite an existing config (its ledger and keys are kept).")
def init(name: str | None, template: str | None, project_dir: Path | None, network: bool | None,
         force: bool) -> None:
    """Create a configuration in ~/.aegis/NAME/.

    Writes aegis.toml, policies/default.cedar from the template, and the ledger.
    Without NAME, an interactive wizard asks for the name, security mode,
    project directory and network; its answers may also come on stdin.
    """
    if name is None:
        name = click.prompt("Configuration name", value_proc=_ask_name)
        mode = click.prompt("Security mode", type=click.Choice(list(MODES)), default="workspace-write")
        template = template or MODES[mode]
        project_dir = project_dir or Path(click.prompt("Project directory", default=str(Path.cwd())))
        if network is None:
            network = click.confirm("Allow network connections?", default=False)
    config = create_config(paths.config_dir(name), name, template or "workspace-write", project_dir,
                           bool(network), force)
    click.echo(f"created config {config.name!r} in {config.directory}")
    click.echo(f"  project: {config.project_dir}")
    click.echo(f"  policies: {', '.join(str(p) for p in config.policy_files())}")
    click.echo(f"next: aegis run --config {config.name} -- CMD")
