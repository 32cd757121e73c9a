"""The live dashboard (`aegis monitor NAME`): tails a config's ledger in a full-screen view."""

from __future__ import annotations

from aegis.config import Config
from aegis.ledger import open_ledger
from aegis.monitor.app import run_dashboard
from aegis.report import policies_in_force


def monitor(config: Config, refresh: float = 0.25) -> None:
    """Run the dashboard over ``config``'s ledger until the user quits."""
    with open_ledger(config) as ledger:
        run_dashboard(ledger, config.name, policies_in_force(config), refresh)
