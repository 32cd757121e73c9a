"""The compiled policy of a session, cached by content so start-up skips Cedar.

Compiling needs cedarpy (its syntax-tree module alone costs tens of milliseconds
to import) and the compiler; a session only needs what compiling produced: the
decision table, the policy ids, the Landlock rules for this kernel and how the
network is decided. That is stored in the config directory, keyed by SHA-256 of
everything it was computed from (the policy texts and their names, the principal,
the schema, the source of the compiling code, the kernel's Landlock ABI). The
config directory is Aegis's own state, out of the agent's reach, so the cache is
as trustworthy as the policies next to it; a cache that is missing, stale or
malformed is recompiled, never trusted.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from aegis.config import Config
from aegis.errors import AegisError
from aegis.policy.sources import content_key, read_policy_files

CACHE_FILE = "compiled-policy.json"
CACHE_FORMAT = 2
_POLICY_DIR = Path(__file__).resolve().parent.parent / "policy"
# Everything whose change changes the compiled result.
_COMPILER_INPUTS = ("compiler.py", "landlock.py", "engine.py", "sources.py", "schema.cedarschema")
# How NetConnect is permitted by the policies (see aegis.sandbox.linux.network_mode).
NET_PERMIT_ALL = "all"
NET_PERMIT_SOME = "some"
NET_PERMIT_NONE = "none"


@dataclass(frozen=True)
class SessionPolicy:
    """What a session needs from its compiled policy (Landlock already masked for the kernel's ABI)."""

    files: dict[str, str]            # policy file path -> text (the policy snapshot)
    sources: dict[str, str]          # policy source name -> text, as the engine names them
    policy_ids: list[str]            # index -> policy id (the C table reports indexes)
    table_blob: bytes
    landlock_abi: int
    handled_fs: int
    landlock_rules: list[tuple[str, int]]
    scoped: int
    not_enforced_by_kernel: list[str]
    net_permit: str
    residual_actions: list[str]
    kernel_looser: list[str]         # file actions Landlock allows beyond the policy (the supervisor narrows)
    from_cache: bool = False


def cache_key(sources: dict[str, str], principal: str, abi: int) -> str:
    return content_key(f"aegis-compiled-policy {CACHE_FORMAT} {abi}\0{principal}\0",
                       (_POLICY_DIR / name for name in _COMPILER_INPUTS), sources)


def compile_session_policy(files: dict[str, str], sources: dict[str, str], principal: str,
                           abi: int) -> SessionPolicy:
    """Compile with cedarpy (validating strictly) and reduce to what a session needs."""
    from aegis.actions import Action
    from aegis.policy.compiler import TRUE, compile_policy
    from aegis.policy.engine import PolicyEngine

    compiled = compile_policy(PolicyEngine.from_sources(sources, principal))
    landlock = compiled.landlock.for_abi(abi)
    net_rules = compiled.rules.get(Action.NetConnect, [])
    if any(r.effect == "permit" and r.matcher == TRUE for r in net_rules) and \
            not any(r.effect == "forbid" for r in net_rules):
        net_permit = NET_PERMIT_ALL
    elif any(r.effect == "permit" for r in net_rules):
        net_permit = NET_PERMIT_SOME
    else:
        net_permit = NET_PERMIT_NONE
    return SessionPolicy(files, sources, list(compiled.policy_ids), compiled.table_blob, landlock.abi,
                         landlock.handled_fs, [(p, a) for p, a in landlock.rules], landlock.scoped,
                         list(landlock.dropped), net_permit, sorted(compiled.residual_actions),
                         list(landlock.looser))


def _encode(policy: SessionPolicy, key: str) -> str:
    return json.dumps({"format": CACHE_FORMAT, "key": key, "policy_ids": policy.policy_ids,
                       "table": base64.b64encode(policy.table_blob).decode("ascii"),
                       "landlock": {"abi": policy.landlock_abi, "handled_fs": policy.handled_fs,
                                    "rules": policy.landlock_rules, "scoped": policy.scoped,
                                    "dropped": policy.not_enforced_by_kernel, "looser": policy.kernel_looser},
                       "net_permit": policy.net_permit, "residual_actions": policy.residual_actions},
                      sort_keys=True)


def _decode(text: str, key: str, files: dict[str, str], sources: dict[str, str]) -> SessionPolicy | None:
    try:
        data = json.loads(text)
        if data.get("format") != CACHE_FORMAT or data.get("key") != key:
            return None
        ll = data["landlock"]
        policy = SessionPolicy(
            files, sources, [str(p) for p in data["policy_ids"]], base64.b64decode(data["table"], validate=True),
            int(ll["abi"]), int(ll["handled_fs"]), [(str(p), int(a)) for p, a in ll["rules"]],
            int(ll["scoped"]), [str(d) for d in ll["dropped"]], str(data["net_permit"]),
            [str(a) for a in data["residual_actions"]], [str(a) for a in ll["looser"]], from_cache=True)
    except (ValueError, KeyError, TypeError):
        return None
    if policy.net_permit not in (NET_PERMIT_ALL, NET_PERMIT_SOME, NET_PERMIT_NONE):
        return None
    return policy


def session_policy(config: Config, abi: int) -> SessionPolicy:
    """``config``'s compiled policy for Landlock ABI ``abi``: from the cache when it
    matches the policy files exactly, else compiled (and the cache rewritten)."""
    files = config.policy_files()
    if not files:
        raise AegisError(f"config {config.name!r} has no policy files ({config.file}); default-deny would "
                         "block everything: add a policy or use --policy")
    texts, sources = read_policy_files(files)
    key = cache_key(sources, config.name, abi)
    cache = config.directory / CACHE_FILE
    try:
        cached = _decode(cache.read_text(encoding="utf-8"), key, texts, sources)
    except (OSError, UnicodeDecodeError):
        cached = None
    if cached is not None:
        return cached
    policy = compile_session_policy(texts, sources, config.name, abi)
    temporary = cache.with_name(f".{CACHE_FILE}.{os.getpid()}")
    try:
        temporary.write_text(_encode(policy, key), encoding="utf-8")
        os.replace(temporary, cache)
    except OSError:
        temporary.unlink(missing_ok=True)  # an unwritable cache only costs the next start-up
    return policy
