"""The Cedar -> rule IR compiler and `aegis policy explain`."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from support import assert_one_line_error

from aegis.actions import Action, Decision
from aegis.policy.compiler import (
    FALSE,
    TRUE,
    And,
    Not,
    Or,
    PathEq,
    PathLike,
    Residual,
    compile_policy,
    compile_rules,
    encode_table,
    explain,
    render,
)
from aegis.policy.engine import PolicyEngine


def rules_of(text: str, principal: str = "agent"):
    return compile_rules(PolicyEngine.from_sources({"t.cedar": text}, principal))


def only(text: str, action: Action = Action.FileRead, principal: str = "agent"):
    rules = rules_of(text, principal)[action]
    assert len(rules) == 1, rules
    return rules[0].matcher


def test_path_conditions_become_matchers() -> None:
    m = only('permit (principal, action, resource) when { resource.path == "/a" || '
             'resource.path like "/w/*" && !(resource.path like "*/.env") };')
    assert m == Or(PathEq("/a"), And(PathLike(("/w/", "")), Not(PathLike(("", "/.env")))))


def test_escaped_star_stays_literal_in_the_segments() -> None:
    assert only('permit (principal, action, resource) when { resource.path like "/a\\*b*" };') == \
        PathLike(("/a*b", ""))


def test_action_scopes_and_action_conditions_are_decided_per_action() -> None:
    rules = rules_of('permit (principal, action in [Aegis::Action::"FileRead", Aegis::Action::"DirList"], '
                     'resource);\n'
                     'forbid (principal, action, resource) when { action == Aegis::Action::"FileWrite" };')
    assert [r.effect for r in rules[Action.FileRead]] == ["permit"]
    assert [r.effect for r in rules[Action.DirList]] == ["permit"]
    assert [(r.effect, r.matcher) for r in rules[Action.FileWrite]] == [("forbid", TRUE)]
    assert rules[Action.NetConnect] == []


def test_principal_is_known_at_compile_time() -> None:
    text = 'permit (principal == Aegis::Agent::"bob", action, resource);'
    assert rules_of(text, "bob")[Action.FileRead][0].matcher == TRUE
    assert rules_of(text, "alice")[Action.FileRead] == []


def test_resource_scope_set_membership_and_type_tests() -> None:
    assert only('permit (principal, action, resource == Aegis::Resource::"/x");') == PathEq("/x")
    assert only('permit (principal, action, resource in Aegis::Resource::"/x");') == PathEq("/x")
    assert only('permit (principal, action, resource is Aegis::Resource);') == TRUE
    assert only('permit (principal, action, resource) when { ["/a", "/b"].contains(resource.path) };') == \
        Or(PathEq("/a"), PathEq("/b"))
    assert only('permit (principal, action, resource) when { resource.path != "/a" };') == Not(PathEq("/a"))
    assert only('permit (principal, action, resource) when { resource has path };') == TRUE
    assert only('permit (principal, action, resource) unless { resource.path == "/a" };') == Not(PathEq("/a"))


def test_conditions_outside_the_fragment_are_residual_never_dropped() -> None:
    m = only('permit (principal, action, resource) when { resource.path like "/w/*" && context.pid == 3 };')
    assert m == And(PathLike(("/w/", "")), Residual("context.pid eq 3"))
    compiled = compile_policy(PolicyEngine.from_sources({"t.cedar": 'permit (principal, action, resource) '
                                                         'when { context.executable == "/bin/sh" };'}))
    assert compiled.residual_actions == {a.name for a in Action}
    assert [r.policy_id for r in compiled.rules[Action.FileRead]] == ["t.cedar:0"]


def test_short_circuit_simplification_keeps_error_semantics() -> None:
    # false && <residual> never evaluates the residual: no error, decided false
    never = rules_of('permit (principal, action, resource) when { false && context.pid == 1 };')
    assert never[Action.FileRead] == []
    # <residual> && false may raise an error first: stays residual
    m = only('permit (principal, action, resource) when { context.pid == 1 && false };')
    assert m == And(Residual("context.pid eq 1"), FALSE)


def test_c_like_matching_equals_a_regex_oracle() -> None:
    """Cedar `like` (``*`` = any sequence, ``\\*`` = a star) in C against re.fullmatch."""
    rng = random.Random(3)
    for _ in range(300):
        segments = ["".join(rng.choice("ab/*.") for _ in range(rng.randint(0, 3)))
                    for _ in range(rng.randint(1, 4))]
        pattern = "*".join(seg.replace("*", "\\*") for seg in segments)
        text = f'@id("p") permit (principal, action, resource) when {{ resource.path like "{pattern}" }};'
        compiled = compile_policy(PolicyEngine.from_sources({"t.cedar": text}))
        oracle = re.compile(".*".join(map(re.escape, segments)), re.S)
        for _ in range(10):
            path = "".join(rng.choice("ab/*.") for _ in range(rng.randint(0, 8)))
            code, _ = compiled.decide(Action.FileRead, path)
            assert (code == Decision.allow) == bool(oracle.fullmatch(path)), (pattern, path)


def test_render_shows_cedar_text() -> None:
    assert render(And(PathLike(("/a*", "")), Not(PathEq('/q"')))) == \
        '(resource.path like "/a\\**" && !resource.path == "/q\\"")'


def test_table_blob_layout() -> None:
    rules = rules_of('@id("p") permit (principal, action == Aegis::Action::"DirList", resource) '
                     'when { resource.path == "/a" };')
    blob = encode_table(rules, 1)
    assert blob[:4] == b"AGDT"
    assert blob[4:16] == (1).to_bytes(4, "little") + (1).to_bytes(4, "little") + (1).to_bytes(4, "little")
    assert blob[16] == Action.DirList and blob[17] == 1
    assert blob[-7:] == b"\x03\x02\x00\x00\x00/a"


def test_decide_via_c_matches_the_engine_on_a_template(tmp_path: Path) -> None:
    from aegis.policy.templates import render_template

    engine = PolicyEngine.from_sources({"w.cedar": render_template("workspace-write", tmp_path)})
    compiled = compile_policy(engine)
    assert compiled.decide(Action.FileWrite, str(tmp_path / "a.txt")) == (Decision.allow, "write-project")
    assert compiled.decide(Action.FileWrite, str(tmp_path / ".env")) == (Decision.deny, "forbid-secrets")
    assert compiled.decide(Action.FileWrite, "/etc/passwd") == (Decision.deny, None)
    assert "ToolCall" in compiled.residual_actions and "FileRead" not in compiled.residual_actions


def test_explain_library_splits_kernel_supervisor_residual(tmp_path: Path) -> None:
    engine = PolicyEngine.from_sources({"t.cedar": (
        f'@id("w") permit (principal, action == Aegis::Action::"FileWrite", resource) '
        f'when {{ resource.path like "{tmp_path}/*" }};\n'
        '@id("env") forbid (principal, action, resource) when { resource.path like "*/.env" };\n'
        '@id("ctx") forbid (principal, action == Aegis::Action::"FileRead", resource) '
        'when { context.pid == 1 };')})
    report = explain(engine, 7)
    write = report["actions"]["FileWrite"]
    assert any(line.startswith(f"{tmp_path} (and below): write_file") for line in write["kernel"])
    assert [r["policy"] for r in write["supervisor"]] == ["w", "env"]
    assert report["actions"]["FileRead"]["residual"][0]["policy"] == "ctx"
    assert report["uncompiled"] == [{"policy": "ctx", "actions": ["FileRead"], "why": ["context.pid eq 1"]}]
    assert report["landlock"]["abi"] == 7
    assert explain(engine, 3)["landlock"]["dropped"]


def test_explain_cli_with_path_text_and_json(run_aegis, tmp_path: Path) -> None:
    policy = tmp_path / "p.cedar"
    policy.write_text('@id("r") permit (principal, action == Aegis::Action::"FileRead", resource) '
                      'when { resource.path like "/srv/*" && context.pid == 2 };\n'
                      '@id("s") forbid (principal, action, resource) when { resource.path like "*/.env" };\n')
    text = run_aegis("policy", "explain", "--path", str(policy), check=True).stdout
    assert "FileRead\n  kernel:     /srv (and below): read_file,read_dir" in text
    assert "residual:   permit r: context.pid eq 2" in text
    assert "Not compiled (decided by cedarpy at run time):\n  r (FileRead): context.pid eq 2" in text
    data = json.loads(run_aegis("policy", "explain", "--path", str(policy), "--json", check=True).stdout)
    assert data["policies"] == ["r", "s"]
    assert data["actions"]["FileWrite"]["supervisor"][0]["policy"] == "s"
    assert data["seccomp"]["denied"][0] == {"syscall": "io_uring_setup", "errno": "EPERM"}
    assert data["landlock"]["looser"] == ["FileRead"]  # only /srv, and only for pid 2: the kernel cannot say
    assert "the kernel allows more than the policy for FileRead" in text
    exact = tmp_path / "exact.cedar"
    exact.write_text('permit (principal, action == Aegis::Action::"FileRead", resource) '
                     'when { resource.path like "/srv/*" };\n')
    assert "enforces every file action exactly" in run_aegis("policy", "explain", "--path", str(exact),
                                                              check=True).stdout


def test_explain_cli_by_config_name(run_aegis, tmp_path: Path) -> None:
    run_aegis("init", "exp", "--policy", "workspace-write", "--dir", str(tmp_path), check=True)
    data = json.loads(run_aegis("policy", "explain", "exp", "--json", check=True).stdout)
    assert "write-project" in [r["policy"] for r in data["actions"]["FileWrite"]["supervisor"]]


@pytest.mark.parametrize("args", [["policy", "explain"], ["policy", "explain", "nosuch"],
                                  ["policy", "explain", "x", "--path", "/etc/hostname"]])
def test_explain_cli_bad_input(run_aegis, args: list[str]) -> None:
    assert_one_line_error(run_aegis(*args))
