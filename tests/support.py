"""Helpers shared by test modules (conftest.py holds only fixtures: importing from a
conftest breaks as soon as a subfolder has a conftest of its own)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def aegis_command() -> list[str]:
    """The installed `aegis` when there is one beside this Python, else `python -m aegis`."""
    exe = Path(sys.executable).with_name("aegis")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "aegis"]


def assert_one_line_error(proc: subprocess.CompletedProcess[str]) -> None:
    """Bad input: non-zero exit, a single error line, no traceback."""
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) >= 1, proc
    assert "error" in lines[-1].lower(), proc.stderr


def aegis_import_root() -> str:
    """The directory holding the `aegis` package this test process imported (site-packages
    after `pip install`, the checkout with an in-place build): what child Pythons need on
    PYTHONPATH to import the same Aegis."""
    import aegis

    return str(Path(aegis.__file__).resolve().parents[1])


def alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (as this test's /proc shows it)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between open and read
        return False
