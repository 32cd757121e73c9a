"""Compile Cedar policies into a rule IR and the enforcement backends built from it.

The IR: for each action, the policies that can apply to it, in policy order, each
as ``Rule(effect, matcher, policy_index, policy_id)``. A matcher is a condition on
``resource.path`` (the canonical path for file actions): an exact path
(``PathEq``), a Cedar ``like`` glob (``PathLike``, which covers directory
subtrees ``"/dir/*"``), constants, and ``And``/``Or``/``Not``; for NetConnect
also the port of its ``"host:port"`` resource (``PortEq``). Compiled for tool calls
(``compile_rules(engine, tool_input=True)``, used by ``aegis.policy.compiled_rules``),
conditions on the ToolCall ``context.input`` record are matchers too (``InputHas``,
``InputEq``, ``InputLike``), and so are those on ``context.tool`` (``ToolName``: the
tool name is the resource); the decision table never sees those. Anything else a
policy says (context attributes, other resource attributes, entity hierarchies,
extension functions) becomes a ``Residual`` leaf: it is kept, shown by
``aegis policy explain``, and decided by cedarpy at run time, never dropped.

Matchers have Cedar's left-to-right short-circuit semantics with three values:
true, false and "residual" (unknown, possibly an evaluation error). The C decision
table (csrc/decision_table.c) evaluates exactly these semantics on the serialised
form (``table_blob``):

* any satisfied forbid -> deny, deciding policy = the first satisfied forbid in
  policy order (RESIDUAL instead if a residual forbid precedes it);
* otherwise any residual policy -> RESIDUAL (cedarpy decides);
* otherwise any satisfied permit -> allow, deciding policy = the first one;
* otherwise deny with no deciding policy (-1).

"Deciding policy" is defined as the first policy, in policy order, among the
reasons cedarpy reports (the satisfied permits when allowed, the satisfied
forbids when denied by a forbid). A non-RESIDUAL answer of the table therefore
equals ``PolicyEngine.authorize`` in both decision and that first reason; the
differential tests in tests/test_decision_table.py check it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

import cedarpy.pst as pst

from aegis.actions import Action
from aegis.policy.engine import PolicyEngine

if TYPE_CHECKING:  # the backends import the IR from this module
    from aegis.policy.landlock import LandlockSpec
    from aegis.policy.seccomp import SeccompSpec

NAMESPACE = ("Aegis",)


# ---------------------------------------------------------------- the IR


@dataclass(frozen=True)
class Const:
    value: bool


@dataclass(frozen=True)
class PathEq:
    path: str


@dataclass(frozen=True)
class PathLike:
    """A ``like`` pattern as its literal segments: ``"/w/*.py"`` -> ``("/w/", ".py")``.

    A wildcard sits between each pair of consecutive segments, so one segment means
    no wildcard. A literal ``*`` (written ``\\*`` in Cedar) is just a character here.
    """

    segments: tuple[str, ...]


@dataclass(frozen=True)
class PortEq:
    """``context.port == N`` / ``resource.port == N`` on a NetConnect ``"host:port"``
    resource: the port is the decimal number after the last ``:``."""

    port: int


@dataclass(frozen=True)
class InputHas:
    """``context.input has KEY``: the ToolCall input record has the field."""

    key: str


@dataclass(frozen=True)
class InputEq:
    """``context.input.KEY == "value"``; evaluating it on a record without KEY is an error."""

    key: str
    value: str


@dataclass(frozen=True)
class InputLike:
    """``context.input.KEY like "pattern"``, the pattern as ``PathLike`` segments."""

    key: str
    segments: tuple[str, ...]


@dataclass(frozen=True)
class ToolName:
    """``context.tool`` tested like ``resource.path`` (``test``): a ToolCall's tool is its resource."""

    test: Matcher


TOOL_CALL_MATCHERS = (InputHas, InputEq, InputLike, ToolName)


@dataclass(frozen=True)
class And:
    left: Matcher
    right: Matcher


@dataclass(frozen=True)
class Or:
    left: Matcher
    right: Matcher


@dataclass(frozen=True)
class Not:
    arg: Matcher


@dataclass(frozen=True)
class Residual:
    """A condition outside the compiled fragment, with what it is."""

    reason: str


