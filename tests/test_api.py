"""The public Python API (aegis.Policy, aegis.Ledger, aegis.Sandbox, aegis.native_api):
its lazy import, its docstring examples, and each class against real policies,
real SQLite ledgers and real sandboxed processes."""

from __future__ import annotations

import doctest
import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import aegis_import_root

import aegis
from aegis.errors import AegisError

ROOT = Path(__file__).resolve().parents[1]
DOCTEST_MODULES = ["aegis", "aegis.api.policy", "aegis.api.ledger", "aegis.api.sandbox", "aegis.native_api",
                   "aegis.api.configs"]
HEAVY_MODULES = ("cedarpy", "cryptography", "sqlite3", "_sqlite3", "aegis.api", "aegis.ledger", "aegis.policy",
                 "aegis._native")


def test_import_aegis_loads_nothing_heavy() -> None:
    code = (f"import sys, aegis; heavy = {HEAVY_MODULES!r}; "
            "print(sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in heavy)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": aegis_import_root()}).stdout
    assert out.strip() == "[]"


def test_every_public_name_resolves_and_nothing_else_does() -> None:
    for name in aegis.__all__:
        assert getattr(aegis, name) is not None, name
    assert set(aegis.__all__) <= set(dir(aegis))
    with pytest.raises(AttributeError, match="no attribute 'ledger_internals'"):
        aegis.ledger_internals  # noqa: B018
    assert aegis.Ledger.__module__ == "aegis.api.ledger" and aegis.Event.__name__ == "Event"


