"""Policy history: what changed between two recorded policy sets."""

from __future__ import annotations

import difflib

from aegis.ledger.model import PolicyVersion


def diff_versions(old: PolicyVersion | None, new: PolicyVersion) -> str:
    """A unified diff over every file of the two policy sets (added and removed files
    diff against nothing)."""
    old_files = old.files if old else {}
    lines: list[str] = []
    for name in sorted(set(old_files) | set(new.files)):
        before, after = old_files.get(name), new.files.get(name)
        if before == after:
            continue
        lines.extend(difflib.unified_diff(
            (before or "").splitlines(keepends=True), (after or "").splitlines(keepends=True),
            fromfile=f"a/{name}" if before is not None else "/dev/null",
            tofile=f"b/{name}" if after is not None else "/dev/null"))
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
