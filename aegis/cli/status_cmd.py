"""``aegis status``."""

from __future__ import annotations

import click

from aegis.cli.output import echo_json
from aegis.status import FAIL, OK, config_status, healthy

_MARK = {OK: ("OK  ", "green"), "warn": ("WARN", "yellow"), FAIL: ("FAIL", "red")}


@click.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the items as JSON.")
def status(name: str, as_json: bool) -> int:
    """Health of config NAME.

    Checks, in order: the config file, its policies (count and ids), the
    ledger's integrity (full verify: chain and signed checkpoints), the last
    session and how it ended, and whether this machine can enforce and observe
    as the config asks. Exits 1 when any item FAILs (WARN is informational).
    """
    items = config_status(name)
    ok = healthy(items)
    if as_json:
        echo_json({"config": name, "healthy": ok, "items": [i.to_json() for i in items]})
    else:
        for item in items:
            mark, colour = _MARK[item.level]
            click.echo(f"{click.style(mark, fg=colour)}  {item.name:<13} {item.summary}")
        failing = [i.name for i in items if i.level == FAIL]
        if failing:
            click.echo(f"aegis: error: unhealthy: {', '.join(failing)}", err=True)
    return 0 if ok else 1
