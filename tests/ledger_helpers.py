"""Shared helpers for the ledger tests: a signed ledger in a temporary directory."""

from __future__ import annotations

from pathlib import Path

from aegis.ledger import Event, Ledger
from aegis.ledger.signing import ensure_signing_key

ORIGIN = "aegis/test"


def open_test_ledger(directory: Path) -> Ledger:
    ensure_signing_key(directory / "keys", ORIGIN)
    return Ledger.open(directory / "ledger.db", principal="tester", key_dir=directory / "keys",
                       checkpoint_file=directory / "checkpoints.log", origin=ORIGIN)


def file_events(n: int, session_id: str = "", start: int = 0) -> list[Event]:
    return [Event(action="FileRead" if i % 3 else "FileWrite", resource=f"/work/project/file{i}.txt",
                  decision="deny" if i % 5 == 4 else "allow", session_id=session_id, pid=1000 + i, ppid=1,
                  executable="/usr/bin/cat", source="openat", policy_ids=[f"policy{i % 2}"],
                  details={"flags": i}, ts_ns=1_700_000_000_000_000_000 + i * 1_000_000_000)
            for i in range(start, start + n)]
