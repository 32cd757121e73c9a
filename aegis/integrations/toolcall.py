"""ToolCall decisions for agent tool invocations (Claude Code hooks, MCP tools).

An agent asking to run a tool is decided like any other action: the config's
Cedar policies see ``ToolCall`` with the tool name as resource and the tool's
input as ``context.input``. Before that, the input is put in the one form
policies can match safely, for the same reason file paths are canonicalised:

- path fields (``file_path``, ``path``, ``notebook_path``) become canonical
  absolute paths, resolved against the agent's working directory, with
  symlinks resolved (this process runs as the agent's user in its mount
  namespace, so it sees what the tool will open); a ``notebook_path`` is also
  offered as ``file_path``;
- ``url`` is rebuilt as ``scheme://host[:port]/path?query`` with user info
  dropped, the host lower-cased and any IP literal in its plain form, so
  ``http://x@0xa9fea9fe/`` reaches policy as ``http://169.254.169.254/``;
- ``command`` has its runs of whitespace collapsed to single spaces.

A file tool also implies a file action (``Read`` reads its ``file_path``,
``Write``/``Edit`` write it), decided by the same policies: a tool call runs
only when every one of its checks allows it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aegis.actions import Action
from aegis.config import Config, load_config
from aegis.errors import AegisError
from aegis.policy.canonical import canonical_path
from aegis.policy.compiled_rules import RULES_FILE, CompiledRules
from aegis.policy.decision import Decision
from aegis.policy.sources import read_policy_sources

PATH_KEYS = ("file_path", "path", "notebook_path")
# Recorded tool inputs and results are cut to this many characters.
RECORD_CAP = 4096
_IPV4_LITERAL = re.compile(r"^[0-9a-fx.]+$")


def cap_text(value: Any, limit: int = RECORD_CAP) -> str:
    """``value`` as text (JSON for structures) cut to ``limit`` characters, the cut marked."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str,
                                                           ensure_ascii=False)
    if len(text) <= limit:
        return text
    return text[:limit] + f"…[{len(text) - limit} more characters]"


def normalise_host(host: str) -> str:
    """Lower-case ``host`` without a trailing dot; IP literals in every spelling become canonical."""
    # Imported here: most tool calls carry no URL, and the hook's start-up time is on the agent's path.
    import ipaddress
    import socket

    host = host.lower().rstrip(".")
    if _IPV4_LITERAL.match(host):
        try:  # inet_aton reads every BSD spelling: 2852039166, 0xa9fea9fe, 0251.0376.0251.0376, 169.254.43518
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return host
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        return str(mapped) if mapped else f"[{address.compressed}]"
    return str(address)


def normalise_url(url: str) -> str:
    """``url`` in the canonical form policies match (see the module docstring)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise AegisError(f"invalid url {url!r}: {exc}") from None
    host = normalise_host(parts.hostname or "")
    netloc = f"{host}:{port}" if port is not None else host
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme.lower()}://{netloc}{parts.path}{query}"


def resolved_path(path: str, cwd: str) -> str:
    """``path`` canonical (see ``canonical_path``), then with its symlinks resolved."""
    return os.path.realpath(canonical_path(path, cwd))


def tool_input_context(tool_input: dict[str, Any], cwd: str) -> dict[str, Any]:
    """The ``context.input`` record for ``tool_input`` (paths, url and command canonicalised)."""
    out = dict(tool_input)
    for key in PATH_KEYS:
        value = out.get(key)
        if isinstance(value, str) and value:
            out[key] = resolved_path(value, cwd)
    if "file_path" not in out and "notebook_path" in out:  # one attribute for "the file a tool edits"
        out["file_path"] = out["notebook_path"]
    if isinstance(out.get("url"), str):
        out["url"] = normalise_url(out["url"])
    if isinstance(out.get("command"), str):
        out["command"] = " ".join(out["command"].split())
    return out


@dataclass(frozen=True)
class Check:
    """One request made for a tool call and its decision."""

    action: Action
    resource: str
    decision: Decision

    def describe(self) -> str:
        if self.decision.errors:
            why = f"evaluation error: {self.decision.errors[0]}"
        elif self.decision.policy_ids:
            why = f"policy {', '.join(self.decision.policy_ids)}"
        else:
            why = "no policy permits it"
        return f"{self.action.name} {self.resource} {self.decision.decision} ({why})"


@dataclass(frozen=True)
class Verdict:
    """Every check made for one tool call; it is allowed only when all of them allow."""

    checks: tuple[Check, ...]

    @property
    def allowed(self) -> bool:
        return all(c.decision.allowed for c in self.checks)

    @property
    def decision(self) -> str:
        return "allow" if self.allowed else "deny"

    def reason(self, config_name: str) -> str:
        failing = [c for c in self.checks if not c.decision.allowed]
        shown = failing or list(self.checks)
        verb = "denied" if failing else "allowed"
        return f"Aegis config {config_name!r} {verb}: " + "; ".join(c.describe() for c in shown)


class ToolGate:
    """The policies of one config, deciding tool calls (from the compiled rules, cached per
    config, so that a hook process imports cedarpy only for what they cannot decide)."""

    def __init__(self, config: Config, policies: CompiledRules) -> None:
        self.config = config
        self.policies = policies

    @classmethod
    def for_config(cls, name: str) -> ToolGate:
        config = load_config(name)
        sources = read_policy_sources(config.policy_files())
        return cls(config, CompiledRules.load(sources, config.name, config.directory / RULES_FILE))

    @property
    def sources(self) -> dict[str, str]:
        """The policy texts by source name (what the ledger's policy snapshot records)."""
        return self.policies.sources

    def decide(self, tool: str, context_input: dict[str, Any], implied: Sequence[tuple[Action, str]] = (),
               session: str = "") -> Verdict:
        """Decide ``tool`` with its canonical input, plus each implied (action, canonical path)."""
        if not tool:
            raise AegisError("tool call without a tool name")
        checks = [Check(Action.ToolCall, tool, self.policies.authorize(
            Action.ToolCall, tool, {"input": context_input, "session": session}))]
        for action, path in implied:
            checks.append(Check(action, path, self.policies.authorize(action, path, {"session": session})))
        return Verdict(tuple(checks))
