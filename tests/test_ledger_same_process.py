"""A second connection to a ledger must not strip the first one's locks.

POSIX record locks belong to the process, and closing any descriptor of a file
drops all of them. A stray open/close of the ledger file while a connection was
open once let another process, closing its own connection, believe it was the
last user: it checkpointed and deleted the WAL, and the first connection failed
with "disk I/O error"."""

from __future__ import annotations

import subprocess
import sys

from aegis.ledger import Event, Ledger

OTHER_PROCESS = """
import sys
from aegis.ledger import Event, Ledger
ledger = Ledger.open(__import__("pathlib").Path(sys.argv[1]))
ledger.append([Event(action="FileRead", resource="/other", decision="allow")])
ledger.close()
"""


def test_opening_again_in_process_keeps_locks_for_other_processes(tmp_path):
    path = tmp_path / "ledger.db"
    first = Ledger.open(path)
    first.append([Event(action="FileRead", resource="/a", decision="allow")])
    second = Ledger.open(path)  # same process: must not drop `first`'s locks
    done = subprocess.run([sys.executable, "-c", OTHER_PROCESS, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert path.with_name("ledger.db-wal").exists(), "another process deleted the WAL of an open ledger"
    first.append([Event(action="FileRead", resource="/c", decision="allow")])
    assert [e.resource for e in first.query()] == ["/a", "/other", "/c"]
    assert first.verify().first_bad_seq is None
    second.close()
    first.close()
