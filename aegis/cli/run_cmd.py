"""``aegis run``."""

from __future__ import annotations

import click

from aegis.cli.session_opts import run_and_report, session_options
from aegis.policy.templates import TEMPLATES
from aegis.sandbox.session import config_for_run


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--config", "config_name", default=None, metavar="NAME",
              help="Config to run under (default: one named after the command, created when missing).")
@click.option("--policy", "template", type=click.Choice(TEMPLATES), default=None,
              help="Template for the config created when it is missing (default: allow-read-only).")
@session_options
def run(config_name: str | None, template: str | None, observer: str | None, no_snapshot: bool, as_json: bool,
        command: tuple[str, ...]) -> int:
    """Run CMD under kernel enforcement and observation: aegis run -- CMD ARGS.

    Every file read/write/delete, directory creation and listing, process start
    and exit and network connection of CMD and all its children is decided by the
    config's Cedar policies (Landlock + seccomp; default-deny) and recorded in
    the config's ledger. Without --config, a config named after the command is
    created with the allow-read-only template. Exits with CMD's exit code
    (128+N when it was killed by signal N).
    """
    config = config_for_run(command, config_name, template)
    return run_and_report(config, command, "run", observer=observer, no_snapshot=no_snapshot, as_json=as_json)
