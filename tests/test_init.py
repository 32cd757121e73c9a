"""`aegis init`: configs are written whole, loadable, validated; bad input is one line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from support import assert_one_line_error

from aegis.config import load_config, parse_config
from aegis.errors import AegisError
from aegis.policy import PolicyEngine


def test_init_writes_a_loadable_config(run_aegis, aegis_home, tmp_path):
    proc = run_aegis("init", "demo", "--dir", str(tmp_path), "--policy", "allow-read-only")
    assert proc.returncode == 0, proc.stderr
    config = load_config("demo")
    assert config.project_dir == tmp_path
    assert config.ledger_path == aegis_home / "demo" / "ledger.db"
    engine = PolicyEngine.from_files(config.policy_files(), config.name)
    assert "read-everything" in [p.id for p in engine.policies]
    assert stat.S_IMODE(os.stat(aegis_home).st_mode) == 0o700


def test_wizard_answers_from_stdin(run_aegis, tmp_path):
    answers = f"wiz\nread-only\n{tmp_path}\ny\n"
    proc = run_aegis("init", input=answers)
    assert proc.returncode == 0, proc.stderr
    config = load_config("wiz")
    assert config.project_dir == tmp_path
    names = sorted(p.name for p in config.policy_files())
    assert names == ["default.cedar", "network.cedar"]
    engine = PolicyEngine.from_files(config.policy_files(), "wiz")
    assert engine.authorize("NetConnect", "10.0.0.1:443").allowed
    assert not engine.authorize("FileWrite", str(tmp_path / "x")).allowed


def test_wizard_reprompts_on_a_bad_name(run_aegis, tmp_path):
    proc = run_aegis("init", input=f"bad..name\ngood\nlockdown\n{tmp_path}\nn\n")
    assert proc.returncode == 0, proc.stderr
    assert "contains '..'" in proc.stdout + proc.stderr
    assert load_config("good").name == "good"


@pytest.mark.parametrize("name,why", [
    ("", "empty"), ("a/b", "separator"), ("..", ".."), ("x..y", ".."), (".hidden", "dot"),
    ("bad\nname", "control"), ("tab\tname", "control"), ("x" * 65, "longer"), ("wraps", "reserved"),
])
def test_bad_names_are_rejected(run_aegis, aegis_home, tmp_path, name, why):
    proc = run_aegis("init", name, "--dir", str(tmp_path))
    assert_one_line_error(proc)
    assert why in proc.stderr
    assert [p for p in aegis_home.iterdir() if p.name != "wraps"] == []  # nothing half-made


def test_existing_config_needs_force_and_force_keeps_the_ledger(run_aegis, aegis_home, tmp_path):
    assert run_aegis("init", "demo", "--dir", str(tmp_path)).returncode == 0
    ledger = aegis_home / "demo" / "ledger.db"
    ledger.write_bytes(b"recorded history") if not ledger.exists() else None
    before = ledger.read_bytes()
    proc = run_aegis("init", "demo", "--dir", str(tmp_path))
    assert_one_line_error(proc)
    assert "--force" in proc.stderr
    proc = run_aegis("init", "demo", "--dir", str(tmp_path), "--policy", "permit-all", "--force")
    assert proc.returncode == 0, proc.stderr
    assert ledger.read_bytes()[: len(before)] == before
    assert [p.id for p in PolicyEngine.from_files(load_config("demo").policy_files()).policies] == ["permit-all"]


def test_missing_project_dir_is_one_line(run_aegis, aegis_home, tmp_path):
    proc = run_aegis("init", "demo", "--dir", str(tmp_path / "nope"))
    assert_one_line_error(proc)
    assert not (aegis_home / "demo").exists()


def _write_config(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "aegis.toml").write_text(text)
    return directory


GOOD = 'name = "c"\nproject_dir = "/tmp"\npolicy_paths = ["policies"]\nledger_path = "ledger.db"\n'


@pytest.mark.parametrize("text,message", [
    (GOOD + "bogus = 1\n", "unknown key 'bogus'"),
    (GOOD + "[observer]\nmode = 3\n", "key 'observer.mode' must be"),
    (GOOD + "[observer]\nmode = \"telepathy\"\n", "key 'observer.mode' must be"),
    (GOOD + "[isolation]\nmoed = \"none\"\n", "unknown key 'isolation.moed'"),
    (GOOD.replace('["policies"]', '"policies"'), "key 'policy_paths' must be"),
    (GOOD + "allowed_network = [1]\n", "key 'allowed_network'"),
    ("name = \"c\"\nproject_dir = [\n", "invalid TOML"),
    ('name = "c"\n', "missing required key"),
])
def test_bad_config_files_name_the_key_and_file(tmp_path, text, message):
    directory = _write_config(tmp_path / "c", text)
    with pytest.raises(AegisError) as info:
        parse_config(text, directory)
    assert message in str(info.value)
    assert str(directory / "aegis.toml") in str(info.value)


def test_bad_config_on_the_cli_is_one_line(run_aegis, aegis_home):
    _write_config(aegis_home / "broken", GOOD.replace('"c"', '"broken"') + "extra = true\n")
    proc = run_aegis("policy", "list", "broken")
    assert_one_line_error(proc)
    assert "unknown key 'extra'" in proc.stderr


def test_unknown_config_name_is_one_line(run_aegis):
    proc = run_aegis("policy", "list", "nothing-here")
    assert_one_line_error(proc)
    assert "no config named 'nothing-here'" in proc.stderr
