"""``aegis.Policy``: a config's Cedar policies, ready to authorize an agent's actions.

A thin, stable face over ``aegis.policy.PolicyEngine`` (cedarpy, strict schema
validation) and the policy compiler (``explain``). Decisions are exactly the ones
`aegis run` makes on its slow path and `aegis hook` makes for tool calls.

>>> policy = Policy.from_text('permit(principal, action == Aegis::Action::"FileRead", resource) '
...                           'when { resource.path like "/srv/*" };')
>>> decision = policy.authorize("FileRead", "/srv/../srv/data.txt")
>>> decision.allowed, decision.decision, decision.policy_ids
(True, 'allow', ('policy.cedar:0',))
>>> policy.authorize("FileWrite", "/srv/data.txt").allowed   # default deny
False
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aegis.actions import Action
from aegis.config import Config, load_config
from aegis.errors import AegisError
from aegis.policy.engine import Decision, PolicyEngine, PolicyInfo

__all__ = ["Decision", "Policy", "PolicyInfo"]

PolicySource = str | os.PathLike[str] | Config | Iterable[str | os.PathLike[str]]


def _expand(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(path.glob("*.cedar")))
        elif path.is_file():
            files.append(path)
        else:
            raise AegisError(f"policy path {path} does not exist")
    if not files:
        raise AegisError("no policy files given (default-deny would decide everything)")
    return files


class Policy:
    """The policies of one config (or of policy files), evaluated with cedarpy.

    Instances are immutable after loading and safe to share between threads.
    """

    def __init__(self, engine: PolicyEngine) -> None:
        self.engine = engine

    @classmethod
    def load(cls, source: PolicySource, *, principal: str | None = None) -> Policy:
        """Load and strictly validate policies.

        ``source`` is a config name (``"myagent"``, as made by ``aegis init``), a loaded
        ``Config``, or a policy file / directory of ``*.cedar`` files / list of them.
        ``principal`` is the ``Aegis::Agent`` id requests are made as (default: the
        config's name, or ``"agent"`` for bare files). Raises ``aegis.PolicyError``
        (an ``AegisError``) naming the file, line and policy id of every problem.
        """
        if isinstance(source, str) and os.sep not in source and not source.endswith(".cedar"):
            source = load_config(source)
        if isinstance(source, Config):
            return cls(PolicyEngine.from_files(source.policy_files(), principal or source.name))
        if isinstance(source, str | os.PathLike):
            source = [source]
        return cls(PolicyEngine.from_files(_expand(source), principal or "agent"))

    @classmethod
    def from_text(cls, text: str, *, principal: str = "agent", name: str = "policy.cedar") -> Policy:
        """Policies from Cedar text (``name`` is the source shown in ids and errors)."""
        return cls(PolicyEngine.from_sources({name: text}, principal))

    @property
    def principal(self) -> str:
        return self.engine.principal

    @property
    def policies(self) -> list[PolicyInfo]:
        """Every policy with its id, file, line and effect (what `aegis policy list` shows)."""
        return list(self.engine.policies)

    def authorize(self, action: Action | str, resource: str, context: dict[str, Any] | None = None,
                  cwd: str | os.PathLike[str] | None = None) -> Decision:
        """Decide one request; any evaluation error makes it a deny (listed in ``errors``).

        ``action`` is a Cedar action name (``"FileRead"``, ``"NetConnect"``,
        ``"ToolCall"``...). ``resource`` is a path (made canonical against ``cwd``, so
        ``..`` and symlinks cannot dodge a rule), ``"host:port"`` for NetConnect, or the
        tool name for ToolCall. ``context`` may carry ``pid``, ``executable``,
        ``session`` and, for ToolCall, ``input`` (the tool's arguments).

        >>> p = Policy.from_text('permit(principal, action == Aegis::Action::"ToolCall", resource) '
        ...                      'when { context.input has command && context.input.command like "git *" };')
        >>> p.authorize("ToolCall", "Bash", {"input": {"command": "git status"}}).allowed
        True
        >>> p.authorize("ToolCall", "Bash", {"input": {"command": "rm -rf /"}}).allowed
        False
        """
        return self.engine.authorize(action, resource, context, None if cwd is None else os.fspath(cwd))

    def explain(self) -> dict[str, object]:
        """How these policies are enforced on this machine, as `aegis policy explain --json`
        prints it: per action the kernel (Landlock) part, the compiled supervisor table,
        the residual part left to cedarpy, and the policies outside the compiled fragment."""
        from aegis.policy.compiler import explain
        from aegis.sandbox.capabilities import landlock_abi

        return explain(self.engine, landlock_abi())

    def __repr__(self) -> str:
        return f"Policy(principal={self.principal!r}, policies={len(self.engine.policies)})"
