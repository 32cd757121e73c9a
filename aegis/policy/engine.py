"""The policy engine: Cedar policies parsed once, validated strictly, evaluated by cedarpy.

Each policy keeps a stable id: its ``@id`` annotation, else ``FILE:INDEX``. The
combined ``PolicySet`` is built from the syntax tree with those ids, so the
policy ids cedarpy reports as reasons are the ids users see everywhere else.
Requests are built as data (entity ids are never formatted into policy text).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import cedarpy

from aegis.actions import Action
from aegis.errors import AegisError
from aegis.policy.canonical import canonical_path
from aegis.policy.decision import Decision
from aegis.policy.sources import read_policy_sources, tool_input_record

_PATH_ACTIONS = frozenset({Action.FileRead, Action.FileWrite, Action.FileDelete, Action.DirCreate,
                           Action.DirList, Action.ProcessSpawn, Action.ProcessExit})


@lru_cache(maxsize=1)
def schema_text() -> str:
    return resources.files("aegis.policy").joinpath("schema.cedarschema").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def schema() -> cedarpy.Schema:
    return cedarpy.Schema.from_str(schema_text())


@dataclass(frozen=True)
class PolicyInfo:
    """One policy: its id, where it came from and its effect."""

    id: str
    file: str
    index: int
    line: int
    effect: str


@dataclass(frozen=True)
class PolicyProblem:
    file: str
    line: int
    policy_id: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: [{self.policy_id}] {self.message}" if self.policy_id else f"{where}: {self.message}"


def split_statements(text: str) -> list[tuple[int, str]]:
    """Split Cedar policy text into ``(start line, statement)`` at top-level ``;``.

    Strings and ``//`` comments are skipped, so a ``;`` inside either never splits.
    Used to locate errors, which cedarpy reports without positions.
    """
    out: list[tuple[int, str]] = []
    start, start_line, line, i, n = None, 0, 1, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
        elif ch == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif not ch.isspace() and start is None:
            start, start_line = i, line
        if ch == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    line += 1
                i += 1
        elif ch == ";" and start is not None:
            out.append((start_line, text[start:i + 1]))
            start = None
        i += 1
    if start is not None:
        out.append((start_line, text[start:]))
    return out


def check_policy_text(text: str, source: str) -> tuple[cedarpy.pst.PolicySet | None, list[PolicyProblem],
                                                       list[int]]:
    """Parse and strictly validate one file's text.

    Returns the syntax tree (None on a parse error), the problems found, and the
    start line of each policy in order.
    """
    statements = split_statements(text)
    lines = [ln for ln, _ in statements]
    try:
        tree = cedarpy.policies_to_pst(text)
    except ValueError:
        problems = []
        for index, (ln, stmt) in enumerate(statements):
            try:
                cedarpy.policies_to_pst(stmt)
            except ValueError as exc:
                problems.append(PolicyProblem(source, ln, f"policy #{index}", f"syntax error: {exc}"))
        if not problems:  # only the whole text fails (e.g. duplicate ids): report it whole
            try:
                cedarpy.policies_to_pst(text)
            except ValueError as exc:
                problems.append(PolicyProblem(source, 0, "", f"syntax error: {exc}"))
        return None, problems, lines
    if tree.templates:
        first = next(iter(tree.templates.values()))
        return None, [PolicyProblem(source, 0, first.id, "templates with ?principal/?resource slots are not "
                                                          "supported in Aegis policies")], lines
    result = cedarpy.validate_policies(text, schema())
    problems = []
    for err in result.errors:
        pid = err.policy_id
        line = 0
        if pid.startswith("policy") and pid[6:].isdigit() and int(pid[6:]) < len(lines):
            line = lines[int(pid[6:])]
        shown = tree.static_policies[pid].annotations.get("id", pid) if pid in tree.static_policies else pid
        problems.append(PolicyProblem(source, line, shown, err.error))
    return tree, problems, lines


@dataclass
class PolicyEngine:
    """Policies of one configuration, ready to authorize requests."""

    principal: str
    policies: list[PolicyInfo]
    tree: cedarpy.pst.PolicySet
    policy_set: cedarpy.PolicySet
    sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_sources(cls, sources: dict[str, str], principal: str = "agent") -> PolicyEngine:
        """Build from ``{source name: policy text}``; raises AegisError listing every problem."""
        infos: list[PolicyInfo] = []
        merged: dict[str, cedarpy.pst.Template] = {}
        problems: list[PolicyProblem] = []
        for source, text in sources.items():
            tree, found, lines = check_policy_text(text, source)
            problems.extend(found)
            if tree is None:
                continue
            for index, (pid, template) in enumerate(tree.static_policies.items()):
                new_id = template.annotations.get("id") or f"{source}:{index}"
                line = lines[int(pid[6:])] if pid[6:].isdigit() and int(pid[6:]) < len(lines) else 0
                if new_id in merged:
                    problems.append(PolicyProblem(source, line, new_id, "duplicate policy id"))
                    continue
                merged[new_id] = dataclasses.replace(template, id=new_id)
                infos.append(PolicyInfo(new_id, source, index, line, template.effect))
        if problems:
            raise PolicyError(problems)
        tree = cedarpy.pst.PolicySet(templates={}, static_policies=merged, template_links=())
        return cls(principal, infos, tree, cedarpy.PolicySet.from_pst(tree), dict(sources))

    @classmethod
    def from_files(cls, files: list[Path], principal: str = "agent") -> PolicyEngine:
        return cls.from_sources(read_policy_sources(files), principal)

    def policy(self, policy_id: str) -> PolicyInfo | None:
        return next((p for p in self.policies if p.id == policy_id), None)

    def build_request(self, action: Action, resource: str, context: dict[str, Any] | None = None,
                      cwd: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The cedarpy request and entity list for one action, built as data."""
        context = dict(context or {})
        base = {"pid": int(context.get("pid", 0)), "executable": str(context.get("executable", "")),
                "session": str(context.get("session", ""))}
        attrs: dict[str, Any] = {}
        if action in _PATH_ACTIONS:
            resource = canonical_path(resource, cwd)
        elif action is Action.NetConnect:
            host, port = split_host_port(resource)
            attrs = {"host": host, "port": port}
            base.update(attrs)
        elif action is Action.ToolCall:
            base.update({"tool": resource, "input": tool_input_record(context.get("input") or {})})
        attrs["path"] = resource
        uid = {"type": "Aegis::Resource", "id": resource}
        request = {
            "principal": {"type": "Aegis::Agent", "id": self.principal},
            "action": action.cedar_uid,
            "resource": uid,
            "context": base,
        }
        return request, [{"uid": uid, "attrs": attrs, "parents": []}]

    def authorize(self, action: Action | str, resource: str, context: dict[str, Any] | None = None,
                  cwd: str | None = None) -> Decision:
        """Decide one request. Evaluation errors are recorded and make the decision deny."""
        if isinstance(action, str):
            action = Action.parse(action)
        request, entities = self.build_request(action, resource, context, cwd)
        result = cedarpy.is_authorized(request, self.policy_set, entities, schema=schema())
        errors = tuple(result.diagnostics.errors)
        return Decision(allowed=result.allowed and not errors, policy_ids=tuple(result.diagnostics.reasons),
                        errors=errors)


class PolicyError(AegisError):
    """Policies that failed to parse or validate; ``problems`` lists each, located."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        self.problems = problems
        first = str(problems[0])
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        super().__init__(first + more)


def split_host_port(value: str) -> tuple[str, int]:
    """Split ``host:port`` / ``[v6]:port``; raises AegisError on anything else."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise AegisError(f"invalid network resource {value!r}: expected host:port")
    return host.strip("[]"), int(port)