@pytest.mark.parametrize("module_name", DOCTEST_MODULES)
def test_docstring_examples(module_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0
    if module_name not in ("aegis", "aegis.api.configs"):
        assert result.attempted > 0, f"{module_name} has no examples"


# -- Policy ------------------------------------------------------------------

def test_policy_load_by_config_name_path_and_directory(tmp_path: Path) -> None:
    config = aegis.create_config("pol", template="workspace-write", project_dir=tmp_path)
    by_name = aegis.Policy.load("pol")
    by_dir = aegis.Policy.load(config.directory / "policies", principal="pol")
    by_file = aegis.Policy.load([config.directory / "policies" / "default.cedar"], principal="pol")
    for policy in (by_name, by_dir, by_file):
        assert policy.authorize("FileWrite", str(tmp_path / "x")).allowed
        denied = policy.authorize("FileWrite", "/etc/passwd")
        assert (denied.allowed, denied.decision) == (False, "deny")
        assert policy.authorize("FileRead", "secret/../.env", cwd=tmp_path).policy_ids  # forbid named
    assert by_name.principal == "pol" and [p.id for p in by_name.policies] == [p.id for p in by_dir.policies]


def test_policy_errors_are_located_and_missing_things_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cedar"
    bad.write_text('permit(principal, action == Aegis::Action::"FileRead", resource);\n'
                   'permit(principal, action == Aegis::Action::"Nope", resource);\n')
    with pytest.raises(aegis.PolicyError) as info:
        aegis.Policy.load(bad)
    assert info.value.problems[0].line == 2 and "bad.cedar" in str(info.value)
    with pytest.raises(AegisError, match="does not exist"):
        aegis.Policy.load(tmp_path / "missing.cedar")
    with pytest.raises(AegisError, match="no-such-config"):
        aegis.Policy.load("no-such-config")
    with pytest.raises(AegisError, match="unknown action"):
        aegis.Policy.from_text("permit(principal, action, resource);").authorize("Teleport", "/x")


def test_policy_explain_splits_kernel_supervisor_and_residual(tmp_path: Path) -> None:
    aegis.create_config("exp", template="workspace-write", project_dir=tmp_path)
    report = aegis.Policy.load("exp").explain()
    assert set(report["actions"]) >= {"FileRead", "FileWrite", "ToolCall"}
    assert report["policies"] == [p.id for p in aegis.Policy.load("exp").policies]


# -- Ledger ------------------------------------------------------------------

def test_ledger_open_by_name_config_and_path(tmp_path: Path) -> None:
    config = aegis.create_config("led", project_dir=tmp_path)
    with aegis.Ledger.open("led") as by_name:
        seq = by_name.record("ToolCall", "Bash", aegis.Policy.load(config).authorize("ToolCall", "Bash"),
                             details={"command": "ls"})
        entry = list(by_name.query(after_seq=seq - 1))[0]
        assert (entry.action, entry.decision, entry.principal, entry.source) == ("ToolCall", "allow", "led", "api")
        assert entry.policy_ids and entry.details == {"command": "ls"}
        assert by_name.checkpoint().startswith("aegis/led\n")
        assert by_name.verify().ok and by_name.verify().checkpoints_checked >= 1
    with aegis.Ledger.open(config) as by_config:
        assert by_config.size() == seq
    with aegis.Ledger.open(tmp_path / "own.db", principal="me") as by_path:
        by_path.record("Note", "x", "info")
        assert [e.principal for e in by_path.query()] == ["me"]
        with pytest.raises(AegisError, match="no signing key"):
            by_path.checkpoint()
    with pytest.raises(AegisError, match="nope"):
        aegis.Ledger.open("nope")
    with pytest.raises(AegisError, match="decision must be one of"):
        aegis.Ledger.open(tmp_path / "own.db").record("Note", "x", "maybe")


def test_closed_ledger_refuses_and_sessions_fold(tmp_path: Path) -> None:
    ledger = aegis.Ledger.open(tmp_path / "l.db", principal="me")
    session = ledger.begin_session(["agent"], cwd=str(tmp_path))
    ledger.record("ToolCall", "Read", "allow", session_id=session)
    ledger.end_session(session, exit_code=3)
    [found] = ledger.sessions()
    assert (found.id, found.state, found.exit_code, found.command) == (session, "finished", 3, ["agent"])
    assert [e.action for e in ledger.query(session=session)] == ["SessionStart", "ToolCall", "SessionEnd"]
    ledger.close()
    with pytest.raises(AegisError, match="closed"):
        ledger.size()


def test_follow_tails_new_entries_and_stops(tmp_path: Path) -> None:
    writer = aegis.Ledger.open(tmp_path / "l.db")
    writer.record("A", "1", "info")
    done = []
    tail = writer.follow(stop=lambda: bool(done), poll_seconds=0.01)
    assert next(tail).resource == "1"
    writer.record("A", "2", "info")
    assert next(tail).resource == "2"
    writer.record("A", "3", "info")
    done.append(True)
    assert [e.resource for e in tail] == ["3"]
    writer.close()


# -- Sandbox -----------------------------------------------------------------

@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    aegis.create_config("box", template="workspace-write", project_dir=tmp_path)
    return tmp_path


def test_run_reports_pid_and_session_early_and_streams_events(workspace: Path) -> None:
    with aegis.Sandbox("box") as sandbox:
        proc = sandbox.run(["sh", "-c", "read line; echo \"$line $GREETING\" > out.txt; cat out.txt"],
                           cwd=workspace, env={"PATH": os.environ["PATH"], "GREETING": "world"},
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.returncode is None
        assert Path(f"/proc/{proc.pid}/cwd").resolve() == workspace.resolve()  # the agent itself, running
        events = proc.events()
        first = next(events)  # live: the session is recorded before the agent has done anything
        assert (first.action, first.session_id) == ("SessionStart", proc.session_id)
        out, _ = proc.communicate("hello\n", timeout=30)
        rest = list(events)
    assert (proc.returncode, out) == (0, "hello world\n")
    assert rest[-1].action == "SessionEnd" and rest[-1].details["state"] == "finished"
    assert ("FileWrite", "allow", str(workspace / "out.txt")) in {(e.action, e.decision, e.resource) for e in rest}
    assert proc.result["session_id"] == proc.session_id and proc.error is None


def test_exit_code_denied_exec_and_missing_command(workspace: Path) -> None:
    sandbox = aegis.Sandbox(aegis.load_config("box"))
    assert sandbox.run(["sh", "-c", "exit 7"], cwd=workspace).wait(timeout=30) == 7
    with pytest.raises(AegisError, match="command not found: no-such-program") as info:
        sandbox.run(["no-such-program"], cwd=workspace)
    assert info.value.exit_code == 127
    with pytest.raises(AegisError, match="cannot start a session"):
        sandbox.run(["true"], cwd=workspace / "missing-dir")


def test_leaving_the_block_ends_a_running_session(workspace: Path) -> None:
    with aegis.Sandbox("box") as sandbox, sandbox.run(["sleep", "60"], cwd=workspace) as proc:
        agent = proc.pid
    assert proc.returncode == 128 + signal.SIGTERM
    assert not Path(f"/proc/{agent}").exists() or "Z" in Path(f"/proc/{agent}/stat").read_text().split()[2]
    with aegis.Ledger.open("box") as ledger:
        assert ledger.session(proc.session_id).state == "interrupted"
        assert ledger.verify().ok


def test_embedding_process_keeps_its_children_and_signal_handlers(workspace: Path) -> None:
    """The session runs in its own supervisor: it must not reap or kill our other
    children, nor replace our signal handlers."""
    bystander = subprocess.Popen(["sleep", "30"])
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with aegis.Sandbox("box") as sandbox:
            assert sandbox.run(["sh", "-c", "sleep 0.2 & exit 0"], cwd=workspace).wait(timeout=30) == 0
        assert bystander.poll() is None
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        bystander.kill()
        bystander.wait()


def test_sandbox_close_ends_every_session_it_started(workspace: Path) -> None:
    sandbox = aegis.Sandbox("box")
    procs = [sandbox.run(["sleep", "60"], cwd=workspace) for _ in range(2)]
    start = time.monotonic()
    sandbox.close()
    assert [p.returncode for p in procs] == [128 + signal.SIGTERM] * 2
    assert time.monotonic() - start < 20


# -- the example agent loop --------------------------------------------------

def test_example_agent_loop_authorizes_sandboxes_and_records(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "agent_loop.py"), "--config", "loop",
                           "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": aegis_import_root()})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "exit 0: hello from the agent" in lines[1]
    assert "rm -rf /" in lines[2] and "refused by forbid-destructive-commands" in lines[2]
    assert "denied by the sandbox: /etc/agent-was-here" in lines[3]
    assert "refused by forbid-cloud-metadata" in lines[4] and lines[5].endswith("verified: True")
    assert not Path("/etc/agent-was-here").exists()
    with aegis.Ledger.open("loop") as ledger:
        calls = list(ledger.query(action="ToolCall"))
        sessions = ledger.sessions()
    assert [c.decision for c in calls] == ["allow", "allow", "deny", "allow", "deny"]
    assert calls[2].policy_ids == ["forbid-destructive-commands"] and calls[2].source == "agent-loop"
    assert len({c.session_id for c in calls}) == 1
    assert [s.state for s in sessions] == ["finished"] * 4  # the loop's own session and three sandbox runs


