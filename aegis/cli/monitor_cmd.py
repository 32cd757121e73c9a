"""``aegis monitor``."""

from __future__ import annotations

import click

from aegis.config import load_config


@click.command()
@click.argument("name")
@click.option(
    "--refresh",
    default=0.25,
    show_default=True,
    type=click.FloatRange(0.05, 10.0),
    help="Seconds between screen updates.",
)
def monitor(name: str, refresh: float) -> None:
    """Live dashboard of config NAME's ledger.

    Shows new entries as they are recorded: a feed (time, pid, executable,
    action, resource, decision), counts per action and decision, sessions,
    denials and an events/s sparkline.

    Keys: q quit, / filter (substring, or action:FileWrite decision:deny
    pid:123 session:ID exe:NAME; Enter keeps, Esc clears), d denials only,
    s sessions (Up/Down, Enter drills into one), p policies in force, ? help,
    Esc back.
    """
    from aegis.monitor import monitor as run_monitor

    run_monitor(load_config(name), refresh)
