"""``aegis setup``."""

from __future__ import annotations

import click

from aegis import paths
from aegis.cli.output import echo_json
from aegis.sandbox import capabilities


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checklist as JSON.")
def setup(as_json: bool) -> int:
    """Check what this machine can enforce and prepare the Aegis home.

    Each line is one kernel capability, probed with the real syscall: OK or
    MISSING, what it enables, and how to fix it. Creates ~/.aegis (or
    $AEGIS_HOME) with mode 0700. Exits 0 when kernel enforcement is possible,
    1 otherwise.
    """
    checks = capabilities.probe()
    home = paths.ensure_home()
    possible = capabilities.enforcement_possible(checks)
    if as_json:
        echo_json({"home": str(home), "enforcement_possible": possible,
                   "checks": [c.to_json() for c in checks]})
    else:
        for c in checks:
            status = click.style("OK     ", fg="green") if c.ok else click.style("MISSING", fg="red")
            click.echo(f"{status} {c.name:<20} {c.value:<28} {c.enables}")
            if not c.ok and c.fix:
                click.echo(f"{'':8}{'':21}fix: {c.fix}")
        click.echo(f"\nAegis home: {home}")
        verdict = "possible" if possible else "NOT possible (see the MISSING lines above)"
        click.echo(f"Kernel enforcement: {verdict}")
    return 0 if possible else 1