@dataclass(frozen=True)
class ActionTest:
    """``action == X`` / ``action in [...]``: decided statically per action."""

    actions: frozenset[Action]


Matcher = Union[  # noqa: UP007 (recursive alias)
    Const, PathEq, PathLike, PortEq, InputHas, InputEq, InputLike, ToolName, And, Or, Not, Residual, ActionTest]

TRUE, FALSE = Const(True), Const(False)


@dataclass(frozen=True)
class Rule:
    effect: str          # "permit" | "forbid"
    matcher: Matcher
    policy_index: int
    policy_id: str


def has_residual(m: Matcher) -> bool:
    if isinstance(m, Residual):
        return True
    if isinstance(m, (And, Or)):
        return has_residual(m.left) or has_residual(m.right)
    if isinstance(m, Not):
        return has_residual(m.arg)
    return False


def residual_reasons(m: Matcher) -> list[str]:
    if isinstance(m, Residual):
        return [m.reason]
    if isinstance(m, (And, Or)):
        return residual_reasons(m.left) + residual_reasons(m.right)
    if isinstance(m, Not):
        return residual_reasons(m.arg)
    return []


def may_fail(m: Matcher) -> bool:
    """Whether evaluating ``m`` can be an error: a residual, or reading a context field the
    request may lack (``has`` guards make it safe, but simplification cannot know that)."""
    if isinstance(m, (Residual, InputEq, InputLike, ToolName)):
        return True
    if isinstance(m, (And, Or)):
        return may_fail(m.left) or may_fail(m.right)
    if isinstance(m, Not):
        return may_fail(m.arg)
    return False


def conj(a: Matcher, b: Matcher) -> Matcher:
    """``a && b`` simplified without changing short-circuit semantics."""
    if a == FALSE or a == TRUE:
        return b if a.value else FALSE
    if b == TRUE:
        return a
    if b == FALSE and not may_fail(a):
        return FALSE
    return And(a, b)


def disj(a: Matcher, b: Matcher) -> Matcher:
    if a == FALSE or a == TRUE:
        return TRUE if a.value else b
    if b == FALSE:
        return a
    if b == TRUE and not may_fail(a):
        return TRUE
    return Or(a, b)


def neg(a: Matcher) -> Matcher:
    if isinstance(a, Const):
        return Const(not a.value)
    if isinstance(a, Not):
        return a.arg
    return Not(a)


def any_of(items: list[Matcher]) -> Matcher:
    """``a || b || ...`` as a balanced tree, so a long set literal stays shallow
    (the C table bounds nesting depth). Only for error-free items: order is free."""
    if not items:
        return FALSE
    if len(items) == 1:
        return items[0]
    middle = len(items) // 2
    return disj(any_of(items[:middle]), any_of(items[middle:]))


def specialise(m: Matcher, action: Action) -> Matcher:
    """Replace ``action`` tests by their value for ``action`` and simplify."""
    if isinstance(m, ActionTest):
        return Const(action in m.actions)
    if isinstance(m, PortEq) and action is not Action.NetConnect:
        return Residual("port of a non-network resource")
    if isinstance(m, TOOL_CALL_MATCHERS) and action is not Action.ToolCall:
        return Residual(render(m))  # only a ToolCall context has `input` and `tool`
    if isinstance(m, ToolName):
        return m.test
    if isinstance(m, And):
        return conj(specialise(m.left, action), specialise(m.right, action))
    if isinstance(m, Or):
        return disj(specialise(m.left, action), specialise(m.right, action))
    if isinstance(m, Not):
        return neg(specialise(m.arg, action))
    return m


def render(m: Matcher) -> str:
    """Cedar-like text of a matcher, for ``aegis policy explain``."""
    if isinstance(m, Const):
        return "true" if m.value else "false"
    if isinstance(m, PathEq):
        return f"resource.path == {_quote(m.path)}"
    if isinstance(m, PathLike):
        return f"resource.path like {_like_pattern(m.segments)}"
    if isinstance(m, PortEq):
        return f"context.port == {m.port}"
    if isinstance(m, InputHas):
        return f"context.input has {m.key}"
    if isinstance(m, InputEq):
        return f"context.input.{m.key} == {_quote(m.value)}"
    if isinstance(m, InputLike):
        return f"context.input.{m.key} like {_like_pattern(m.segments)}"
    if isinstance(m, ToolName):
        return "context.tool" + render(m.test).removeprefix("resource.path")
    if isinstance(m, And):
        return f"({render(m.left)} && {render(m.right)})"
    if isinstance(m, Or):
        return f"({render(m.left)} || {render(m.right)})"
    if isinstance(m, Not):
        return f"!{render(m.arg)}"
    if isinstance(m, ActionTest):
        return "action in [" + ", ".join(sorted(a.name for a in m.actions)) + "]"
    return f"<residual: {m.reason}>"


