"""Built-in policy templates, rendered for this user and project.

Templates contain ``{{home}}``, ``{{project}}`` and ``{{aegis_home}}``, which only
appear inside Cedar ``like`` patterns; values are escaped for that context so a
path containing ``"``, ``\\`` or ``*`` can neither break nor widen a policy.
"""

from __future__ import annotations

from pathlib import Path

from aegis import paths
from aegis.errors import AegisError

TEMPLATES = ("default-deny", "allow-read-only", "permit-all", "workspace-write")
NETWORK_FRAGMENT = "network"


def like_literal(value: str) -> str:
    """Escape ``value`` so it matches itself literally inside a Cedar ``like`` pattern."""
    out = []
    for ch in value:
        if ch in '\\"*':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return "".join(out)


def template_text(name: str) -> str:
    if name not in TEMPLATES and name != NETWORK_FRAGMENT:
        raise AegisError(f"unknown policy template {name!r} (expected one of: {', '.join(TEMPLATES)})")
    from importlib import resources

    return resources.files("aegis.policy").joinpath("templates", f"{name}.cedar").read_text(encoding="utf-8")


def render_template(name: str, project_dir: Path, home: Path | None = None,
                    aegis_home: Path | None = None) -> str:
    """The template ``name`` with this user's home, project and Aegis home filled in."""
    values = {
        "home": str(home or Path.home()),
        "project": str(project_dir),
        "aegis_home": str(aegis_home or paths.aegis_home()),
    }
    text = template_text(name)
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", like_literal(value.rstrip("/") or "/"))
    return text
