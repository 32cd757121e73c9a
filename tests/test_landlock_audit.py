"""Kernel denial harvesting against real Landlock-restricted processes and the real audit socket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import aegis_import_root

from aegis.ledger import Event, Ledger
from aegis.nets.landlock_audit import (
    AUDIT_LANDLOCK_ACCESS,
    AUDIT_LANDLOCK_DOMAIN,
    DenialHarvester,
    harvest_status,
    parse_record,
    read_audit_enabled,
    set_audit_enabled,
)
from aegis.sandbox.capabilities import landlock_abi

# A child that restricts itself the way the sandbox does (no_new_privs, then
# landlock_restrict_self with LOG_NEW_EXEC_ON), then execs a Python that tries:
# write access to a file outside the allowed directory, and ftruncate through a
# descriptor it was allowed to open for writing (Landlock checks truncation apart).
RESTRICTED_CHILD = textwrap.dedent("""
    import ctypes, os, struct, sys
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    WRITE_FILE, TRUNCATE = 1 << 1, 1 << 14
    LOG_NEW_EXEC_ON = 1 << 1
    allowed_dir, inside, outside = sys.argv[1:4]
    attr = ctypes.create_string_buffer(struct.pack("=QQQ", WRITE_FILE | TRUNCATE, 0, 0))
    ruleset = libc.syscall(444, attr, 24, 0)
    assert ruleset >= 0, os.strerror(ctypes.get_errno())
    dirfd = os.open(allowed_dir, os.O_PATH | os.O_DIRECTORY)
    rule = ctypes.create_string_buffer(struct.pack("=Qi", WRITE_FILE, dirfd))
    assert libc.syscall(445, ruleset, 1, rule, 0) == 0, os.strerror(ctypes.get_errno())
    assert libc.prctl(38, 1, 0, 0, 0) == 0
    assert libc.syscall(446, ruleset, LOG_NEW_EXEC_ON) == 0, os.strerror(ctypes.get_errno())
    agent = '''
    import errno, os, sys
    inside, outside = sys.argv[1:3]
    fd = os.open(inside, os.O_WRONLY)
    try:
        os.ftruncate(fd, 0)
        print("truncate allowed")
    except PermissionError:
        print("truncate denied")
    try:
        open(outside, "w")
        print("write allowed")
    except PermissionError:
        print("write denied")
    '''
    os.execv(sys.executable, [sys.executable, "-c", agent, inside, outside])