def _like_pattern(segments: tuple[str, ...]) -> str:
    return '"' + "*".join(seg.replace("\\", "\\\\").replace("*", "\\*").replace('"', '\\"')
                          for seg in segments) + '"'


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------- Cedar syntax tree -> IR


def _is_type(t: pst.EntityType, name: str) -> bool:
    return t.basename == name and tuple(t.namespace) == NAMESPACE


def _is_resource_path(e: pst.Expr) -> bool:
    return isinstance(e, pst.GetAttr) and e.attr == "path" and e.base == pst.Var("resource")


_CONTEXT_INPUT = pst.GetAttr(pst.Var("context"), "input")


def _is_port(e: pst.Expr) -> bool:
    """``context.port`` or ``resource.port`` (both set from the NetConnect resource)."""
    return isinstance(e, pst.GetAttr) and e.attr == "port" and e.base in (pst.Var("context"),
                                                                          pst.Var("resource"))


def _describe(e: pst.Expr) -> str:
    """A short name for an expression outside the fragment (for explain)."""
    if isinstance(e, pst.Var):
        return e.name
    if isinstance(e, pst.GetAttr):
        return f"{_describe(e.base)}.{e.attr}"
    if isinstance(e, pst.HasAttr):
        return f"{_describe(e.base)} has {'.'.join(e.attrs)}"
    if isinstance(e, pst.BinaryOp):
        return f"{_describe(e.left)} {e.op} {_describe(e.right)}"
    if isinstance(e, pst.UnaryOp):
        return f"{e.op}({_describe(e.arg)})"
    if isinstance(e, pst.StringLit):
        return _quote(e.value)
    if isinstance(e, pst.LongLit):
        return str(e.value)
    if isinstance(e, pst.EntityLit):
        return str(e.value)
    if isinstance(e, pst.Like):
        return f"{_describe(e.base)} like ..."
    return type(e).__name__


