"""Canonical paths: the only form a path takes before a policy decision.

Cedar's ``like`` lets ``*`` match ``/``, so ``/work/../etc/passwd`` or
``//etc/passwd`` must never reach a policy unnormalised. Canonicalisation here is
lexical (absolute, no ``.``, ``..`` or duplicate slashes); the observers resolve
symlinks in the agent's own view before calling into policy.
"""

from __future__ import annotations

import os

from aegis.errors import AegisError


def canonical_path(path: str | bytes, cwd: str | bytes | None = None) -> str:
    """Return the absolute, normalised form of ``path`` (relative to ``cwd``).

    Raises AegisError for a path that is empty, contains NUL, or is not UTF-8.
    """
    path = _text(path, "path")
    if not path:
        raise AegisError("invalid path: it is empty")
    if not path.startswith("/"):
        base = _text(cwd, "cwd") if cwd is not None else os.getcwd()
        if not base.startswith("/"):
            raise AegisError(f"invalid cwd {base!r}: it is not absolute")
        path = base + "/" + path
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def _text(value: str | bytes, what: str) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AegisError(f"invalid {what} {value!r}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if "\x00" in value:
        raise AegisError(f"invalid {what} {value!r}: it contains a NUL byte")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise AegisError(f"invalid {what} {value!r}: not valid UTF-8 (lone surrogate)") from None
    return value
