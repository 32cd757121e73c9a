"""``aegis report``."""

from __future__ import annotations

from pathlib import Path

import click

from aegis.config import load_config
from aegis.report import FORMATS, build_report, render_report
from aegis.report.collect import parse_time


@click.command()
@click.argument("name")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text for people, json for programs, html for one self-contained file with charts.",
)
@click.option(
    "--since", default=None, help="Start of the period (ISO-8601, UTC unless given; or epoch seconds)."
)
@click.option("--until", default=None, help="End of the period, exclusive (same forms as --since).")
@click.option("--session", default=None, help="Only this session id.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report to this file instead of standard output.",
)
def report(
    name: str, fmt: str, since: str | None, until: str | None, session: str | None, output: Path | None
) -> None:
    """Compliance report of config NAME's ledger.

    Period, agents and sessions, allow/deny per action class, top resources and
    top denied resources, every forbid-policy hit with its policy id, evaluation
    errors, observer drops, programs executed, network destinations, tool calls,
    policy changes with hashes and integrity evidence (verify result, signed
    checkpoints), each mapped to SOC 2, NIST SP 800-53 and EU AI Act Art. 12
    controls. The same ledger always gives the same report.
    """
    data = build_report(
        load_config(name),
        since_ns=parse_time(since) if since else None,
        until_ns=parse_time(until) if until else None,
        session=session,
    )
    text = render_report(data, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {fmt} report to {output}", err=True)
