"""The workloads, generated in a scratch directory: what an agent realistically
does (Python start-up, a pytest run, git) and the open-heavy worst case (grep -r)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

STDLIB_MODULES = ("json", "csv", "decimal", "email.parser", "http.client", "sqlite3", "xml.etree.ElementTree",
                  "argparse", "logging", "asyncio")
NEEDLE = "aegis-needle"


@dataclass(frozen=True)
class Scale:
    """How big the generated trees are."""

    grep_files: int
    git_files: int
    git_commits: int
    pytest_modules: int

    @classmethod
    def full(cls) -> Scale:
        return cls(grep_files=13_000, git_files=5_000, git_commits=50, pytest_modules=20)

    @classmethod
    def quick(cls) -> Scale:
        return cls(grep_files=1_000, git_files=300, git_commits=5, pytest_modules=3)


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str                # "realistic" or "worst case"
    argv: tuple[str, ...]
    cwd: Path
    tree: Path               # the files it works on (completeness compares opens below this)

    @property
    def slug(self) -> str:
        """A name usable in file and wrap names ("grep-r-13000-files")."""
        return "-".join(re.findall(r"[a-z0-9]+", self.name.lower()))[:60]


def _write_tree(root: Path, count: int, per_dir: int, body: str) -> None:
    for i in range(count):
        directory = root / f"d{i // per_dir:03d}"
        if i % per_dir == 0:
            directory.mkdir(parents=True, exist_ok=True)
        text = body.format(i=i) + (f"{NEEDLE}\n" if i % 97 == 0 else "")
        (directory / f"f{i:05d}.txt").write_text(text)


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}
    subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=repo, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_grep_tree(root: Path, files: int) -> Path:
    tree = root / "grep-tree"
    _write_tree(tree, files, 100, "line one of file {i}\nsome text that is not interesting\n" * 8)
    return tree


def make_git_repo(root: Path, files: int, commits: int) -> Path:
    repo = root / "git-repo"
    _write_tree(repo, files, 50, "tracked file {i}\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "initial")
    for c in range(commits - 1):
        (repo / "CHANGES").write_text(f"change {c}\n")
        _git(repo, "add", "CHANGES")
        _git(repo, "commit", "-q", "-m", f"change {c}")
    (repo / "d000" / "f00000.txt").write_text("modified, so status has something to say\n")
    return repo


def make_pytest_project(root: Path, modules: int) -> Path:
    project = root / "pytest-project"
    (project / "pkg").mkdir(parents=True)
    (project / "tests").mkdir()
    (project / "pkg" / "__init__.py").write_text("")
    (project / "pytest.ini").write_text("[pytest]\naddopts = -q -p no:cacheprovider\n")
    for m in range(modules):
        (project / "pkg" / f"mod{m}.py").write_text(
            "import json\n\n\ndef double(x):\n    return 2 * x\n\n\n"
            f"def encode(x):\n    return json.dumps({{'m': {m}, 'x': x}})\n")
        tests = "\n".join(f"def test_{t}():\n    assert mod{m}.double({t}) == {2 * t}\n"
                          f"    assert mod{m}.encode({t})\n" for t in range(10))
        (project / "tests" / f"test_mod{m}.py").write_text(f"from pkg import mod{m}\n\n\n{tests}")
    return project


def empty_dir(root: Path, name: str) -> Path:
    """A directory of its own for a workload that works on no tree (an `aegis wrap`
    project directory, which then holds nothing for Aegis to watch)."""
    path = root / name
    path.mkdir(exist_ok=True)
    return path


def generate(root: Path, scale: Scale) -> list[Workload]:
    """Create every workload's files below ``root``."""
    grep_tree = make_grep_tree(root, scale.grep_files)
    repo = make_git_repo(root, scale.git_files, scale.git_commits)
    project = make_pytest_project(root, scale.pytest_modules)
    imports = "import " + ", ".join(STDLIB_MODULES)
    python, real = sys.executable, "realistic"
    empty = empty_dir(root, "python-imports")
    return [
        Workload("python imports (10 stdlib modules)", real, (python, "-c", imports), empty, empty),
        Workload("pytest (small project)", real, (python, "-m", "pytest"), project, project),
        Workload(f"git status ({scale.git_files} files)", real, ("git", "status", "--porcelain"), repo, repo),
        Workload(f"git log ({scale.git_commits} commits)", real, ("git", "log", "--stat"), repo, repo),
        Workload(f"grep -r ({scale.grep_files} files)", "worst case", ("grep", "-r", NEEDLE, "."), grep_tree,
                 grep_tree),
    ]
