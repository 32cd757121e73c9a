"""The outcome of one policy request, whoever decided it (cedarpy or the compiled rules).

Kept free of cedarpy so that deciders which avoid it (``aegis.policy.compiled_rules``)
return the same type as ``PolicyEngine.authorize``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    """The outcome of one request. Any evaluation error makes it a deny."""

    allowed: bool
    policy_ids: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def decision(self) -> str:
        return "allow" if self.allowed else "deny"
