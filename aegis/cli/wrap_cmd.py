"""``aegis wrap``."""

from __future__ import annotations

from pathlib import Path

import click

from aegis.cli.session_opts import run_and_report, session_options
from aegis.policy.templates import TEMPLATES
from aegis.sandbox.session import config_for_wrap


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--dir", "project_dir", default=None,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Project directory (default: the current directory, or the wrap's existing one).")
@click.option("--policy", "template", type=click.Choice(TEMPLATES), default=None,
              help="Policy template (default: permit-all: observe everything, block nothing). "
                   "Given on an existing wrap, it replaces the wrap's policies; the ledger is kept.")
@click.option("--name", default=None, help="Wrap name (default: the command's name).")
@session_options
def wrap(project_dir: Path | None, template: str | None, name: str | None, observer: str | None, no_snapshot: bool,
         as_json: bool, command: tuple[str, ...]) -> int:
    """Observe CMD: aegis wrap -- CMD ARGS.

    Records every action of CMD and its children in ~/.aegis/wraps/NAME/, reused
    across invocations so sessions accumulate (`aegis audit sessions NAME`). The
    default policy blocks nothing; with --policy (e.g. allow-read-only) the
    policy is enforced exactly as in `aegis run`. Aegis's own state is never
    reachable by CMD in any mode. Exits with CMD's exit code.
    """
    config = config_for_wrap(command, name, template, project_dir)
    return run_and_report(config, command, "wrap", observer=observer, no_snapshot=no_snapshot, as_json=as_json)