# -- native_api ----------------------------------------------------------------

def test_native_ring_counts_drops_and_truncates() -> None:
    from aegis.native_api import Ring, RingRecord

    ring = Ring(2)
    assert ring.capacity == 2
    assert ring.push(RingRecord(action=1, decision=1, path="/a")) and ring.push(RingRecord(action=1, decision=2))
    assert not ring.push(RingRecord(action=1, decision=1))
    assert len(ring) == 2 and ring.take_dropped() == 1 and ring.take_dropped() == 0
    assert [r.decision for r in ring.pop()] == [1, 2] and len(ring) == 0
    ring.push(RingRecord(action=8, decision=1, path="/x" * 1000, extra=b"a\0" * 400, exe="e" * 300))
    [record] = ring.pop()
    assert record.truncated == 3 and len(record.path) == 1023 and len(record.extra) == 511
    assert record.exe == "e" * 255
    with pytest.raises(ValueError, match="power of two"):
        Ring(3)


def test_native_chain_table_and_canonicalize() -> None:
    from aegis.native_api import GENESIS, DecisionTable, canonicalize, chain_hashes, check_chain, sha256

    chain, leaves = chain_hashes(GENESIS, [b"a", b"b"], with_leaves=True)
    assert leaves[:32] == sha256(b"\x00a")
    stored = [chain[:32] + b"a", chain[32:] + b"b"]
    assert check_chain(GENESIS, stored) == (None, chain[32:])
    assert check_chain(GENESIS, [stored[0], stored[1][:-1] + b"X"])[0] == 1
    assert canonicalize("/a/b", "../c//./d") == "/a/c/d"
    with pytest.raises(ValueError, match="longer than"):
        canonicalize("/", "x" * 5000)
    policy = aegis.Policy.from_text('permit(principal, action == Aegis::Action::"FileRead", resource) '
                                    'when { resource.path like "/srv/*" && context.pid > 10 };')
    assert DecisionTable.from_policy(policy).decide(aegis.Action.FileRead, "/srv/x")[0].name == "residual"
    with pytest.raises(ValueError, match="rejected"):
        DecisionTable(b"garbage", [])


def test_session_ends_when_the_embedding_program_dies(workspace: Path) -> None:
    program = ("import aegis, sys\n"
               "proc = aegis.Sandbox('box').run(['sleep', '60'])\n"
               "print(proc.pid, proc.session_id, flush=True)\n"
               "sys.stdin.read()\n")
    embedder = subprocess.Popen([sys.executable, "-c", program], cwd=workspace, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": aegis_import_root()})
    agent, session_id = embedder.stdout.readline().split()
    assert Path(f"/proc/{agent}").exists()
    embedder.kill()
    embedder.wait()
    deadline = time.monotonic() + 20
    with aegis.Ledger.open("box") as ledger:
        while ledger.session(session_id).state == "running":
            assert time.monotonic() < deadline, "the session outlived its embedding program"
            time.sleep(0.1)
        assert ledger.session(session_id).state == "interrupted"
    assert not Path(f"/proc/{agent}").exists() or "Z" in Path(f"/proc/{agent}/stat").read_text().split()[2]


def test_package_is_marked_typed() -> None:
    from importlib import resources

    assert resources.files("aegis").joinpath("py.typed").is_file()


def test_ledger_fast_verify_and_checkpoints_through_the_api(tmp_path):
    import aegis

    ledger = aegis.Ledger.open(tmp_path / "ledger.db")
    ledger.append([aegis.Event(action="FileRead", resource=f"/f{i}", decision="allow") for i in range(5)])
    full = ledger.verify()
    assert full.ok and full.entries_checked == 5
    assert ledger.checkpoints() == []  # no key for a bare file: nothing signed
    assert ledger.verify(since_checkpoint=True).ok
    assert [e.resource for e in ledger.query(kind="event")] == [f"/f{i}" for i in range(5)]
    assert list(ledger.query(kind="session")) == []
    ledger.close()
