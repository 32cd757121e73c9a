"""Choosing the configuration of `aegis run` / `aegis wrap` and running a session
on this platform. The CLI commands are thin skins over these functions."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from aegis import paths
from aegis.config import Config, load_config, load_config_dir
from aegis.errors import AegisError

RUN_DEFAULT_TEMPLATE = "allow-read-only"
WRAP_DEFAULT_TEMPLATE = "permit-all"


def name_for_command(command: Sequence[str]) -> str:
    """The config name derived from a command: its program's base name, made a valid name."""
    if not command:
        raise AegisError("no command given (put it after --, e.g. aegis run -- claude)")
    base = re.sub(r"[^A-Za-z0-9_.+-]", "-", os.path.basename(command[0])).lstrip(".-")[:paths.MAX_NAME_LEN]
    try:
        return paths.validate_name(base)
    except AegisError:
        raise AegisError(f"cannot derive a config name from {command[0]!r}; "
                         "pass one with --config/--name") from None


def resolve_command(command: Sequence[str]) -> str:
    """The absolute path of the program ``command`` runs (PATH searched like a shell)."""
    if not command:
        raise AegisError("no command given (usage: aegis run -- CMD ARGS)")
    exe = command[0] if "/" in command[0] else shutil.which(command[0])
    if not exe or not os.path.exists(exe):
        raise AegisError(f"command not found: {command[0]}", exit_code=127)
    return os.path.abspath(exe)


def config_for_run(command: Sequence[str], config_name: str | None, template: str | None) -> Config:
    """`aegis run`: the named config, or the command's own config, created (enforcing,
    ``allow-read-only`` unless ``template``) when it does not exist."""
    resolve_command(command)
    if config_name is not None and template is None:
        return load_config(config_name)
    name = paths.validate_name(config_name) if config_name is not None else name_for_command(command)
    directory = paths.config_dir(name)
    if (directory / paths.CONFIG_FILE).is_file():
        if template is not None:
            raise AegisError(f"config {name!r} already exists with its own policies; drop --policy, or pass "
                             "--config with another name")
        return load_config_dir(directory)
    if (paths.wrap_dir(name) / paths.CONFIG_FILE).is_file():
        raise AegisError(f"{name!r} is a wrap (aegis wrap); run it with `aegis wrap --name {name}`, or give "
                         "`aegis run` another config with --config")
    from aegis.provision import create_config  # only when creating: it imports the ledger and Cedar

    return create_config(directory, name, template or RUN_DEFAULT_TEMPLATE, Path.cwd())


def config_for_wrap(command: Sequence[str], name: str | None, template: str | None,
                    project_dir: Path | None) -> Config:
    """`aegis wrap`: ``~/.aegis/wraps/NAME`` reused across invocations; ``--policy`` or
    ``--dir`` rewrite its policies (the ledger, keys and checkpoints are kept)."""
    resolve_command(command)
    name = paths.validate_name(name) if name else name_for_command(command)
    if (paths.config_dir(name) / paths.CONFIG_FILE).is_file():
        raise AegisError(f"{name!r} is already an `aegis init` config; pick another wrap name with "
                         f"--name, or use `aegis run --config {name}`")
    directory = paths.wrap_dir(name)
    exists = (directory / paths.CONFIG_FILE).is_file()
    if exists and template is None and project_dir is None:
        return load_config_dir(directory)
    if exists and project_dir is None:
        project_dir = load_config_dir(directory).project_dir
    chosen = template or WRAP_DEFAULT_TEMPLATE
    from aegis.provision import create_config

    return create_config(directory, name, chosen, project_dir or Path.cwd(), network=chosen == "permit-all",
                         force=exists)


def run_command(config: Config, command: Sequence[str], mode: str,  # noqa: ANN201 (platform SessionResult)
                snapshot: bool = True, observer: str | None = None):
    """Run ``command`` under ``config`` on this platform; returns the session result.
    ``snapshot=False`` skips the snapshot diff of the writable roots (`--no-snapshot`);
    ``observer`` replaces the config's observer mode for this session (`--observer`)."""
    if not sys.platform.startswith("linux"):
        raise AegisError(f"`aegis {mode}` enforces with Landlock and seccomp, which need Linux "
                         f"(this is {sys.platform})")
    from aegis.sandbox.linux import run_session

    return run_session(config, command, mode=mode, snapshot=snapshot, observer_mode=observer)


def summary(config_name: str, result) -> dict[str, object]:  # noqa: ANN001 (platform SessionResult)
    """The session summary `aegis run` / `aegis wrap` print on stderr (stdout is the agent's)."""
    return {"config": config_name, "session": result.session_id, "exit_code": result.exit_code,
            "signal": result.signal, "state": result.state, "observer": result.observer,
            "counts": dict(result.counts)}


def summary_line(data: dict[str, object]) -> str:
    counts = data["counts"]
    assert isinstance(counts, dict)
    return (f"aegis: session {data['session']} {data['state']}: {counts.get('events', 0)} events, "
            f"{counts.get('denied', 0)} denied, {counts.get('dropped', 0)} dropped "
            f"(aegis audit query {data['config']})")
