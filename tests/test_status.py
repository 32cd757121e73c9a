"""`aegis status`: health items over real configs and ledgers, through the library and the CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from support import assert_one_line_error

from aegis.config import Config, load_config, save_config
from aegis.ledger import Event, open_ledger
from aegis.provision import create_config
from aegis.sandbox import capabilities
from aegis.status import FAIL, OK, WARN, config_status, healthy

ITEMS = ["config", "policies", "ledger", "last-session", "enforcement", "observer"]


@pytest.fixture
def demo(aegis_home: Path, tmp_path: Path) -> Config:
    project = tmp_path / "project"
    project.mkdir()
    create_config(aegis_home / "demo", "demo", "workspace-write", project)
    config = load_config("demo")
    with open_ledger(config) as ledger:
        sid = ledger.begin_session(
            command=["agent", "go"], cwd=str(project), policy_hash="h", observer="seccomp", config="demo"
        )
        ledger.append(
            [
                Event(action="FileRead", resource=f"/etc/f{i}", decision="allow", session_id=sid)
                for i in range(20)
            ]
        )
        ledger.end_session(sid, exit_code=0, signal=None)
    return config


def by_name(items) -> dict:
    return {i.name: i for i in items}


def test_healthy_config(demo: Config, run_aegis) -> None:
    items = config_status("demo")
    assert [i.name for i in items] == ITEMS
    got = by_name(items)
    assert got["config"].level == OK
    assert got["policies"].level == OK and "forbid-secrets" in got["policies"].data["ids"]
    assert got["ledger"].level == OK and got["ledger"].data["entries_checked"] == 22
    assert got["ledger"].data["checkpoints_checked"] >= 1
    assert got["last-session"].level == OK and "finished (exit 0)" in got["last-session"].summary
    possible = capabilities.enforcement_possible(capabilities.probe())
    assert got["enforcement"].level == (OK if possible else FAIL)
    proc = run_aegis("status", "demo", "--json")
    data = json.loads(proc.stdout)
    assert [i["name"] for i in data["items"]] == ITEMS
    assert data["healthy"] == healthy(items) and proc.returncode == (0 if healthy(items) else 1)
    text = run_aegis("status", "demo").stdout
    assert "policies" in text and "agent go" in text


def test_missing_config_fails_naming_it(run_aegis) -> None:
    items = config_status("nothere")
    assert [(i.name, i.level) for i in items] == [("config", FAIL)]
    proc = run_aegis("status", "nothere")
    assert proc.returncode == 1 and "unhealthy: config" in proc.stderr
    assert_one_line_error(proc)


def test_invalid_policy_fails_naming_it(demo: Config, run_aegis) -> None:
    (demo.directory / "policies" / "broken.cedar").write_text(
        'permit (principal, action == Aegis::Action::"Nope", resource);\n'
    )
    got = by_name(config_status("demo"))
    assert got["policies"].level == FAIL and "broken.cedar" in got["policies"].summary
    proc = run_aegis("status", "demo")
    assert proc.returncode == 1 and "unhealthy: policies" in proc.stderr


def test_tampered_ledger_fails_naming_the_entry(demo: Config, run_aegis) -> None:
    with sqlite3.connect(demo.ledger_path) as db:
        db.execute("UPDATE entries SET record = replace(record, '/etc/f7', '/etc/f8') WHERE seq = 9")
    got = by_name(config_status("demo"))
    assert got["ledger"].level == FAIL and got["ledger"].data["first_bad_seq"] == 9
    assert "entry 9" in got["ledger"].summary
    proc = run_aegis("status", "demo", "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["healthy"] is False


def test_interrupted_session_and_no_isolation_warn(demo: Config) -> None:
    with open_ledger(demo) as ledger:
        sid = ledger.begin_session(
            command=["agent", "crash"], cwd="/", policy_hash="h", observer="seccomp", config="demo"
        )
        ledger.end_session(sid, exit_code=None, signal=9, state="interrupted")
    demo.isolation, demo.observer = "none", "none"
    save_config(demo)
    got = by_name(config_status("demo"))
    assert got["last-session"].level == WARN and "interrupted" in got["last-session"].summary
    assert got["enforcement"].level == WARN and got["observer"].level == WARN


def test_no_ledger_yet_is_a_warning(aegis_home: Path, tmp_path: Path) -> None:
    create_config(aegis_home / "fresh", "fresh", "default-deny", tmp_path)
    config = load_config("fresh")
    config.ledger_path.unlink(missing_ok=True)
    got = by_name(config_status("fresh"))
    assert got["ledger"].level == WARN and got["last-session"].level == WARN


def test_large_ledger_takes_the_checkpoint_fast_path(demo: Config, monkeypatch) -> None:
    import aegis.status

    monkeypatch.setattr(aegis.status, "FULL_VERIFY_LIMIT", 0)
    got = by_name(config_status("demo"))
    assert got["ledger"].level == OK and got["ledger"].data["scope"] == "since-checkpoint"
    assert got["ledger"].data["trusted_entries"] > 0


def test_status_names_the_observer_an_auto_session_then_runs_with(demo: Config, run_aegis) -> None:
    """`aegis status` answers "auto (would use X)" by the same choice `aegis run`
    makes: X is what the next real session records as its observer."""
    assert demo.observer == "auto"
    observer = {i.name: i for i in config_status("demo")}["observer"]
    assert observer.level == OK
    proc = run_aegis("run", "--config", "demo", "--", "true", cwd=demo.directory)
    assert proc.returncode == 0, proc.stderr
    with open_ledger(demo) as ledger:
        ran = ledger.sessions()[-1].observer
    assert observer.summary == f"auto (would use {ran})"
