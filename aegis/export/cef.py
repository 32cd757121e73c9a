"""ArcSight Common Event Format, one line per entry:
``CEF:0|Aegis|Aegis Runtime|<version>|<action>|<action> <decision>|<severity>|<extension>``.

Escaping follows the CEF spec: in header fields ``\\`` and ``|``; in extension
values ``\\`` and ``=``; line breaks everywhere as ``\\n`` / ``\\r``, so a value
can neither end the record nor forge another key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from importlib import metadata
from typing import TextIO

from aegis.ledger import Entry

SEVERITY = {"deny": 7, "info": 3, "allow": 1}
OUTCOME = {"allow": "success", "deny": "failure", "info": "info"}


def _version() -> str:
    try:
        return metadata.version("aegis-runtime")
    except metadata.PackageNotFoundError:
        return "unknown"


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")


def escape_header(text: str) -> str:
    return _newlines(text.replace("\\", "\\\\").replace("|", "\\|"))


def escape_extension(text: str) -> str:
    return _newlines(text.replace("\\", "\\\\").replace("=", "\\="))


def _is_path(entry: Entry) -> bool:
    return entry.resource.startswith("/")


def cef_line(entry: Entry, version: str) -> str:
    header = ["CEF:0", "Aegis", "Aegis Runtime", version, entry.action, f"{entry.action} {entry.decision}",
              str(SEVERITY.get(entry.decision, 5))]
    extension: list[tuple[str, str]] = [
        ("rt", str(entry.ts_ns // 1_000_000)),
        ("act", entry.decision),
        ("outcome", OUTCOME.get(entry.decision, entry.decision)),
    ]
    if _is_path(entry):
        extension += [("fname", os.path.basename(entry.resource)), ("filePath", entry.resource)]
    extension += [("spid", str(entry.pid)), ("sproc", entry.executable), ("suser", entry.principal)]
    # Custom fields travel with their label, and only when they have a value.
    for key, label, value in (("cs1", "policyId", ",".join(entry.policy_ids)),
                              ("cs2", "entryHash", entry.hash),
                              ("cs3", "resource", "" if _is_path(entry) else entry.resource),
                              ("cs4", "sessionId", entry.session_id), ("cn1", "seq", str(entry.seq))):
        if value:
            extension += [(f"{key}Label", label), (key, value)]
    if entry.reason:
        extension.append(("msg", entry.reason))
    return ("|".join([header[0]] + [escape_header(h) for h in header[1:]]) + "|"
            + " ".join(f"{key}={escape_extension(value)}" for key, value in extension if value != ""))


def write_cef(entries: Iterable[Entry], out: TextIO) -> int:
    version = _version()
    count = 0
    for entry in entries:
        out.write(cef_line(entry, version) + "\n")
        count += 1
    return count
