"""Shared fixtures: every test gets its own Aegis home and runs the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import aegis_command

# Child Pythons that tests start (`python -c ...`, scripts) must import the installed
# aegis, not the source tree in the current directory, which has no compiled _native
# in a clean checkout: -P semantics for every child.
os.environ["PYTHONSAFEPATH"] = "1"


@pytest.fixture(autouse=True)
def aegis_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $AEGIS_HOME per test (kept out of the project directories tests use)."""
    home = tmp_path_factory.mktemp("aegis-home")
    monkeypatch.setenv("AEGIS_HOME", str(home))
    return home



@pytest.fixture
def run_aegis():
    """Run the aegis CLI as a real process; returns CompletedProcess (text)."""

    def run(*args: str, input: str | None = None, check: bool = False, env: dict[str, str] | None = None,
            cwd: str | Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        proc = subprocess.run([*aegis_command(), *args], input=input, capture_output=True, text=True,
                              env=full_env, cwd=cwd, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"aegis {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run



@pytest.fixture
def unprivileged() -> list[str]:
    """Prefix that runs a command as nobody (uid/gid 65534), for unprivileged-path tests."""
    if os.geteuid() != 0:
        pytest.skip("dropping privileges needs root")
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is required"
    prefix = [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    probe = subprocess.run([*prefix, sys.executable, "-c", "import aegis.native"], capture_output=True,
                           text=True, cwd="/")
    assert probe.returncode == 0, (
        "uid 65534 cannot run this Python with aegis importable (grant o+x on the directories above the "
        f"interpreter and the checkout, as .ci/run does): {probe.stderr.strip()[-300:]}")
    return prefix
