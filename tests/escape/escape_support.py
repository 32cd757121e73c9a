"""The escape suite's shared pieces: the victim layout, running attacks under Aegis and
without it (the control), and reading the outcome from the filesystem and the ledger."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ATTACKS_DIR = Path(__file__).with_name("attacks")
ATTACK_PROGRAMS = ("toctou", "paths", "bypass", "selfprotect", "failclosed", "fds", "flood")


def aegis_argv() -> list[str]:
    """The aegis CLI as the `run_aegis` fixture starts it (for Popen-style use)."""
    exe = Path(sys.executable).with_name("aegis")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "aegis"]


def _victim_base() -> Path:
    """Where the victim's home lives: outside /tmp (root: /var/lib), like a real home."""
    if os.geteuid() == 0:
        root = Path("/var/lib/aegis-escape-tests")
    else:
        root = Path.home() / ".cache" / "aegis-escape-tests"
    root.mkdir(parents=True, exist_ok=True)
    base = root / uuid.uuid4().hex[:12]
    base.mkdir()
    os.chmod(base, 0o755)
    return base


@dataclass
class Scenario:
    """A victim machine layout plus a config to run attacks under."""

    name: str
    mode: str  # "run" (aegis init config) or "wrap" (aegis wrap, permit-all unless a template is given)
    base: Path
    home: Path
    project: Path
    aegis_home: Path
    secret: str
    run_aegis: Any
    template: str = "workspace-write"
    aegis_cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def secret_file(self) -> Path:
        return self.home / ".ssh" / "id_rsa"

    @property
    def loot(self) -> Path:
        return self.project / "loot"

    @property
    def config_dir(self) -> Path:
        return self.aegis_home / ("wraps" if self.mode == "wrap" else "") / self.name

    def aegis_args(self, command: list[str]) -> list[str]:
        if self.mode == "wrap":
            # --dir/--policy only on the first run: given again they rewrite the wrap's config.
            first = [] if (self.config_dir / "aegis.toml").exists() else ["--dir", str(self.project)]
            if first and self.template != "permit-all":
                first += ["--policy", self.template]
            return ["wrap", "--name", self.name, *first, "--", *command]
        return ["run", "--config", self.name, "--", *command]

    def run(self, command: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``command`` under Aegis (cwd: the Aegis cwd, default the project)."""
        return self.run_aegis(*self.aegis_args([str(c) for c in command]), env=self.env, input="",
                              cwd=self.aegis_cwd or self.project, timeout=timeout)

    def run_plain(self, command: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The control: the same command with nothing in the way."""
        return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout,
                              input="", cwd=self.project, env={**os.environ, **self.env})

    def popen(self, command: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        return subprocess.Popen([*aegis_argv(), *self.aegis_args([str(c) for c in command])], text=True,
                                env={**os.environ, **self.env}, cwd=self.aegis_cwd or self.project, **kwargs)

    def entries(self, **filters: Any) -> list[Any]:
        """Ledger entries of this config (library query, ascending seq)."""
        from aegis.config import load_config
        from aegis.ledger import open_ledger

        ledger = open_ledger(load_config(self.name))
        try:
            return list(ledger.query(**filters))
        finally:
            ledger.close()

    def sessions(self) -> list[Any]:
        from aegis.config import load_config
        from aegis.ledger import open_ledger

        ledger = open_ledger(load_config(self.name))
        try:
            return ledger.sessions()
        finally:
            ledger.close()

    def verify(self) -> subprocess.CompletedProcess[str]:
        return self.run_aegis("audit", "verify", self.name, env=self.env)

    def dropped(self) -> int:
        """Events the observer had to drop, as counted in the ledger's Drop records."""
        return sum(int(e.details.get("count", 0)) for e in self.entries(action="Drop"))

    def denials_of(self, path: Path | str, action: str | None = None) -> list[Any]:
        return [e for e in self.entries(decision="deny", action=action) if e.resource == str(path)]

    def warm_up(self, canary: str) -> None:
        """One harmless session first, so the config, ledger, keys and checkpoints all exist
        (a wrap config is only made by its first run); the canary lands in the ledger."""
        proc = self.run(["/bin/echo", canary])
        assert proc.returncode == 0, f"warm-up run failed: {proc.stdout}\n{proc.stderr}"

    def state_files(self) -> dict[Path, bytes]:
        """Every file under the Aegis home with its content."""
        return {p: p.read_bytes() for p in sorted(self.aegis_home.rglob("*")) if p.is_file()}

    def loot_text(self) -> str:
        return self.loot.read_text(errors="replace") if self.loot.exists() else ""


def assert_secret_safe(scenario: Scenario, proc: subprocess.CompletedProcess[str]) -> None:
    """The secret is neither in what the agent printed nor in anything it saved."""
    assert scenario.secret not in proc.stdout, f"the agent printed the secret:\n{proc.stdout}"
    assert scenario.secret not in scenario.loot_text(), "the agent saved the secret into its loot file"
    assert "OBTAINED" not in proc.stdout, proc.stdout
    assert scenario.secret_file.read_text() == scenario.secret + "\n", "the secret file was changed"


def make_scenario(monkeypatch: pytest.MonkeyPatch, run_aegis: Any, mode: str, template: str) -> Scenario:
    base = _victim_base()
    home = base / "home"
    project = home / "project"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    project.mkdir()
    secret = f"ESCAPE-SECRET-{uuid.uuid4().hex}"
    secret_file = home / ".ssh" / "id_rsa"
    secret_file.write_text(secret + "\n")
    os.chmod(secret_file, 0o600)
    # A decoy next to the secret whose path differs by one byte (".ssx"): allowed to read.
    (home / ".ssx").mkdir()
    (home / ".ssx" / "id_rsa").write_text("decoy, not a secret\n")
    (project / "README.md").write_text("an allowed file\n")
    aegis_home = home / ".aegis"
    env = {"HOME": str(home), "AEGIS_HOME": str(aegis_home)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    name = f"esc{uuid.uuid4().hex[:8]}"
    scenario = Scenario(name=name, mode=mode, base=base, home=home, project=project, aegis_home=aegis_home,
                        secret=secret, run_aegis=run_aegis, template=template, env=env)
    if mode == "run":
        run_aegis("init", name, "--policy", template, "--dir", str(project), env=env, check=True)
    return scenario


def results(stdout: str) -> list[tuple[str, str, str]]:
    """The attack's "RESULT technique outcome detail" lines."""
    out = []
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            parts = line.split(" ", 3)
            out.append((parts[1], parts[2], parts[3] if len(parts) > 3 else ""))
    return out



def same_length_sibling(directory: Path, target: Path, stem: str) -> Path:
    """A path in ``directory`` exactly as long as ``target`` (for buffer-flipping races)."""
    pad = len(str(target)) - len(str(directory)) - 1
    assert pad >= 1, f"{directory} is not shorter than {target}"
    return directory / (stem * pad)[:pad]
