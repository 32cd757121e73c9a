"""Where Aegis keeps its state, and how a name given on the command line finds it.

Layout under the Aegis home (``$AEGIS_HOME`` or ``~/.aegis``, mode 0700)::

    NAME/aegis.toml, NAME/policies/*.cedar, NAME/ledger.db   configs made by `aegis init`
    wraps/NAME/...                                            configs made by `aegis wrap`
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from aegis.errors import AegisError

CONFIG_FILE = "aegis.toml"
WRAPS_DIR = "wraps"
MAX_NAME_LEN = 64


def aegis_home() -> Path:
    """The Aegis home directory (not created here; see ``ensure_home``)."""
    env = os.environ.get("AEGIS_HOME")
    return Path(env).expanduser().absolute() if env else Path.home() / ".aegis"


def ensure_home() -> Path:
    """Create the Aegis home with mode 0700 (and tighten it if it exists)."""
    home = aegis_home()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    return home


def validate_name(name: str) -> str:
    """Return ``name`` if it is a safe config name, else raise AegisError saying why."""
    if not name:
        raise AegisError("invalid name: it is empty")
    if len(name) > MAX_NAME_LEN:
        raise AegisError(f"invalid name: longer than {MAX_NAME_LEN} characters")
    if "/" in name or "\\" in name:
        raise AegisError(f"invalid name {name!r}: it contains a path separator")
    if name in (".", "..") or ".." in name:
        raise AegisError(f"invalid name {name!r}: it contains '..'")
    if name.startswith("."):
        raise AegisError(f"invalid name {name!r}: it starts with a dot")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise AegisError(f"invalid name {name!r}: it contains control characters")
    if name.startswith("-"):
        raise AegisError(f"invalid name {name!r}: it starts with '-'")
    if name == WRAPS_DIR:
        raise AegisError(f"invalid name {name!r}: reserved for wrap configurations")
    return name


def config_dir(name: str) -> Path:
    return aegis_home() / validate_name(name)


def wrap_dir(name: str) -> Path:
    return aegis_home() / WRAPS_DIR / validate_name(name)


def find_config_dir(name: str) -> Path:
    """The directory of config ``name``: an init config or a wrap, never both.

    Raises AegisError when there is none, or when the name is ambiguous.
    """
    plain, wrapped = config_dir(name), wrap_dir(name)
    has_plain, has_wrap = (plain / CONFIG_FILE).is_file(), (wrapped / CONFIG_FILE).is_file()
    if has_plain and has_wrap:
        raise AegisError(
            f"config {name!r} is ambiguous: both {plain} (aegis init) and {wrapped} (aegis wrap) exist; "
            "remove or rename one")
    if has_plain:
        return plain
    if has_wrap:
        return wrapped
    raise AegisError(f"no config named {name!r} (looked in {plain} and {wrapped}); create it with `aegis init {name}`")
