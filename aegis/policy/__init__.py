"""Cedar policies: schema, templates, loading and evaluation, compilation.

The engine (cedarpy) is imported on first use only: `aegis run` with a cached
compiled policy and the submodules that need no Cedar (seccomp, templates) must
not pay for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aegis.policy.canonical import canonical_path

if TYPE_CHECKING:
    from aegis.policy.engine import Decision, PolicyEngine, PolicyError, PolicyInfo, PolicyProblem

__all__ = ["Decision", "PolicyEngine", "PolicyError", "PolicyInfo", "PolicyProblem", "canonical_path"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from aegis.policy import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
