"""Creating configurations (``aegis init``, and the automatic ones of ``run`` and ``wrap``).

A config is built in a temporary sibling directory and renamed into place, so an
error never leaves a half-made config behind. ``--force`` rewrites the config
and policies but keeps the ledger, keys and checkpoints: nothing recorded is lost.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from aegis import paths
from aegis.config import Config, save_config, write_atomically
from aegis.errors import AegisError
from aegis.ledger import initialize_ledger
from aegis.policy.engine import PolicyEngine
from aegis.policy.templates import NETWORK_FRAGMENT, TEMPLATES, render_template

# Wizard security modes -> templates.
MODES = {
    "observe-only": "permit-all",
    "read-only": "allow-read-only",
    "workspace-write": "workspace-write",
    "lockdown": "default-deny",
}
KEEP_ON_FORCE = ("ledger.db", "ledger.db-wal", "ledger.db-shm", "keys", "checkpoints.log")


def create_config(directory: Path, name: str, template: str = "workspace-write", project_dir: Path | None = None,
                  network: bool = False, force: bool = False, observer: str = "auto") -> Config:
    """Create config ``name`` in ``directory`` with ``template`` rendered for ``project_dir``."""
    paths.validate_name(name)
    if template not in TEMPLATES:
        raise AegisError(f"unknown policy template {template!r} (expected one of: {', '.join(TEMPLATES)})")
    project = (project_dir or Path.cwd()).expanduser().absolute()
    if not project.is_dir():
        raise AegisError(f"project directory {project} does not exist or is not a directory")
    exists = (directory / paths.CONFIG_FILE).exists()
    if exists and not force:
        raise AegisError(f"config {name!r} already exists at {directory}; use --force to overwrite it "
                         "(the ledger is kept)")
    paths.ensure_home()
    directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    policies = {"default.cedar": render_template(template, project)}
    if network and template != "permit-all":
        policies["network.cedar"] = render_template(NETWORK_FRAGMENT, project)
    PolicyEngine.from_sources(policies, name)  # a template that does not validate is a bug: fail loudly

    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=directory.parent))
    try:
        os.chmod(staging, 0o700)
        config = Config(name=name, directory=staging, project_dir=project,
                        policy_paths=[staging / "policies"], ledger_path=staging / "ledger.db",
                        observer=observer)
        for filename, text in policies.items():
            write_atomically(staging / "policies" / filename, text.encode())
        save_config(config)
        if exists:
            for keep in KEEP_ON_FORCE:
                if (directory / keep).exists():
                    os.replace(directory / keep, staging / keep)
            shutil.rmtree(directory)
        initialize_ledger(config)
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    from aegis.config import load_config_dir

    return load_config_dir(directory)