class _Translator:
    """One policy set's expressions -> matchers; the principal is known at compile time."""

    def __init__(self, principal: str, tool_input: bool = False) -> None:
        self.principal = principal
        self.tool_input = tool_input  # compile `context.input` and `context.tool` (else residual)

    def string_field(self, e: pst.Expr) -> tuple[str, str] | None:
        """The string attribute ``e`` reads, when the fragment covers it: ``("resource", "path")``
        for ``resource.path``; compiling tool calls, ``("input", KEY)`` for ``context.input.KEY``
        and ``("tool", "")`` for ``context.tool``."""
        if _is_resource_path(e):
            return ("resource", "path")
        if self.tool_input and isinstance(e, pst.GetAttr):
            if e.base == _CONTEXT_INPUT:
                return ("input", e.attr)
            if e.base == pst.Var("context") and e.attr == "tool":
                return ("tool", "")
        return None

    @staticmethod
    def equals(field: tuple[str, str], value: str) -> Matcher:
        if field[0] == "input":
            return InputEq(field[1], value)
        return PathEq(value) if field[0] == "resource" else ToolName(PathEq(value))

    @staticmethod
    def like(field: tuple[str, str], segments: tuple[str, ...]) -> Matcher:
        if field[0] == "input":
            return InputLike(field[1], segments)
        return PathLike(segments) if field[0] == "resource" else ToolName(PathLike(segments))

    def principal_is(self, uid: pst.EntityUid) -> bool:
        return _is_type(uid.type, "Agent") and uid.id == self.principal

    def resource_uid(self, uid: pst.EntityUid) -> Matcher:
        # A request's resource is Aegis::Resource::"<path>" with no parents, so
        # `resource == R` and `resource in R` both mean "path equals R's id".
        return PathEq(uid.id) if _is_type(uid.type, "Resource") else FALSE

    @staticmethod
    def actions_of(uids: tuple[pst.EntityUid, ...]) -> frozenset[Action]:
        # Actions have no parents in the schema: `in` is membership.
        return frozenset(Action[u.id] for u in uids
                         if _is_type(u.type, "Action") and u.id in Action.__members__)

    def scope(self, var: str, c: pst.PrincipalOrResourceConstraint) -> Matcher:
        if isinstance(c, pst.ScopeAny):
            return TRUE
        wanted = "Agent" if var == "principal" else "Resource"
        if isinstance(c, pst.ScopeIs):
            return Const(_is_type(c.entity_type, wanted))
        if isinstance(c, (pst.ScopeEq, pst.ScopeIn, pst.ScopeIsIn)) and isinstance(c.entity, pst.EntityUid):
            type_ok = not isinstance(c, pst.ScopeIsIn) or _is_type(c.entity_type, wanted)
            if not type_ok:
                return FALSE
            if var == "principal":
                return Const(self.principal_is(c.entity))
            return self.resource_uid(c.entity)
        return Residual(f"{var} scope {type(c).__name__}")

    def action_scope(self, c: pst.ActionConstraint) -> Matcher:
        if isinstance(c, pst.ScopeAny):
            return TRUE
        if isinstance(c, pst.ActionEq):
            return ActionTest(self.actions_of((c.entity,)))
        return ActionTest(self.actions_of(c.entities))

    def expr(self, e: pst.Expr) -> Matcher:
        if isinstance(e, pst.BoolLit):
            return Const(e.value)
        if isinstance(e, pst.UnaryOp) and e.op == "not":
            return neg(self.expr(e.arg))
        if isinstance(e, pst.BinaryOp):
            if e.op == "and":
                return conj(self.expr(e.left), self.expr(e.right))
            if e.op == "or":
                return disj(self.expr(e.left), self.expr(e.right))
            found = self.binary(e)
            if found is not None:
                return found
        field = self.string_field(e.base) if isinstance(e, pst.Like) else None
        if isinstance(e, pst.Like) and field is not None:
            segments: list[str] = [""]
            for elem in e.pattern:
                if isinstance(elem, pst.Wildcard):
                    segments.append("")
                else:
                    segments[-1] += elem.value
            return self.like(field, tuple(segments))
        if isinstance(e, pst.Is) and isinstance(e.base, pst.Var) and e.in_expr is None:
            if e.base.name in ("principal", "resource"):
                return Const(_is_type(e.entity_type, "Agent" if e.base.name == "principal" else "Resource"))
        if isinstance(e, pst.HasAttr) and e.base == pst.Var("resource") and len(e.attrs) == 1:
            # build_request gives every resource `path`, and NetConnect ones `host` and `port`
            if e.attrs[0] == "path":
                return TRUE
            if e.attrs[0] in ("host", "port"):
                return ActionTest(frozenset({Action.NetConnect}))
        if self.tool_input and isinstance(e, pst.HasAttr) and len(e.attrs) == 1:
            if e.base == _CONTEXT_INPUT:
                return InputHas(e.attrs[0])
            if e.base == pst.Var("context") and e.attrs[0] in ("input", "tool"):  # build_request: ToolCall only
                return ActionTest(frozenset({Action.ToolCall}))
        return Residual(_describe(e))

    def binary(self, e: pst.BinaryOp) -> Matcher | None:
        left, right = e.left, e.right
        if e.op in ("eq", "not_eq"):
            if self.string_field(right) is not None:
                left, right = right, left
            if _is_port(right):
                left, right = right, left
            found: Matcher | None = None
            field = self.string_field(left)
            if field is not None and isinstance(right, pst.StringLit):
                found = self.equals(field, right.value)
            elif _is_port(left) and isinstance(right, pst.LongLit):
                found = PortEq(right.value) if 0 <= right.value <= 65535 else FALSE
            elif isinstance(right, pst.Var) and isinstance(left, pst.EntityLit):
                left, right = right, left
            if found is None and isinstance(left, pst.Var) and isinstance(right, pst.EntityLit):
                found = self.var_is(left.name, (right.value,))
            if found is not None:
                return found if e.op == "eq" else neg(found)
        if e.op == "in" and isinstance(left, pst.Var):
            if isinstance(right, pst.EntityLit):
                return self.var_is(left.name, (right.value,))
            if isinstance(right, pst.Set) and all(isinstance(x, pst.EntityLit) for x in right.elements):
                return self.var_is(left.name, tuple(x.value for x in right.elements))
        field = self.string_field(right) if e.op == "contains" else None
        if field is not None and isinstance(left, pst.Set) and all(isinstance(x, pst.StringLit)
                                                                   for x in left.elements):
            # one field throughout: its tests all fail alike (a missing input key), so order is free
            return any_of([self.equals(field, x.value) for x in left.elements])
        return None

    def var_is(self, var: str, uids: tuple[pst.EntityUid, ...]) -> Matcher | None:
        """``var == uid`` / ``var in [uids]`` for the request variables we know."""
        if var == "action":
            return ActionTest(self.actions_of(uids))
        if var == "principal":
            return Const(any(self.principal_is(u) for u in uids))
        if var == "resource":
            return any_of([self.resource_uid(u) for u in uids])
        return None

    def policy(self, t: pst.Template) -> Matcher:
        m = conj(self.scope("principal", t.principal), self.action_scope(t.action))
        m = conj(m, self.scope("resource", t.resource))
        for clause in t.clauses:
            cond = self.expr(clause.expr)
            m = conj(m, cond if isinstance(clause, pst.When) else neg(cond))
        return m


