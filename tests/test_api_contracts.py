"""Contract tests in the psutil style: the CLI and the Python API are two faces of one
library, so on the same ledger and the same policies they must give the same
answers (queries, verification, sessions, export counts, decisions)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import aegis

QUERIES = [
    ({}, []),
    ({"action": "FileWrite"}, ["--action", "FileWrite"]),
    ({"decision": "deny"}, ["--decision", "deny"]),
    ({"last": 3}, ["--last", "3"]),
    ({"path_glob": "*/out-*"}, ["--path-glob", "*/out-*"]),
    ({"action": "ToolCall", "decision": "allow"}, ["--action", "ToolCall", "--decision", "allow"]),
]
TOOL_CALLS = [("Bash", {"command": "git status"}), ("Bash", {"command": "rm -rf /"}),
              ("WebFetch", {"url": "http://169.254.169.254/latest"}), ("Read", {"file_path": "/etc/hostname"})]


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One config whose ledger holds sessions run by the CLI and by the API, and
    events appended through the API (module-scoped: built once, only read after)."""
    home = tmp_path_factory.mktemp("contract-home")
    work = tmp_path_factory.mktemp("contract-work")
    monkey = pytest.MonkeyPatch()
    monkey.setenv("AEGIS_HOME", str(home))
    try:
        aegis.create_config("contract", template="workspace-write", project_dir=work)
        from support import aegis_command
        subprocess.run([*aegis_command(), "run", "--config", "contract", "--", "sh", "-c",
                        "echo cli > out-cli.txt; echo x > /etc/contract-denied; cat out-cli.txt"],
                       cwd=work, check=False, capture_output=True, timeout=120)
        with aegis.Sandbox("contract") as sandbox:
            sandbox.run(["sh", "-c", "echo api > out-api.txt; ls /root > /dev/null"], cwd=work,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).wait(timeout=60)
        policy = aegis.Policy.load("contract")
        with aegis.Ledger.open("contract") as ledger:
            for tool, tool_input in TOOL_CALLS:
                ledger.record("ToolCall", tool, policy.authorize("ToolCall", tool, {"input": tool_input}),
                              details={"input": tool_input})
    finally:
        monkey.undo()
    return home, work


@pytest.fixture
def contract_home(populated: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AEGIS_HOME", str(populated[0]))
    return populated[1]


def cli_json(run_aegis, *args: str) -> object:
    proc = run_aegis(*args, check=True)
    return json.loads(proc.stdout)


@pytest.mark.parametrize(("api_filters", "cli_flags"), QUERIES)
def test_query_matches(contract_home: Path, run_aegis, api_filters: dict, cli_flags: list[str]) -> None:
    with aegis.Ledger.open("contract") as ledger:
        api = [e.to_dict() for e in ledger.query(**api_filters)]
    assert api, f"the fixture ledger has no entries for {api_filters}: the comparison would be empty"
    assert cli_json(run_aegis, "audit", "query", "contract", "--json", *cli_flags) == api


def test_verify_sessions_and_size_match(contract_home: Path, run_aegis) -> None:
    with aegis.Ledger.open("contract") as ledger:
        verified, sessions, size = ledger.verify(), ledger.sessions(), ledger.size()
    assert verified.ok and len(sessions) == 2
    assert cli_json(run_aegis, "audit", "verify", "contract", "--json") == verified.to_dict()
    assert cli_json(run_aegis, "audit", "sessions", "contract", "--json") == [s.to_dict() for s in sessions]
    for session in sessions:
        shown = cli_json(run_aegis, "audit", "session", "contract", "--id", session.id, "--json")
        with aegis.Ledger.open("contract") as ledger:
            assert shown["entries"] == [e.to_dict() for e in ledger.query(session=session.id)]
    for fmt in ("jsonl", "csv", "cef"):
        exported = run_aegis("audit", "export", "contract", "--format", fmt, check=True).stdout
        rows = len(exported.splitlines()) - (1 if fmt == "csv" else 0)
        assert rows == size, fmt


def test_sessions_of_cli_and_api_record_the_same_shape(contract_home: Path) -> None:
    with aegis.Ledger.open("contract") as ledger:
        cli_session, api_session = ledger.sessions()
        assert cli_session.details["mode"] == "run" and api_session.details["mode"] == "api"
        for session in (cli_session, api_session):
            assert session.state == "finished" and session.exit_code == 0
            assert set(session.counts) >= {"events", "denied", "dropped"}
            writes = [e for e in ledger.query(session=session.id, action="FileWrite", decision="allow")]
            assert [Path(e.resource).name for e in writes if "out-" in e.resource]


def test_recorded_kernel_decisions_agree_with_policy_authorize(contract_home: Path) -> None:
    """What the sandbox decided for each file action is what Policy.authorize says."""
    policy = aegis.Policy.load("contract")
    checked = 0
    with aegis.Ledger.open("contract") as ledger:
        for entry in ledger.query():
            if entry.kind != "event" or entry.action not in ("FileRead", "FileWrite", "DirList") \
                    or entry.source == "aegis" or "aegis-guard" in entry.policy_ids:
                continue
            decision = policy.authorize(entry.action, entry.resource)
            assert decision.decision == entry.decision, entry
            checked += 1
    assert checked >= 3


def test_policy_explain_and_list_match(contract_home: Path, run_aegis) -> None:
    policy = aegis.Policy.load("contract")
    assert cli_json(run_aegis, "policy", "explain", "contract", "--json") == json.loads(json.dumps(policy.explain()))
    listed = cli_json(run_aegis, "policy", "list", "contract", "--json")
    assert listed == [vars(p) for p in policy.policies]


@pytest.mark.parametrize(("tool", "tool_input"), TOOL_CALLS)
def test_hook_decisions_match_policy_authorize(contract_home: Path, run_aegis, tool: str,
                                               tool_input: dict) -> None:
    event = {"hook_event_name": "PreToolUse", "session_id": "s1", "cwd": str(contract_home), "tool_name": tool,
             "tool_input": tool_input, "tool_use_id": "t1"}
    proc = run_aegis("hook", "claude-code", "--config", "contract", input=json.dumps(event))
    answered = json.loads(proc.stdout)["hookSpecificOutput"]["permissionDecision"]
    expected = aegis.Policy.load("contract").authorize("ToolCall", tool, {"input": tool_input})
    assert answered == expected.decision
