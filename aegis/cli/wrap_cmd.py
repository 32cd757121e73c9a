"""``aegis wrap``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from aegis.config import OBSERVER_MODES
from aegis.policy.templates import TEMPLATES
from aegis.sandbox.session import config_for_wrap, run_command, summary, summary_line


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--dir", "project_dir", default=None,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Project directory (default: the current directory, or the wrap's existing one).")
@click.option("--policy", "template", type=click.Choice(TEMPLATES), default=None,
              help="Policy template (default: permit-all: observe everything, block nothing). "
                   "Given on an existing wrap, it replaces the wrap's policies; the ledger is kept.")
@click.option("--name", default=None, help="Wrap name (default: the command's name).")
@click.option("--observer", type=click.Choice(OBSERVER_MODES), default=None,
              help="Observation mechanism for this session (default: the config's observer.mode, "
                   "normally auto = seccomp where available, else inotify). Recorded in the session.")
@click.option("--no-snapshot", is_flag=True,
              help="Skip the snapshot diff of the project (and other writable) directories at session "
                   "start and end (the FileChange records); config key snapshot.enabled does the same.")
@click.option("--json", "as_json", is_flag=True, help="Print the session summary as JSON (on stderr).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
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
    result = run_command(config, command, "wrap", snapshot=not no_snapshot, observer=observer)
    data = summary(config.name, result)
    click.echo(json.dumps(data, sort_keys=True) if as_json else summary_line(data), err=True)
    return result.exit_code
