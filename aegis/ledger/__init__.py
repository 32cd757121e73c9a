"""The tamper-evident audit ledger (see docs/contracts.md for the interface).

``open_ledger(config)`` is how the rest of Aegis gets a config's ledger, with its
signing key and outside checkpoint file; ``initialize_ledger(config)`` creates
both when a config is made.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from aegis.ledger.ledger import Ledger
from aegis.ledger.model import Checkpoint, Entry, Event, PolicyVersion, Session, VerifyResult
from aegis.ledger.signing import ensure_signing_key

if TYPE_CHECKING:
    from aegis.config import Config

__all__ = ["Checkpoint", "Entry", "Event", "Ledger", "PolicyVersion", "Session", "VerifyResult", "initialize_ledger",
           "ledger_origin", "open_ledger"]


def ledger_origin(config: Config) -> str:
    """The checkpoint origin (and signing key name) of a config's ledger."""
    return f"aegis/{config.name}"


def open_ledger(config: Config) -> Ledger:
    """The config's ledger, signing with the config's key (created if missing and the
    config directory is writable) and copying checkpoints to its checkpoint file."""
    if not (config.keys_dir / "ledger.key").exists() and os.access(config.directory, os.W_OK):
        ensure_signing_key(config.keys_dir, ledger_origin(config))
    return Ledger.open(config.ledger_path, principal=config.name, key_dir=config.keys_dir,
                       checkpoint_file=config.checkpoints_path, origin=ledger_origin(config))


def initialize_ledger(config: Config) -> None:
    """Create the config's signing key and an empty ledger (keeping existing ones)."""
    ensure_signing_key(config.keys_dir, ledger_origin(config))
    Ledger.open(config.ledger_path, principal=config.name, key_dir=config.keys_dir,
                checkpoint_file=config.checkpoints_path, origin=ledger_origin(config)).close()
