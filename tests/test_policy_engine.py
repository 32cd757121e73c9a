"""Policy loading, strict validation, templates and request building."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import assert_one_line_error

from aegis.errors import AegisError
from aegis.policy import PolicyEngine, PolicyError, canonical_path
from aegis.policy.templates import TEMPLATES, like_literal, render_template


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_validates(run_aegis, tmp_path, template):
    text = render_template(template, tmp_path)
    f = tmp_path / f"{template}.cedar"
    f.write_text(text)
    proc = run_aegis("policy", "validate", "--path", str(f))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("valid: ")


def test_generate_prints_a_template_for_the_project(run_aegis, tmp_path):
    proc = run_aegis("policy", "generate", "--template", "workspace-write", "--dir", str(tmp_path))
    assert proc.returncode == 0
    assert f'"{tmp_path}/*"' in proc.stdout


@pytest.mark.parametrize("text,needle,line", [
    ('permit(principal, action == Aegis::Action::"FileReed", resource);', "unrecognized action", 1),
    ('\n\npermit(principal, action, resource) when { resource.pth == "/x" };', "pth", 3),
    ('permit(principal, action, resource);\n\npermit(principal, action, resource) when { resource.path == };',
     "syntax error", 3),
    ('forbid(principal, action, resource) when { context.nonexistent == 1 };', "nonexistent", 1),
])
def test_validate_rejects_with_location(run_aegis, tmp_path, text, needle, line):
    f = tmp_path / "bad.cedar"
    f.write_text(text)
    proc = run_aegis("policy", "validate", "--path", str(f))
    assert proc.returncode == 1
    assert needle in proc.stderr
    assert f"bad.cedar:{line}:" in proc.stderr
    proc = run_aegis("policy", "validate", "--path", str(f), "--json")
    assert json.loads(proc.stdout)["valid"] is False


def test_validate_missing_file_is_one_line(run_aegis, tmp_path):
    assert_one_line_error(run_aegis("policy", "validate", "--path", str(tmp_path / "missing.cedar")))


def test_duplicate_ids_across_files_are_rejected():
    with pytest.raises(PolicyError) as info:
        PolicyEngine.from_sources({"a.cedar": '@id("x") permit(principal, action, resource);',
                                   "b.cedar": '@id("x") forbid(principal, action, resource);'})
    assert "duplicate policy id" in str(info.value)


def test_policy_ids_are_annotation_or_file_index():
    engine = PolicyEngine.from_sources({"p.cedar": 'permit(principal, action, resource);\n'
                                                   '@id("named") forbid(principal, action, resource) '
                                                   'when { resource.path == "/secret" };'})
    assert [p.id for p in engine.policies] == ["p.cedar:0", "named"]
    assert engine.authorize("FileRead", "/x").policy_ids == ("p.cedar:0",)
    denied = engine.authorize("FileRead", "/secret")
    assert not denied.allowed and denied.policy_ids == ("named",)


def test_evaluation_error_is_deny_and_recorded():
    # Integer overflow passes strict validation but fails at run time. Cedar skips an erroring
    # policy, so the other permit would allow: Aegis must deny instead, and record the error.
    engine = PolicyEngine.from_sources({"e.cedar": 'permit(principal, action, resource);\n'
                                                   'forbid(principal, action, resource) '
                                                   'when { context.pid * 9223372036854775807 > 1 };'}, "agent")
    decision = engine.authorize("FileRead", "/x", {"pid": 7})
    assert not decision.allowed
    assert decision.errors and "overflow" in decision.errors[0]
    assert engine.authorize("FileRead", "/x", {"pid": 0}).allowed


@pytest.mark.parametrize("raw,cwd,expected", [
    ("/a/b/../c", None, "/a/c"),
    ("//x", None, "/x"),
    ("/x//y/./z/", None, "/x/y/z"),
    ("/../../etc/passwd", None, "/etc/passwd"),
    ("rel/file", "/work/proj", "/work/proj/rel/file"),
    ("../up", "/work/proj", "/work/up"),
    (".", "/work", "/work"),
    (b"/bytes/ok", None, "/bytes/ok"),
])
def test_canonical_paths(raw, cwd, expected):
    assert canonical_path(raw, cwd) == expected


@pytest.mark.parametrize("raw,message", [
    (b"/bad/\xff\xfe", "not valid UTF-8"), ("/nul\x00byte", "NUL"), ("", "empty"),
    ("/lone\udcff", "lone surrogate"),
])
def test_bad_paths_are_rejected_clearly(raw, message):
    with pytest.raises(AegisError) as info:
        canonical_path(raw)
    assert message in str(info.value)


def test_dotdot_cannot_escape_a_forbid():
    engine = PolicyEngine.from_sources({"p.cedar": render_template("workspace-write", Path("/work/proj"),
                                                                   home=Path("/home/u"))})
    for path in ["/work/proj/../../home/u/.ssh/id_rsa", "//home/u/.ssh/id_rsa", "/home/u/./.ssh/id_rsa"]:
        decision = engine.authorize("FileRead", path)
        assert not decision.allowed and decision.policy_ids == ("forbid-secrets",), path
    assert engine.authorize("FileWrite", "/work/proj/a/../b.txt").allowed
    assert not engine.authorize("FileWrite", "/work/proj/../escape.txt").allowed


@pytest.mark.parametrize("name", ['we"ird', "back\\slash", 'x") || true || ("', "star*", "new\nline"])
def test_hostile_resource_names_are_data_not_policy(name):
    engine = PolicyEngine.from_sources({"p.cedar": '@id("only") permit(principal, action, resource) '
                                                   'when { resource.path == "/allowed" };'})
    assert not engine.authorize("FileRead", f"/dir/{name}").allowed
    assert not engine.authorize("ToolCall", name).allowed


def test_template_values_are_escaped_for_like():
    assert like_literal('a"b\\c*d') == 'a\\"b\\\\c\\*d'
    project = Path('/work/we"ird*dir')
    engine = PolicyEngine.from_sources({"p.cedar": render_template("workspace-write", project)})
    assert engine.authorize("FileWrite", '/work/we"ird*dir/file').allowed
    # the `*` in the project name is literal: it must not widen the permit
    assert not engine.authorize("FileWrite", '/work/we"irdXXXdir/file').allowed


def test_network_resources_parse_host_and_port():
    engine = PolicyEngine.from_sources({"n.cedar": 'permit(principal, action == Aegis::Action::"NetConnect", '
                                                   'resource) when { context.port == 443 };'})
    assert engine.authorize("NetConnect", "10.1.2.3:443").allowed
    assert not engine.authorize("NetConnect", "10.1.2.3:80").allowed
    assert engine.authorize("NetConnect", "[::1]:443").allowed
    with pytest.raises(AegisError):
        engine.authorize("NetConnect", "no-port")
