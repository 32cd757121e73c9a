"""``aegis run``."""

from __future__ import annotations

import json

import click

from aegis.config import OBSERVER_MODES
from aegis.policy.templates import TEMPLATES
from aegis.sandbox.session import config_for_run, run_command, summary, summary_line


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--config", "config_name", default=None, metavar="NAME",
              help="Config to run under (default: one named after the command, created when missing).")
@click.option("--policy", "template", type=click.Choice(TEMPLATES), default=None,
              help="Template for the config created when it is missing (default: allow-read-only).")
@click.option("--observer", type=click.Choice(OBSERVER_MODES), default=None,
              help="Observation mechanism for this session (default: the config's observer.mode, "
                   "normally auto = seccomp where available, else inotify). Recorded in the session.")
@click.option("--no-snapshot", is_flag=True,
              help="Skip the snapshot diff of the project (and other writable) directories at session "
                   "start and end (the FileChange records); config key snapshot.enabled does the same.")
@click.option("--json", "as_json", is_flag=True, help="Print the session summary as JSON (on stderr).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
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
    result = run_command(config, command, "run", snapshot=not no_snapshot, observer=observer)
    data = summary(config.name, result)
    click.echo(json.dumps(data, sort_keys=True) if as_json else summary_line(data), err=True)
    return result.exit_code
