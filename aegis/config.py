"""Configuration files (``aegis.toml``): read strictly, written atomically.

Every key is declared in ``_SPEC`` with its type; an unknown key or a value of
the wrong type is an error naming the key and the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aegis import paths
from aegis.errors import AegisError

ISOLATION_MODES = ("landlock", "process", "none", "seatbelt")
OBSERVER_MODES = ("auto", "seccomp", "fanotify", "inotify", "none")


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _choice(options: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and v in options


# key -> (description of the expected type, check). Nested tables use "table.key".
_SPEC: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "name": ("a string", lambda v: isinstance(v, str)),
    "project_dir": ("a string path", lambda v: isinstance(v, str)),
    "policy_paths": ("a list of string paths", _str_list),
    "ledger_path": ("a string path", lambda v: isinstance(v, str)),
    "allowed_network": ("a list of \"host:port\" strings", _str_list),
    "isolation.mode": (f"one of {', '.join(ISOLATION_MODES)}", _choice(ISOLATION_MODES)),
    "observer.mode": (f"one of {', '.join(OBSERVER_MODES)}", _choice(OBSERVER_MODES)),
    "snapshot.enabled": ("true or false", lambda v: isinstance(v, bool)),
    "snapshot.max_bytes": ("a non-negative integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
                           and v >= 0),
}
_TABLES = {key.split(".", 1)[0] for key in _SPEC if "." in key}


@dataclass
class Config:
    """A loaded configuration. Relative paths in the file are relative to ``directory``."""

    name: str
    directory: Path
    project_dir: Path
    policy_paths: list[Path]
    ledger_path: Path
    allowed_network: list[str] = field(default_factory=list)
    isolation: str = "landlock"
    observer: str = "auto"
    snapshot_enabled: bool = True
    snapshot_max_bytes: int = 0

    @property
    def file(self) -> Path:
        return self.directory / paths.CONFIG_FILE

    @property
    def keys_dir(self) -> Path:
        return self.directory / "keys"

    @property
    def checkpoints_path(self) -> Path:
        return self.directory / "checkpoints.log"

    def policy_files(self) -> list[Path]:
        """Every ``*.cedar`` file named by ``policy_paths`` (directories expanded, sorted)."""
        files: list[Path] = []
        for entry in self.policy_paths:
            if entry.is_dir():
                files.extend(sorted(entry.glob("*.cedar")))
            elif entry.is_file():
                files.append(entry)
            else:
                raise AegisError(f"{self.file}: policy path {entry} does not exist")
        return files

    def to_toml(self) -> dict[str, Any]:
        def rel(p: Path) -> str:
            try:
                return str(p.relative_to(self.directory))
            except ValueError:
                return str(p)

        return {
            "name": self.name,
            "project_dir": str(self.project_dir),
            "policy_paths": [rel(p) for p in self.policy_paths],
            "ledger_path": rel(self.ledger_path),
            "allowed_network": list(self.allowed_network),
            "isolation": {"mode": self.isolation},
            "observer": {"mode": self.observer},
            "snapshot": {"enabled": self.snapshot_enabled, "max_bytes": self.snapshot_max_bytes},
        }


def _flatten(data: dict[str, Any], file: Path) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                raise AegisError(f"{file}: [{key}] must be a table")
            for sub, subvalue in value.items():
                flat[f"{key}.{sub}"] = subvalue
        else:
            flat[key] = value
    return flat


def parse_config(text: str, directory: Path, file: Path | None = None) -> Config:
    """Parse and strictly check config text; relative paths resolve against ``directory``."""
    file = file or directory / paths.CONFIG_FILE
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AegisError(f"{file}: invalid TOML: {exc}") from None
    flat = _flatten(data, file)
    for key, value in flat.items():
        if key not in _SPEC:
            raise AegisError(f"{file}: unknown key {key!r}")
        expected, check = _SPEC[key]
        if not check(value):
            raise AegisError(f"{file}: key {key!r} must be {expected}, got {value!r}")
    for required in ("name", "project_dir", "policy_paths", "ledger_path"):
        if required not in flat:
            raise AegisError(f"{file}: missing required key {required!r}")

    def resolve(p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else directory / path

    return Config(
        name=paths.validate_name(flat["name"]),
        directory=directory,
        project_dir=Path(flat["project_dir"]).expanduser().absolute(),
        policy_paths=[resolve(p) for p in flat["policy_paths"]],
        ledger_path=resolve(flat["ledger_path"]),
        allowed_network=list(flat.get("allowed_network", [])),
        isolation=flat.get("isolation.mode", "landlock"),
        observer=flat.get("observer.mode", "auto"),
        snapshot_enabled=flat.get("snapshot.enabled", True),
        snapshot_max_bytes=flat.get("snapshot.max_bytes", 0),
    )


def load_config_dir(directory: Path) -> Config:
    file = directory / paths.CONFIG_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AegisError(f"{file}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AegisError(f"{file}: cannot read: {exc}") from None
    return parse_config(text, directory, file)


def load_config(name: str) -> Config:
    """Load config ``name`` (an init config or a wrap) from the Aegis home."""
    return load_config_dir(paths.find_config_dir(name))


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename (never half-written)."""
    import tempfile  # not on the hook's path: only writers pay for it

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_config(config: Config) -> None:
    import tomli_w  # only writers of a config pay for it

    write_atomically(config.file, tomli_w.dumps(config.to_toml()).encode())
