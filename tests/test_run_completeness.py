"""Completeness: every file a nested workload opens is in the ledger, attributed to
the process that opened it, and the set equals what `strace -f` sees."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aegis.config import load_config
from aegis.ledger import open_ledger

GROUPS = {"a": 300, "b": 300, "c": 400}


def workload(data: Path) -> str:
    return (f"cd {data} && for f in a*; do cat \"$f\"; done > /dev/null && "
            f"{sys.executable} -c \"import glob; [open(p).read() for p in sorted(glob.glob('b*'))]\" && "
            "ls | grep '^c' | xargs cat > /dev/null")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    for prefix, count in GROUPS.items():
        for i in range(count):
            (d / f"{prefix}{i:04d}").write_text(f"{prefix}{i}\n")
    return d


@pytest.mark.slow
def test_thousand_files_through_nested_processes(tmp_path: Path, data: Path, run_aegis) -> None:
    proc = run_aegis("wrap", "--name", "work", "--", "sh", "-c", workload(data), cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ledger = open_ledger(load_config("work"))
    events = list(ledger.query())
    expected = {str(data / f"{p}{i:04d}") for p, n in GROUPS.items() for i in range(n)}
    reads = [e for e in events if e.action == "FileRead" and e.resource.startswith(f"{data}/")]
    assert {e.resource for e in reads} == expected
    assert len(reads) == 1000  # each opened once, each recorded once
    assert not any(e.action == "Drop" for e in events)

    spawns = {e.pid: e for e in events if e.action == "ProcessSpawn"}
    readers = {e.resource.rsplit("/", 1)[1][0]: set() for e in reads}
    for e in reads:
        readers[e.resource.rsplit("/", 1)[1][0]].add(e.pid)
        assert e.pid in spawns and e.executable  # every reader was seen starting
    cat = shutil.which("cat")
    assert len(readers["a"]) == 300  # one cat process per file in the shell loop
    assert all(spawns[pid].resource == cat for pid in readers["a"])
    assert len(readers["b"]) == 1
    assert "python" in spawns[next(iter(readers["b"]))].resource
    xargs = {pid for pid, e in spawns.items() if e.resource.endswith("/xargs")}
    assert xargs and all(e.ppid in xargs for e in reads if e.resource.rsplit("/", 1)[1][0] == "c")

    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (apt-get install -y strace)")
    trace = tmp_path / "strace.out"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", str(trace), "sh", "-c",
                    workload(data)], check=True, cwd=tmp_path, timeout=300)
    opened = set()
    for line in trace.read_text().splitlines():
        m = re.search(r'open(?:at2?)?\((?:AT_FDCWD|\d+)?,? ?"([^"]+)".*\) = \d+', line)
        if m:
            name = m.group(1)
            full = name if name.startswith("/") else str(data / name)
            if full.startswith(f"{data}/"):
                opened.add(full)
    assert opened == {e.resource for e in reads}
