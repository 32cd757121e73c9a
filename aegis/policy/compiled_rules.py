"""Decide requests from a config's compiled rules in pure Python: no cedarpy on the hot path.

A new process that imports cedarpy and validates a config's policies spends tens of
milliseconds before its first decision, and the Claude Code hook is a new process
on every tool call. So the rule IR of ``aegis.policy.compiler``, compiled with tool
inputs (the ``context.input`` conditions of ToolCall policies are matchers too), is
kept as JSON in the config directory, keyed by SHA-256 of everything it was
computed from: the policy names and texts, the principal, the schema and the code
that compiles and evaluates it (as ``aegis.sandbox.policy_cache`` does for
sessions). Rules are only ever compiled from policies that validated strictly, so
a matching cache means "validated"; a missing, stale or malformed one is rebuilt
(validating again), never trusted. The config directory is Aegis's own state, out
of the agent's reach, like the policies next to it.

A request is decided here when every rule of its action evaluates to true or false
(Cedar's left-to-right short-circuit semantics). The answer is then cedarpy's:
the same decision, the same reasons (cedarpy reports them as a set; here they
come in policy order) and no errors. When any rule is residual (a condition
outside the fragment, or an error such as reading an input field the request
lacks), cedarpy decides, through the ``PolicyEngine`` built on first need.
NetConnect is always left to cedarpy (its port conditions belong to the C table).
tests/test_compiled_rules.py checks the agreement on generated policies and requests.

The JSON form of a matcher: ``true``/``false``; ``["path_eq", S]``;
``["path_like", [SEGMENT, ...]]`` (a wildcard between consecutive segments);
``["has", KEY]``, ``["input_eq", KEY, S]``, ``["input_like", KEY, [SEGMENT, ...]]``
on the ToolCall input record; ``["and", A, B]``, ``["or", A, B]``, ``["not", A]``;
``["residual"]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.actions import Action
from aegis.config import write_atomically
from aegis.policy.canonical import canonical_path
from aegis.policy.decision import Decision
from aegis.policy.sources import content_key, tool_input_record

if TYPE_CHECKING:
    from aegis.policy.compiler import Matcher
    from aegis.policy.engine import PolicyEngine

RULES_FILE = "decision-rules.json"
RULES_FORMAT = 1
# Every action but NetConnect; all of them take a canonical path as resource except ToolCall (a tool name).
DECIDED_ACTIONS = tuple(a for a in Action if a is not Action.NetConnect)
_POLICY_DIR = Path(__file__).resolve().parent
# Everything whose change changes the rules or how they are evaluated.
_RULES_INPUTS = ("compiled_rules.py", "compiler.py", "engine.py", "sources.py", "schema.cedarschema")
_OPS = {"path_eq": (str,), "path_like": (list,), "has": (str,), "input_eq": (str, str),
        "input_like": (str, list), "and": (object, object), "or": (object, object), "not": (object,),
        "residual": ()}


def rules_key(sources: dict[str, str], principal: str) -> str:
    return content_key(f"aegis-decision-rules {RULES_FORMAT}\0{principal}\0",
                       (_POLICY_DIR / name for name in _RULES_INPUTS), sources)


# ---------------------------------------------------------------- matchers: IR -> JSON, evaluation


def matcher_json(m: Matcher) -> Any:
    """The JSON form of a specialised matcher (see the module docstring)."""
    from aegis.policy import compiler as c

    if isinstance(m, c.Const):
        return m.value
    if isinstance(m, c.PathEq):
        return ["path_eq", m.path]
    if isinstance(m, c.PathLike):
        return ["path_like", list(m.segments)]
    if isinstance(m, c.InputHas):
        return ["has", m.key]
    if isinstance(m, c.InputEq):
        return ["input_eq", m.key, m.value]
    if isinstance(m, c.InputLike):
        return ["input_like", m.key, list(m.segments)]
    if isinstance(m, (c.And, c.Or)):
        return ["and" if isinstance(m, c.And) else "or", matcher_json(m.left), matcher_json(m.right)]
    if isinstance(m, c.Not):
        return ["not", matcher_json(m.arg)]
    return ["residual"]  # Residual, and a port condition (only NetConnect has ports: never decided here)


def _well_formed(m: Any, depth: int = 0) -> bool:
    if isinstance(m, bool):
        return True
    if not isinstance(m, list) or not m or depth > 200 or m[0] not in _OPS:
        return False
    shape = _OPS[m[0]]
    if len(m) != 1 + len(shape):
        return False
    for arg, kind in zip(m[1:], shape, strict=True):
        if kind is object and not _well_formed(arg, depth + 1):
            return False
        if kind is list and not (isinstance(arg, list) and arg and all(isinstance(s, str) for s in arg)):
            return False
        if kind is str and not isinstance(arg, str):
            return False
    return True


def like(text: str, segments: list[str]) -> bool:
    """Cedar ``like``: ``text`` is the segments in order with anything between consecutive ones."""
    first, last = segments[0], segments[-1]
    if len(segments) == 1:
        return text == first
    if len(text) < len(first) + len(last) or not text.startswith(first) or not text.endswith(last):
        return False
    position, end = len(first), len(text) - len(last)
    for segment in segments[1:-1]:  # leftmost matches leave the most room for the rest
        found = text.find(segment, position, end)
        if found < 0:
            return False
        position = found + len(segment)
    return True


def evaluate(m: Any, resource: str, record: dict[str, str] | None) -> bool | None:
    """A JSON matcher on one request: True, False, or None (residual: cedarpy must decide)."""
    if m is True or m is False:
        return m
    op = m[0]
    if op == "and":
        left = evaluate(m[1], resource, record)
        return evaluate(m[2], resource, record) if left is True else left
    if op == "or":
        left = evaluate(m[1], resource, record)
        return evaluate(m[2], resource, record) if left is False else left
    if op == "not":
        value = evaluate(m[1], resource, record)
        return None if value is None else not value
    if op == "path_eq":
        return resource == m[1]
    if op == "path_like":
        return like(resource, m[1])
    if op == "residual" or record is None:  # or an input condition on a request without an input record
        return None
    if op == "has":
        return m[1] in record
    value = record.get(m[1])
    if value is None:  # reading a field the record lacks is an evaluation error in Cedar
        return None
    return value == m[2] if op == "input_eq" else like(value, m[2])


# ---------------------------------------------------------------- the decider


class CompiledRules:
    """A config's validated policies, deciding requests from their compiled rules (cedarpy
    for what those cannot decide)."""

    def __init__(self, principal: str, sources: dict[str, str], rules: dict[str, list[list[Any]]],
                 engine: PolicyEngine | None = None) -> None:
        self.principal = principal
        self.sources = sources
        self.rules = rules  # action name -> [[effect, policy id, JSON matcher], ...] in policy order
        self._engine = engine

    @classmethod
    def compile(cls, engine: PolicyEngine) -> CompiledRules:
        from aegis.policy.compiler import compile_rules

        compiled = compile_rules(engine, tool_input=True)
        rules = {a.name: [[r.effect, r.policy_id, matcher_json(r.matcher)] for r in compiled[a]]
                 for a in DECIDED_ACTIONS}
        return cls(engine.principal, dict(engine.sources), rules, engine)

    @classmethod
    def load(cls, sources: dict[str, str], principal: str, cache_file: Path) -> CompiledRules:
        """The rules of ``sources`` from ``cache_file`` when it matches them exactly, else
        validated and compiled with cedarpy (raising ``PolicyError``) and the cache rewritten."""
        key = rules_key(sources, principal)
        try:
            data = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            data = None
        rules = _cached_rules(data, key)
        if rules is not None:
            return cls(principal, sources, rules)
        from aegis.policy.engine import PolicyEngine

        compiled = cls.compile(PolicyEngine.from_sources(sources, principal))
        text = json.dumps({"format": RULES_FORMAT, "key": key, "rules": compiled.rules}, ensure_ascii=False)
        try:
            write_atomically(cache_file, text.encode("utf-8", "surrogateescape"))
        except OSError:
            pass  # an unwritable cache only costs the next call the compile
        return compiled

    @property
    def engine(self) -> PolicyEngine:
        """The cedarpy engine of the same policies, built (and validated) on first need."""
        if self._engine is None:
            from aegis.policy.engine import PolicyEngine

            self._engine = PolicyEngine.from_sources(self.sources, self.principal)
        return self._engine

    def decide(self, action: Action, resource: str, record: dict[str, str] | None) -> Decision | None:
        """Decide from the rules alone (``resource`` as the request carries it); None when residual."""
        forbids: list[str] = []
        permits: list[str] = []
        for effect, policy_id, matcher in self.rules[action.name]:
            value = evaluate(matcher, resource, record)
            if value is None:
                return None
            if value:
                (forbids if effect == "forbid" else permits).append(policy_id)
        if forbids:
            return Decision(False, tuple(forbids))
        return Decision(bool(permits), tuple(permits))

    def authorize(self, action: Action | str, resource: str, context: dict[str, Any] | None = None,
                  cwd: str | None = None) -> Decision:
        """``PolicyEngine.authorize``, from the rules when they decide."""
        if isinstance(action, str):
            action = Action.parse(action)
        context = context or {}
        if action.name not in self.rules:
            return self.engine.authorize(action, resource, context, cwd)
        # The request build_request makes: its context fields converted alike (a bad pid raises alike).
        texts = [str(int(context.get("pid", 0))), str(context.get("executable", "")),
                 str(context.get("session", ""))]
        record = None
        if action is Action.ToolCall:
            record = tool_input_record(context.get("input") or {})
            texts += [resource, *record.values()]
        else:
            resource = canonical_path(resource, cwd)
        decision = self.decide(action, resource, record) if all(map(_is_unicode, texts)) else None
        # cedarpy decides the residual, and refuses what it cannot take (text that is not Unicode)
        return decision if decision is not None else self.engine.authorize(action, resource, context, cwd)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _cached_rules(data: Any, key: str) -> dict[str, list[list[Any]]] | None:
    """The rules of a cache file's JSON when its key is ``key`` and its form is sound."""
    if not isinstance(data, dict) or data.get("format") != RULES_FORMAT or data.get("key") != key:
        return None
    rules = data.get("rules")
    if not isinstance(rules, dict) or set(rules) != {a.name for a in DECIDED_ACTIONS}:
        return None
    for entries in rules.values():
        if not isinstance(entries, list):
            return None
        for entry in entries:
            if not (isinstance(entry, list) and len(entry) == 3 and entry[0] in ("permit", "forbid")
                    and isinstance(entry[1], str) and _well_formed(entry[2])):
                return None
    return rules
