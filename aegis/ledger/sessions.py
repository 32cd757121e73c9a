"""Sessions as the ledger records them: a SessionStart entry and, once it is over,
a SessionEnd entry. Folding the two gives a Session; a start whose writer process
is gone without an end is a session a crash interrupted."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from aegis.ledger.model import SESSION_END, SESSION_START, Entry, Session


def process_token(pid: int) -> str:
    """Identifies a live process beyond its pid (pids are reused): its start time in
    clock ticks since boot on Linux; empty where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def process_alive(pid: int, token: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return not token or process_token(pid) == token


def fold_sessions(entries: Iterable[Entry]) -> list[Session]:
    """Sessions in start order from their SessionStart/SessionEnd entries."""
    sessions: dict[str, Session] = {}
    for entry in entries:
        d = entry.details
        if entry.action == SESSION_START:
            sessions[entry.session_id] = Session(
                id=entry.session_id, config=d.get("config", ""), command=list(d.get("command", [])),
                cwd=d.get("cwd", ""), start_ns=entry.ts_ns, policy_hash=d.get("policy_hash", ""),
                observer=d.get("observer", ""), details=dict(d.get("details", {})), start_seq=entry.seq)
        elif entry.action == SESSION_END and entry.session_id in sessions:
            session = sessions[entry.session_id]
            session.state = d.get("state", "finished")
            session.end_ns, session.end_seq = entry.ts_ns, entry.seq
            session.exit_code, session.signal = d.get("exit_code"), d.get("signal")
            session.counts = dict(d.get("counts", {}))
    return list(sessions.values())


def owner_of(entry: Entry) -> tuple[int, str]:
    """The process that began a session (pid, start token), from its SessionStart."""
    return entry.pid, entry.details.get("owner_token", "")
