"""What `aegis run` and `aegis wrap` share: the session options and the end-of-session report."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import click

from aegis.config import OBSERVER_MODES, Config
from aegis.sandbox.session import run_command, summary, summary_line


def session_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --observer, --no-snapshot, --json and the CMD argument to a command."""
    for decorate in reversed([
        click.option("--observer", type=click.Choice(OBSERVER_MODES), default=None,
                     help="Observation mechanism for this session (default: the config's observer.mode, "
                          "normally auto = seccomp where available, else inotify). Recorded in the session."),
        click.option("--no-snapshot", is_flag=True,
                     help="Skip the snapshot diff of the project (and other writable) directories at session "
                          "start and end (the FileChange records); config key snapshot.enabled does the same."),
        click.option("--json", "as_json", is_flag=True, help="Print the session summary as JSON (on stderr)."),
        click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED),
    ]):
        command = decorate(command)
    return command


def run_and_report(config: Config, command: Sequence[str], mode: str, *, observer: str | None,
                   no_snapshot: bool, as_json: bool) -> int:
    """Run the session, print its one-line (or JSON) summary on stderr, return CMD's exit code."""
    result = run_command(config, command, mode, snapshot=not no_snapshot, observer=observer)
    data = summary(config.name, result)
    click.echo(json.dumps(data, sort_keys=True) if as_json else summary_line(data), err=True)
    return result.exit_code
