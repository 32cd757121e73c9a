"""Fixtures of the escape suite: a realistic victim layout, the attack programs, the ledger.

The layout mirrors a developer's machine: a home directory (outside /tmp, so that
the `workspace-write` template's temp-directory rule does not cover it) with
``~/.ssh/id_rsa`` holding a unique secret, the Aegis home at ``~/.aegis`` (the
default place), and a project directory the policy lets the agent write. Each
attack runs under the real ``aegis run`` (or ``aegis wrap``) and the tests then
look at the real filesystem and the ledger; every attack is also run once
without Aegis (the control) to prove that it does work when nothing stops it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from escape_support import ATTACK_PROGRAMS, ATTACKS_DIR, Scenario, make_scenario


@pytest.fixture(scope="session")
def attacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The attack programs, compiled with gcc (required: CI has it) into a temp directory."""
    gcc = shutil.which("gcc")
    assert gcc, "the escape suite compiles its attack programs with gcc; install it (apt-get install gcc)"
    out = tmp_path_factory.mktemp("escape-bin")
    built = {}
    for name in ATTACK_PROGRAMS:
        binary = out / name
        subprocess.run([gcc, "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", str(binary),
                        str(ATTACKS_DIR / f"{name}.c")], check=True, capture_output=True, text=True)
        built[name] = binary
    return built


@pytest.fixture
def scenario(monkeypatch: pytest.MonkeyPatch, run_aegis: Any) -> Iterator[Scenario]:
    """`aegis run` under a config made by `aegis init --policy workspace-write`."""
    made = make_scenario(monkeypatch, run_aegis, "run", "workspace-write")
    yield made
    shutil.rmtree(made.base, ignore_errors=True)


@pytest.fixture(params=["run", "wrap"])
def any_mode_scenario(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                      run_aegis: Any) -> Iterator[Scenario]:
    """Both `aegis run` (workspace-write) and `aegis wrap` (permit-all: observe, block nothing)."""
    template = "workspace-write" if request.param == "run" else "permit-all"
    made = make_scenario(monkeypatch, run_aegis, request.param, template)
    yield made
    shutil.rmtree(made.base, ignore_errors=True)
