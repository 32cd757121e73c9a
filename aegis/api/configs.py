"""Making a named configuration from Python (what `aegis init NAME` does)."""

from __future__ import annotations

import os
from pathlib import Path

from aegis import paths
from aegis.config import Config
from aegis.provision import create_config as _create_in


def create_config(name: str, *, template: str = "workspace-write", project_dir: str | os.PathLike[str] | None = None,
                  network: bool = False, force: bool = False, observer: str = "auto") -> Config:
    """Create config ``name`` in the Aegis home (``$AEGIS_HOME``, default ``~/.aegis``)
    with a built-in policy ``template`` (``default-deny``, ``allow-read-only``,
    ``workspace-write``, ``permit-all``) rendered for ``project_dir`` (default: the
    current directory). ``force`` rewrites an existing config, keeping its ledger.
    Load it again later with ``aegis.load_config(name)``."""
    return _create_in(paths.config_dir(name), name, template, None if project_dir is None else Path(project_dir),
                      network=network, force=force, observer=observer)
