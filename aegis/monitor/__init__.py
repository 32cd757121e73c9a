"""The live dashboard (`aegis monitor NAME`): tails a config's ledger in a full-screen view."""

from __future__ import annotations

from aegis.config import Config
from aegis.ledger import open_ledger
from aegis.monitor.app import run_dashboard
from aegis.policy.engine import PolicyEngine, PolicyError


def policies_in_force(config: Config) -> list[tuple[str, str, str]]:
    """(id, effect, "file:line") of the config's policies; invalid ones are listed as problems."""
    try:
        engine = PolicyEngine.from_files(config.policy_files(), config.name)
    except PolicyError as exc:
        return [("INVALID", "-", str(problem)) for problem in exc.problems]
    return [(p.id, p.effect, f"{p.file}:{p.line}") for p in engine.policies]


def monitor(config: Config, refresh: float = 0.25) -> None:
    """Run the dashboard over ``config``'s ledger until the user quits."""
    with open_ledger(config) as ledger:
        run_dashboard(ledger, config.name, policies_in_force(config), refresh)