""")


def test_parse_access_record_with_hex_encoded_path() -> None:
    # A path containing a space is logged as upper-case hex without quotes.
    hexed = b"/tmp/a b".hex().upper()
    record = parse_record(AUDIT_LANDLOCK_ACCESS,
                          f'audit(1729738800.221:34): domain=1a6fdc679 blockers=fs.write_file,fs.truncate '
                          f'path={hexed} dev="vda2" ino=143821')
    assert record is not None
    assert record.serial == 34
    assert record.ts_ns == 1729738800_221_000_000
    assert record.fields == {"domain": "1a6fdc679", "blockers": "fs.write_file,fs.truncate",
                             "path": "/tmp/a b", "dev": "vda2", "ino": "143821"}


def test_parse_domain_record_and_rejects_other_text() -> None:
    record = parse_record(AUDIT_LANDLOCK_DOMAIN,
                          'audit(1729738800.268:30): domain=1a6fdc66f status=allocated mode=enforcing '
                          'pid=286 uid=0 exe="/root/sandboxer" comm="sandboxer"')
    assert record is not None
    assert record.fields["pid"] == "286" and record.fields["exe"] == "/root/sandboxer"
    assert parse_record(AUDIT_LANDLOCK_ACCESS, "not an audit record") is None


_privileged = os.geteuid() == 0 and landlock_abi() >= 7


def needs_root_landlock7(test):
    """Root (CAP_AUDIT_READ/CONTROL) and a kernel whose Landlock writes audit records."""
    return pytest.mark.root(pytest.mark.skipif(not _privileged, reason="needs root and Landlock ABI 7")(test))


def _run_restricted(tmp_path: Path, tag: str) -> tuple[subprocess.Popen[str], Path, Path]:
    allowed = tmp_path / f"allowed-{tag}"
    allowed.mkdir()
    inside = allowed / "data.txt"
    inside.write_text("content")
    outside = tmp_path / f"outside-{tag}.txt"
    outside.write_text("")
    script = tmp_path / "restricted_child.py"
    script.write_text(RESTRICTED_CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(allowed), str(inside), str(outside)],
                             stdout=subprocess.PIPE, text=True)
    return child, inside, outside


@needs_root_landlock7
def test_harvests_denials_the_observer_cannot_see(tmp_path: Path) -> None:
    assert harvest_status().available
    harvester = DenialHarvester.start("session-1")
    child, inside, outside = _run_restricted(tmp_path, "a")
    harvester.attach(child.pid)
    out, _ = child.communicate(timeout=30)
    assert out.split() == ["truncate", "denied", "write", "denied"]
    events = harvester.stop()

    denials = [e for e in events if e.action == "KernelDenial"]
    by_path = {e.resource: e for e in denials}
    assert set(by_path) == {str(inside), str(outside)}
    for event in denials:
        assert event.pid == child.pid
        assert event.decision == "deny" and event.source == "audit" and event.session_id == "session-1"
        assert event.ts_ns > 0
    assert by_path[str(inside)].details["blockers"] == ["fs.truncate"]
    assert by_path[str(outside)].details["blockers"] == ["fs.write_file"]
    assert by_path[str(outside)].details["ino"] == str(outside.stat().st_ino)
    note = events[-1]
    assert note.action == "ObserverNote" and note.details["harvested"] == 2
    assert note.details["kernel_denials_total"] == 2
    with pytest.raises(RuntimeError):
        harvester.stop()
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        ledger.append(events)
        stored = list(ledger.query(action="KernelDenial"))
        assert sorted((e.resource, tuple(e.details["blockers"]), e.pid) for e in stored) == sorted(
            [(str(inside), ("fs.truncate",), child.pid), (str(outside), ("fs.write_file",), child.pid)])
        assert ledger.verify().ok


@needs_root_landlock7
def test_turns_auditing_on_when_it_is_off(tmp_path: Path) -> None:
    # The kernel drops Landlock records while auditing is off (the default on a fresh boot).
    set_audit_enabled(False)
    harvester = DenialHarvester.start("session-3")
    assert read_audit_enabled()
    child, _, outside = _run_restricted(tmp_path, "c")
    harvester.attach(child.pid)
    child.communicate(timeout=30)
    events = harvester.stop()
    assert str(outside) in {e.resource for e in events if e.action == "KernelDenial"}
    assert events[-1].details["audit_enabled_by_aegis"] is True


@needs_root_landlock7
def test_supervisor_denials_not_duplicated_and_other_domains_ignored(tmp_path: Path) -> None:
    harvester = DenialHarvester.start("session-2")
    ours, inside, outside = _run_restricted(tmp_path, "ours")
    stranger, _, stranger_outside = _run_restricted(tmp_path, "stranger")
    harvester.attach(ours.pid)
    ours.communicate(timeout=30)
    stranger.communicate(timeout=30)
    supervisor_saw = Event(action="FileWrite", resource=str(outside), decision="deny", pid=ours.pid,
                           ts_ns=time.time_ns())
    events = harvester.stop([supervisor_saw])

    denials = [e for e in events if e.action == "KernelDenial"]
    assert [(e.resource, e.pid) for e in denials] == [(str(inside), ours.pid)]
    assert events[-1].details["duplicates"] == 1
    assert str(stranger_outside) not in {e.resource for e in events}


def test_unprivileged_harvest_records_why_it_is_unavailable(unprivileged: list[str], tmp_path: Path) -> None:
    script = ("import json; from aegis.nets.landlock_audit import DenialHarvester\n"
              "h = DenialHarvester.start('s')\n"
              "print(json.dumps([[e.action, e.reason, e.details] for e in h.stop()]))")
    env = {**os.environ, "PYTHONPATH": aegis_import_root()}
    proc = subprocess.run([*unprivileged, sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60, check=True)
    [[action, reason, details]] = json.loads(proc.stdout)
    assert action == "ObserverNote"
    assert details["available"] is False
    assert "unavailable" in reason
    assert "CAP_AUDIT_READ" in reason or "ABI" in reason
