"""Policy texts as every decider sees them, without cedarpy: reading the files (and
naming them as ``PolicyEngine.from_files`` does), the ToolCall input record of a
request, and the content key of anything computed from policies (the sessions'
compiled policy, the hook's decision rules)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aegis.errors import AegisError

# The ToolCall input fields a request carries (the schema's ToolInput), besides `arguments`.
TOOL_INPUT_KEYS = ("file_path", "command", "url", "pattern", "path", "content")


def read_policy_files(files: list[Path]) -> tuple[dict[str, str], dict[str, str]]:
    """``({path: text}, {source name: text})``: a source is named by its file name, or by
    its whole path when another file of that name came first."""
    texts: dict[str, str] = {}
    sources: dict[str, str] = {}
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AegisError(f"{f}: cannot read policy file: {exc}") from None
        texts[str(f)] = text
        sources[f.name if f.name not in sources else str(f)] = text
    return texts, sources


def read_policy_sources(files: list[Path]) -> dict[str, str]:
    """``{source name: text}`` of ``files`` (see ``read_policy_files``)."""
    return read_policy_files(files)[1]


def tool_input_record(raw: dict[str, Any]) -> dict[str, str]:
    """The ``context.input`` record of a ToolCall request for the tool input ``raw``."""
    record = {k: str(raw[k]) for k in TOOL_INPUT_KEYS if k in raw and raw[k] is not None}
    record["arguments"] = json.dumps(raw, sort_keys=True, default=str)
    return record


def content_key(header: str, code: Iterable[Path], sources: dict[str, str]) -> str:
    """SHA-256 over ``header``, the bytes of the ``code`` files that compute the result,
    and every source's name and text (length-prefixed, so no two inputs collide)."""
    digest = hashlib.sha256(header.encode())
    for path in code:
        digest.update(path.read_bytes())
        digest.update(b"\0")
    for name, text in sources.items():
        for part in (name, text):
            raw = part.encode("utf-8", "surrogateescape")
            digest.update(len(raw).to_bytes(8, "big") + raw)
    return digest.hexdigest()