# ---------------------------------------------------------------- table blob

MAGIC = b"AGDT"
TABLE_VERSION = 1
OP_FALSE, OP_TRUE, OP_RESIDUAL, OP_EQ, OP_LIKE, OP_AND, OP_OR, OP_NOT, OP_PORT = range(9)
EFFECT_CODES = {"permit": 1, "forbid": 2}


def _encode_matcher(m: Matcher, out: list[bytes]) -> int:
    """Append ``m`` in prefix order; returns the node count."""
    if isinstance(m, Const):
        out.append(bytes([OP_TRUE if m.value else OP_FALSE]))
        return 1
    if isinstance(m, PathEq):
        raw = m.path.encode("utf-8", "surrogatepass")
        out.append(struct.pack("<BI", OP_EQ, len(raw)) + raw)
        return 1
    if isinstance(m, PathLike):
        parts = [struct.pack("<BI", OP_LIKE, len(m.segments))]
        for seg in m.segments:
            raw = seg.encode("utf-8", "surrogatepass")
            parts.append(struct.pack("<I", len(raw)) + raw)
        out.append(b"".join(parts))
        return 1
    if isinstance(m, PortEq):
        out.append(struct.pack("<BI", OP_PORT, m.port))
        return 1
    if isinstance(m, (And, Or)):
        out.append(bytes([OP_AND if isinstance(m, And) else OP_OR]))
        return 1 + _encode_matcher(m.left, out) + _encode_matcher(m.right, out)
    if isinstance(m, Not):
        out.append(bytes([OP_NOT]))
        return 1 + _encode_matcher(m.arg, out)
    out.append(bytes([OP_RESIDUAL]))
    return 1


def encode_table(rules: dict[Action, list[Rule]], n_policies: int) -> bytes:
    """The decision-table blob read by ``aegis_dtable_load`` (little-endian).

    ``"AGDT" u32 version u32 n_policies u32 n_rules``, then per rule:
    ``u8 action u8 effect u16 0 i32 policy_index u32 n_nodes`` and its nodes in
    prefix order (``u8 op``; EQ: ``u32 len, bytes``; LIKE: ``u32 n_segments``,
    each ``u32 len, bytes``; PORT: ``u32 port``). Rules are grouped by action, in policy order.
    """
    body: list[bytes] = []
    count = 0
    for action in sorted(rules):
        for rule in rules[action]:
            nodes: list[bytes] = []
            n = _encode_matcher(rule.matcher, nodes)
            header = struct.pack("<BBHiI", int(action), EFFECT_CODES[rule.effect], 0, rule.policy_index, n)
            body.append(header)
            body.extend(nodes)
            count += 1
    return MAGIC + struct.pack("<III", TABLE_VERSION, n_policies, count) + b"".join(body)


