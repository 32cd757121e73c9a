"""Cedar policies: schema, templates, loading and evaluation, compilation."""

from aegis.policy.canonical import canonical_path
from aegis.policy.engine import Decision, PolicyEngine, PolicyError, PolicyInfo, PolicyProblem

__all__ = ["Decision", "PolicyEngine", "PolicyError", "PolicyInfo", "PolicyProblem", "canonical_path"]
