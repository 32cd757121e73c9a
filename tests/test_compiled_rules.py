"""Compiled rules deciding in pure Python (the hook's hot path) against cedarpy.

Whenever the rules decide a request, the decision must be cedarpy's: allowed or
not, the same set of reasons, no errors. Generated ToolCall policies use the
``context.input`` conditions people write (``has`` guards, ``like``, ``==``,
set ``contains``), tool-name conditions and, mixed in, conditions outside the
fragment, which must go to cedarpy and come back with its answer. File actions
reuse the decision-table generator. The cache: hit without cedarpy, stale or
malformed rebuilt (validating again), never trusted.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import aegis_import_root
from test_decision_table import PATH_ACTIONS, PolicyGen, random_path

from aegis.actions import Action
from aegis.policy.compiled_rules import (
    RULES_FILE,
    CompiledRules,
    evaluate,
    like,
    matcher_json,
)
from aegis.policy.compiler import (
    FALSE,
    TRUE,
    ActionTest,
    And,
    InputEq,
    InputHas,
    InputLike,
    Not,
    Or,
    PathEq,
    PathLike,
    Residual,
    ToolName,
    compile_rules,
    conj,
    disj,
    render,
    specialise,
)
from aegis.policy.engine import PolicyEngine, PolicyError
from aegis.policy.sources import read_policy_sources, tool_input_record

TOOLS = ("Bash", "WebFetch", "Read", "mcp:gh:get_issue", "mcp:gh:delete_repo", "a*b")
INPUT_KEYS = ("command", "url", "file_path", "path", "pattern", "content", "arguments")
WORDS = ("rm", "-rf", "/", "~", "x", "é", "*", "169.254.169.254", "a b", '"q"', "\\")
RESIDUAL_TOOL_CONDITIONS = ('context.session == "s"', "context.pid == 0", 'context.executable like "*"',
                            'context has session')


def cedar_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ToolPolicyGen:
    """Random ToolCall policy sets; ``residual=True`` mixes in conditions outside the fragment."""

    def __init__(self, rng: random.Random, residual: bool = False) -> None:
        self.rng, self.residual = rng, residual

    def value(self) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(0, 3)))

    def pattern(self, text: str) -> str:
        """A `like` pattern built from ``text``, some characters turned into wildcards."""
        pieces = ["*" if self.rng.random() < 0.25 else "\\*" if ch == "*" else
                  "\\\\" if ch == "\\" else '\\"' if ch == '"' else ch for ch in text]
        for _ in range(self.rng.randint(0, 2)):
            pieces.insert(self.rng.randint(0, len(pieces)), "*")
        return '"' + "".join(pieces) + '"'

    def leaf(self) -> str:
        rng, key = self.rng, self.rng.choice(INPUT_KEYS)
        roll = rng.random()
        if self.residual and roll < 0.12:
            return rng.choice(RESIDUAL_TOOL_CONDITIONS)
        if roll < 0.25:
            return f"context.input has {key}"
        if roll < 0.5:
            return f"(context.input has {key} && context.input.{key} like {self.pattern(self.value())})"
        if roll < 0.65:
            return f"(context.input has {key} && context.input.{key} == {cedar_string(self.value())})"
        if roll < 0.72:
            values = ", ".join(cedar_string(self.value()) for _ in range(rng.randint(1, 3)))
            return f"(context.input has {key} && [{values}].contains(context.input.{key}))"
        name = rng.choice(("resource.path", "context.tool"))
        if roll < 0.85:
            return f"{name} like {self.pattern(rng.choice(TOOLS))}"
        if roll < 0.95:
            return f"{name} == {cedar_string(rng.choice(TOOLS))}"
        return rng.choice(("true", "false"))

    def condition(self, depth: int) -> str:
        roll = self.rng.random()
        if depth <= 0 or roll < 0.45:
            return self.leaf()
        if roll < 0.6:
            return f"!({self.condition(depth - 1)})"
        op = "&&" if roll < 0.8 else "||"
        return f"({self.condition(depth - 1)} {op} {self.condition(depth - 1)})"

    def policy_text(self) -> str:
        """1-6 policies; those not scoped to ToolCall alone guard their conditions with
        ``context has input`` (the only way such a policy validates)."""
        rng, policies = self.rng, []
        for i in range(rng.randint(1, 6)):
            effect = "forbid" if rng.random() < 0.4 else "permit"
            roll = rng.random()
            if roll < 0.6:
                action, guard = 'action == Aegis::Action::"ToolCall"', ""
            elif roll < 0.8:
                action, guard = 'action in [Aegis::Action::"ToolCall", Aegis::Action::"FileRead"]', \
                    "context has input && "
            else:
                action, guard = "action", "context has input && "
            clauses = f" when {{ {guard}{self.condition(3)} }}" if rng.random() < 0.9 else ""
            if rng.random() < 0.25:
                clauses += f" unless {{ {guard}{self.condition(2)} }}"
            policies.append(f'@id("t{i}")\n{effect} (principal, {action}, resource){clauses};')
        return "\n".join(policies)


def random_tool_input(rng: random.Random) -> dict:
    """A tool input: some of the known fields (strings mostly, sometimes other JSON values), and others."""
    out: dict = {}
    for key in rng.sample(INPUT_KEYS, rng.randint(0, 4)):
        roll = rng.random()
        out[key] = (" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 3))) if roll < 0.8 else
                    rng.choice((7, None, ["x", 1], {"a": "*"}, True)))
    if rng.random() < 0.3:
        out["old_string"] = rng.choice(WORDS)
    return out


def assert_same(fast, cedar, what: str) -> None:
    assert (fast.allowed, set(fast.policy_ids), fast.errors) == \
        (cedar.allowed, set(cedar.policy_ids), cedar.errors), what


def check_tool_calls(text: str, rng: random.Random, requests: int, residual: bool) -> int:
    """Compare on random ToolCall requests; returns how many the rules decided themselves."""
    engine = PolicyEngine.from_sources({"gen.cedar": text})
    rules = CompiledRules.compile(engine)
    decided = 0
    for _ in range(requests):
        tool, raw = rng.choice(TOOLS), random_tool_input(rng)
        context = {"input": raw, "session": rng.choice(("s", ""))}
        own = rules.decide(Action.ToolCall, tool, tool_input_record(raw))
        if own is None:
            assert residual, f"fragment-only policy came back residual: {tool} {raw}\n{text}"
        else:
            decided += 1
        what = f"{tool} {raw!r}\n{text}"
        cedar = engine.authorize(Action.ToolCall, tool, context)
        assert_same(rules.authorize(Action.ToolCall, tool, context), cedar, what)
        if own is not None:
            assert_same(own, cedar, what)
    return decided


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_tool_call_rules_equal_cedarpy_on_the_fragment(rng: random.Random) -> None:
    check_tool_calls(ToolPolicyGen(rng).policy_text(), rng, requests=12, residual=False)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_tool_call_rules_with_residual_policies_still_give_cedarpys_answer(rng: random.Random) -> None:
    check_tool_calls(ToolPolicyGen(rng, residual=True).policy_text(), rng, requests=12, residual=True)


def test_residual_tool_policies_still_let_the_rules_decide_most_requests() -> None:
    rng = random.Random(11)
    decided = sum(check_tool_calls(ToolPolicyGen(rng, residual=True).policy_text(), rng, 20, True)
                  for _ in range(30))
    assert decided > 300


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_file_action_rules_equal_cedarpy(rng: random.Random) -> None:
    text = PolicyGen(rng, residual=rng.random() < 0.3).policy_text()
    engine = PolicyEngine.from_sources({"gen.cedar": text})
    rules = CompiledRules.compile(engine)
    for _ in range(12):
        action, path = rng.choice(PATH_ACTIONS), random_path(rng)
        context = {"session": "s"}
        assert_same(rules.authorize(action, path, context), engine.authorize(action, path, context),
                    f"{action.name} {path!r}\n{text}")


@pytest.mark.parametrize("template", ["workspace-write", "allow-read-only", "default-deny", "permit-all"])
def test_templates_are_decided_without_cedarpy_and_agree(template: str, tmp_path: Path) -> None:
    from aegis import paths
    from aegis.config import load_config
    from aegis.provision import create_config

    create_config(paths.config_dir("t"), "t", template, tmp_path)
    config = load_config("t")
    engine = PolicyEngine.from_files(config.policy_files(), config.name)
    rules = CompiledRules.compile(engine)
    home = str(Path.home())
    requests = [
        (Action.ToolCall, "Bash", {"input": {"command": "rm -rf /"}}),
        (Action.ToolCall, "Bash", {"input": {"command": "ls -la ~"}}),
        (Action.ToolCall, "Bash", {"input": {"command": "curl 169.254.169.254"}}),
        (Action.ToolCall, "WebFetch", {"input": {"url": "http://169.254.169.254/x"}}),
        (Action.ToolCall, "WebFetch", {"input": {"url": "https://example.com/"}}),
        (Action.ToolCall, "mcp:gh:get_issue", {"input": {}}),
        (Action.FileWrite, str(tmp_path / "a.py"), {}), (Action.FileWrite, "/etc/passwd", {}),
        (Action.FileRead, f"{home}/.ssh/id_rsa", {}), (Action.FileRead, str(tmp_path / ".env"), {}),
        (Action.DirList, str(tmp_path), {}),
    ]
    for action, resource, context in requests:
        record = tool_input_record(context["input"]) if "input" in context else None
        own = rules.decide(action, resource, record)
        assert own is not None, (template, action.name, resource)
        assert_same(own, engine.authorize(action, resource, context), (template, action.name, resource))


# ---------------------------------------------------------------- the compiled fragment


def leaves(m) -> set[type]:
    if isinstance(m, (And, Or)):
        return leaves(m.left) | leaves(m.right)
    return leaves(m.arg) if hasattr(m, "arg") else {type(m)}


def tool_rules(text: str):
    return compile_rules(PolicyEngine.from_sources({"t.cedar": text}), tool_input=True)


def test_input_conditions_compile_only_when_asked_and_only_for_tool_calls() -> None:
    text = ('permit (principal, action, resource) when { context has input && context.input has command '
            '&& (context.input.command like "*rm \\* *" || !(context.input has url && context.input.url == "x")) };')
    m = tool_rules(text)[Action.ToolCall][0].matcher
    assert m == And(InputHas("command"), Or(InputLike("command", ("", "rm * ", "")),
                                            Not(And(InputHas("url"), InputEq("url", "x")))))
    assert render(m) == ('(context.input has command && (context.input.command like "*rm \\* *" || '
                         '!(context.input has url && context.input.url == "x")))')
    assert tool_rules(text)[Action.FileRead] == []  # `context has input` is false for file actions
    table = compile_rules(PolicyEngine.from_sources({"t.cedar": text}))[Action.ToolCall][0].matcher
    assert leaves(table) == {Residual}  # the C table's view is unchanged: all of it is cedarpy's
    mixed = tool_rules('permit (principal, action, resource) when { context has input };')
    assert [r.matcher for r in mixed[Action.ToolCall]] == [TRUE] and mixed[Action.FileWrite] == []


def test_context_tool_is_the_resource_for_tool_calls_only() -> None:
    text = ('forbid (principal, action, resource) when { context has tool && '
            '(context.tool == "Bash" || context.tool like "mcp:*") };')
    [rule] = tool_rules(text)[Action.ToolCall]
    assert rule.matcher == Or(PathEq("Bash"), PathLike(("mcp:", "")))
    assert tool_rules(text)[Action.FileRead] == []
    unspecialised = ToolName(PathLike(("mcp:", "")))
    assert render(unspecialised) == 'context.tool like "mcp:*"'
    assert specialise(unspecialised, Action.FileRead) == Residual('context.tool like "mcp:*"')
    assert disj(unspecialised, TRUE) == Or(unspecialised, TRUE)  # an error for other actions: kept


def test_set_membership_of_an_input_field() -> None:
    m = tool_rules('forbid (principal, action == Aegis::Action::"ToolCall", resource) when '
                   '{ context.input has url && ["a", "b"].contains(context.input.url) };')[Action.ToolCall][0]
    assert m.matcher == And(InputHas("url"), Or(InputEq("url", "a"), InputEq("url", "b")))


def test_simplification_keeps_the_error_of_an_unguarded_input_read() -> None:
    """`context.input.x == "v" || true` errors when x is missing: it must not become true."""
    assert disj(InputEq("command", "v"), TRUE) == Or(InputEq("command", "v"), TRUE)
    assert conj(InputLike("url", ("a",)), FALSE) == And(InputLike("url", ("a",)), FALSE)
    assert disj(InputHas("command"), TRUE) == TRUE  # `has` never fails
    record = tool_input_record({"url": "a"})
    assert evaluate(matcher_json(Or(InputEq("command", "v"), TRUE)), "Bash", record) is None
    assert evaluate(matcher_json(ActionTest(frozenset())), "Bash", record) is None  # unspecialised: residual


def test_like_matches_cedar_semantics() -> None:
    cases = [("abc", [""], False), ("", [""], True), ("abc", ["", ""], True), ("abba", ["ab", "ba"], True),
             ("aba", ["ab", "ba"], False), ("a*b", ["a*b"], True), ("axxb", ["a", "b"], True),
             ("x/rm -rf /y", ["", "rm -rf ", ""], True), ("ab", ["a", "", "b"], True),
             ("aXbXc", ["a", "b", "c"], True), ("acb", ["a", "b", "c"], False),
             ("xaybz", ["x", "b", "a", "z"], False), ("xbyaz", ["x", "b", "a", "z"], True), ("éé", ["é", "é"], True)]
    for text, segments, expected in cases:
        assert like(text, segments) is expected, (text, segments)


def test_tool_input_record_is_the_engines() -> None:
    engine = PolicyEngine.from_sources({"t.cedar": "permit (principal, action, resource);"})
    rng = random.Random(3)
    for _ in range(200):
        raw = random_tool_input(rng)
        request, _ = engine.build_request(Action.ToolCall, "Bash", {"input": raw})
        assert tool_input_record(raw) == request["context"]["input"]


def test_requests_cedarpy_cannot_take_are_left_to_it() -> None:
    text = 'permit (principal, action, resource);'
    engine = PolicyEngine.from_sources({"t.cedar": text})
    rules = CompiledRules.compile(engine)
    odd = {"input": {"command": "a\udcff"}}  # not Unicode: cedarpy answers with an error, a deny
    assert_same(rules.authorize(Action.ToolCall, "Bash", odd), engine.authorize(Action.ToolCall, "Bash", odd), "")
    assert not rules.authorize(Action.ToolCall, "Bash", odd).allowed
    for call in (rules, engine):
        with pytest.raises(UnicodeEncodeError):
            call.authorize(Action.ToolCall, "Bash\udcff", {"input": {}})
        with pytest.raises(ValueError):
            call.authorize(Action.FileRead, "/x", {"pid": "not a number"})
    net = rules.authorize(Action.NetConnect, "example.com:443")  # never decided by the rules
    assert_same(net, engine.authorize(Action.NetConnect, "example.com:443"), "")


# ---------------------------------------------------------------- the cache


POLICY = ('@id("tools") permit (principal, action == Aegis::Action::"ToolCall", resource);\n'
          '@id("no-rm") forbid (principal, action == Aegis::Action::"ToolCall", resource) '
          'when { context.input has command && context.input.command like "*rm -rf*" };\n')


def write_policy(directory: Path, text: str) -> dict[str, str]:
    (directory / "p.cedar").write_text(text)
    return read_policy_sources([directory / "p.cedar"])


def test_cache_is_written_then_used_and_follows_policy_changes(tmp_path: Path) -> None:
    cache = tmp_path / RULES_FILE
    sources = write_policy(tmp_path, POLICY)
    first = CompiledRules.load(sources, "agent", cache)
    assert first._engine is not None and cache.exists()  # compiled: validated with cedarpy
    second = CompiledRules.load(sources, "agent", cache)
    assert second._engine is None and second.rules == first.rules  # from the cache: no cedarpy
    rm = {"input": {"command": "rm -rf /"}}
    assert second.authorize(Action.ToolCall, "Bash", rm).policy_ids == ("no-rm",)
    changed = write_policy(tmp_path, POLICY.replace("rm -rf", "shutdown"))
    third = CompiledRules.load(changed, "agent", cache)
    assert third._engine is not None and third.authorize(Action.ToolCall, "Bash", rm).allowed
    assert CompiledRules.load(changed, "other", cache)._engine is not None  # the principal is in the key


@pytest.mark.parametrize("damage", [
    lambda d: "not json",
    lambda d: {**d, "format": 99},
    lambda d: {**d, "rules": {**d["rules"], "ToolCall": [["permit", "tools", ["nope", 1]]]}},
    lambda d: {**d, "rules": {**d["rules"], "ToolCall": [["allow", "tools", True]]}},
    lambda d: {**d, "rules": {k: v for k, v in d["rules"].items() if k != "FileRead"}},
    lambda d: {**d, "rules": {**d["rules"], "ToolCall": [["permit", "x", ["and", True]]]}},
])
def test_malformed_cache_is_rebuilt_never_trusted(tmp_path: Path, damage) -> None:
    cache = tmp_path / RULES_FILE
    sources = write_policy(tmp_path, POLICY)
    good = CompiledRules.load(sources, "agent", cache).rules
    damaged = damage(json.loads(cache.read_text()))
    cache.write_text(damaged if isinstance(damaged, str) else json.dumps(damaged))
    rebuilt = CompiledRules.load(sources, "agent", cache)
    assert rebuilt._engine is not None and rebuilt.rules == good
    assert json.loads(cache.read_text())["rules"] == good


def test_invalid_policy_is_refused_whatever_the_cache_holds(tmp_path: Path) -> None:
    cache = tmp_path / RULES_FILE
    CompiledRules.load(write_policy(tmp_path, POLICY), "agent", cache)
    bad = write_policy(tmp_path, POLICY + 'permit (principal, action, resource) when { context.input.x };')
    with pytest.raises(PolicyError):
        CompiledRules.load(bad, "agent", cache)


def test_unwritable_cache_still_decides(tmp_path: Path) -> None:
    cache = tmp_path / "missing-dir" / "sub" / RULES_FILE
    (tmp_path / "missing-dir").write_text("a file where a directory should be")
    rules = CompiledRules.load(write_policy(tmp_path, POLICY), "agent", cache)
    assert not rules.authorize(Action.ToolCall, "Bash", {"input": {"command": "rm -rf ~"}}).allowed


CHILD = """
import json, sys
from aegis.actions import Action
from aegis.integrations.toolcall import ToolGate
gate = ToolGate.for_config("c")
verdict = gate.decide("Bash", {"command": sys.argv[1]}, [(Action.FileRead, "/etc/hosts")])
print(json.dumps({"decision": verdict.decision, "cedarpy": "cedarpy" in sys.modules}))
"""


def test_hook_process_decides_without_importing_cedarpy_unless_residual(tmp_path: Path) -> None:
    from aegis import paths
    from aegis.provision import create_config

    config = create_config(paths.config_dir("c"), "c", "workspace-write", tmp_path)
    env = {**os.environ, "PYTHONPATH": aegis_import_root()}

    def child(command: str) -> dict:
        proc = subprocess.run([sys.executable, "-P", "-c", CHILD, command], capture_output=True, text=True,
                              env=env, check=True)
        return json.loads(proc.stdout)

    assert child("ls") == {"decision": "allow", "cedarpy": True}  # first call: validates and compiles
    assert child("ls") == {"decision": "allow", "cedarpy": False}
    assert child("rm -rf /") == {"decision": "deny", "cedarpy": False}
    (config.directory / "policies" / "session.cedar").write_text(
        '@id("one-session") forbid (principal, action == Aegis::Action::"ToolCall", resource) '
        'when { context.session == "blocked" };\n')
    assert child("ls") == {"decision": "allow", "cedarpy": True}  # changed: compiled again
    assert child("ls") == {"decision": "allow", "cedarpy": True}  # a residual rule: cedarpy decides