# ---------------------------------------------------------------- the compiled policy


@dataclass
class CompiledPolicy:
    """Everything built from one engine's policies; ``decide`` runs the C table."""

    policy_ids: list[str]
    rules: dict[Action, list[Rule]]
    table_blob: bytes
    landlock: LandlockSpec
    seccomp: SeccompSpec
    residual_actions: set[str] = field(default_factory=set)
    _table: object = field(default=None, repr=False)

    @property
    def table(self) -> object:
        """The loaded C table (``struct aegis_dtable *``, freed with this object)."""
        if self._table is None:
            from aegis.native import ffi, lib

            raw = lib.aegis_dtable_load(self.table_blob, len(self.table_blob))
            if raw == ffi.NULL:
                raise ValueError("decision table blob rejected by aegis_dtable_load")
            self._table = ffi.gc(raw, lib.aegis_dtable_free)
        return self._table

    def decide(self, action: Action, path: str) -> tuple[int, str | None]:
        """Decide ``(action, canonical path)`` in C: ``(Decision code, deciding policy id or None)``."""
        from aegis.native import ffi, lib

        index = ffi.new("int *")
        raw = path.encode("utf-8", "surrogateescape")
        code = lib.aegis_dtable_decide(self.table, int(action), raw, len(raw), index)
        return code, (self.policy_ids[index[0]] if index[0] >= 0 else None)


def compile_rules(engine: PolicyEngine, tool_input: bool = False) -> dict[Action, list[Rule]]:
    """The rule IR: per action, the policies that can apply, in policy order. With ``tool_input``,
    conditions on the ToolCall input record compile to matchers (the table cannot decide those)."""
    translator = _Translator(engine.principal, tool_input)
    matchers = [(info, translator.policy(engine.tree.static_policies[info.id])) for info in engine.policies]
    rules: dict[Action, list[Rule]] = {}
    for action in Action:
        rules[action] = []
        for index, (info, matcher) in enumerate(matchers):
            m = specialise(matcher, action)
            if m != FALSE:
                rules[action].append(Rule(info.effect, m, index, info.id))
    return rules


def compile_policy(engine: PolicyEngine) -> CompiledPolicy:
    """Compile ``engine``'s policies into the IR, the C table, Landlock and seccomp specs."""
    from aegis.policy.landlock import landlock_spec
    from aegis.policy.seccomp import seccomp_spec

    rules = compile_rules(engine)
    return CompiledPolicy(
        policy_ids=[p.id for p in engine.policies],
        rules=rules,
        table_blob=encode_table(rules, len(engine.policies)),
        landlock=landlock_spec(rules),
        seccomp=seccomp_spec(),
        residual_actions={a.name for a, rs in rules.items() if any(has_residual(r.matcher) for r in rs)},
    )


def explain(engine: PolicyEngine, abi: int) -> dict[str, object]:
    """What enforces each action: kernel (Landlock on ABI ``abi``), supervisor (the C
    table), residual (cedarpy at run time); plus the policies that did not compile."""
    compiled = compile_policy(engine)
    landlock = compiled.landlock.for_abi(abi)
    actions: dict[str, object] = {}
    uncompiled: dict[str, dict[str, object]] = {}
    for action, rules in compiled.rules.items():
        table = [{"policy": r.policy_id, "effect": r.effect, "condition": render(r.matcher)}
                 for r in rules if not has_residual(r.matcher)]
        residual = []
        for r in rules:
            reasons = residual_reasons(r.matcher)
            if reasons:
                residual.append({"policy": r.policy_id, "effect": r.effect, "condition": render(r.matcher),
                                 "outside_fragment": sorted(set(reasons))})
                entry = uncompiled.setdefault(r.policy_id,
                                              {"policy": r.policy_id, "actions": [], "why": set()})
                entry["actions"].append(action.name)
                entry["why"] |= set(reasons)
        actions[action.name] = {"kernel": landlock.kernel_view(action), "supervisor": table,
                                "residual": residual}
    return {
        "policies": [p.id for p in engine.policies],
        "actions": actions,
        "uncompiled": [{**e, "why": sorted(e["why"])} for e in uncompiled.values()],
        "landlock": landlock.to_json(),
        "seccomp": compiled.seccomp.to_json(),
    }
