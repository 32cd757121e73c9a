"""Aegis: a zero-trust runtime for AI agents, as a library.

The public API (documented in docs/api.md), imported lazily so that ``import aegis``
and the CLI's hot paths stay cheap; everything not listed here is private.

- ``Policy``: load a config's Cedar policies, ``authorize`` an action, ``explain`` them.
- ``Ledger``: open a config's audit ledger, ``append``/``record`` events, ``query``,
  ``follow``, ``verify``, ``checkpoint``, ``sessions``.
- ``Sandbox``: ``run`` a command under a config's policies, as a ledger session.
- ``create_config`` / ``load_config``: make or load a named configuration.
- ``native_api``: typed wrappers over the C layer (hashing, ring, decision table, probes).
"""

from __future__ import annotations

# Not typing.TYPE_CHECKING: importing typing costs the CLI's hot paths ~10 ms; type
# checkers treat a module-level TYPE_CHECKING = False the same way.
TYPE_CHECKING = False

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "Action": "aegis.actions",
    "AegisError": "aegis.errors",
    "Config": "aegis.config",
    "Decision": "aegis.policy.engine",
    "Entry": "aegis.ledger.model",
    "Event": "aegis.ledger.model",
    "Ledger": "aegis.api.ledger",
    "Policy": "aegis.api.policy",
    "PolicyError": "aegis.policy.engine",
    "PolicyInfo": "aegis.policy.engine",
    "Sandbox": "aegis.api.sandbox",
    "SandboxProcess": "aegis.api.sandbox",
    "Session": "aegis.ledger.model",
    "VerifyResult": "aegis.ledger.model",
    "create_config": "aegis.api.configs",
    "load_config": "aegis.config",
}
_MODULES: dict[str, str] = {"native_api": "aegis.native_api"}

__all__ = ["Action", "AegisError", "Config", "Decision", "Entry", "Event", "Ledger", "Policy", "PolicyError",
           "PolicyInfo", "Sandbox", "SandboxProcess", "Session", "VerifyResult", "create_config", "load_config",
           "native_api"]

if TYPE_CHECKING:
    from typing import Any

    from aegis import native_api
    from aegis.actions import Action
    from aegis.api.configs import create_config
    from aegis.api.ledger import Ledger
    from aegis.api.policy import Policy
    from aegis.api.sandbox import Sandbox, SandboxProcess
    from aegis.config import Config, load_config
    from aegis.errors import AegisError
    from aegis.ledger.model import Entry, Event, Session, VerifyResult
    from aegis.policy.engine import Decision, PolicyError, PolicyInfo


def __getattr__(name: str) -> Any:
    """PEP 562: import the module behind a public name on first use."""
    from importlib import import_module

    if name in _MODULES:
        value = import_module(_MODULES[name])
    elif name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'aegis' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
