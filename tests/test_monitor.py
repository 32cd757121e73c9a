"""`aegis monitor` in a real pseudo-terminal (pexpect), the screen read back with pyte.

A second process appends to the ledger through the Ledger API while the
dashboard runs; the tests look for those entries on the emulated screen.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pyte
import pytest
from support import aegis_command, aegis_import_root

from aegis.config import Config, load_config
from aegis.ledger import Event, open_ledger
from aegis.monitor.filters import parse_filter
from aegis.monitor.render import counter_lines, feed_lines, sparkline
from aegis.monitor.state import FEED_KEEP, MonitorState
from aegis.provision import create_config

APPEND_SCRIPT = """
import sys, time
from aegis.config import load_config
from aegis.ledger import Event, open_ledger
config = load_config(sys.argv[1])
with open_ledger(config) as ledger:
    for i, (action, resource, decision) in enumerate([tuple(a.split("|")) for a in sys.argv[2:]]):
        ledger.append([Event(action=action, resource=resource, decision=decision, pid=4242 + i,
                             executable="/usr/bin/appender",
                             policy_ids=["forbid-x"] if decision == "deny" else [])])
"""


class AnsweringScreen(pyte.Screen):
    """A pyte screen that answers the terminal's queries (cursor position reports) to the
    program, as a real terminal does; blessed waits for those answers at start-up."""

    def __init__(self, cols: int, rows: int, child: pexpect.spawn) -> None:
        super().__init__(cols, rows)
        self.child = child

    def write_process_input(self, data: str) -> None:
        self.child.send(data)


class Screen:
    """A dashboard running in a pty of a given size, with the emulated screen it shows."""

    def __init__(self, name: str, cols: int = 100, rows: int = 30) -> None:
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
        cmd = aegis_command()
        self.child = pexpect.spawn(
            cmd[0],
            [*cmd[1:], "monitor", name, "--refresh", "0.1"],
            env=env,
            dimensions=(rows, cols),
            encoding="utf-8",
            codec_errors="replace",
        )
        self.screen = AnsweringScreen(cols, rows, self.child)
        self.stream = pyte.Stream(self.screen)

    def pump(self, seconds: float = 0.2) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.05))
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                return

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait_for(self, predicate, timeout: float = 40.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.1)
            if predicate(self.text()):
                return self.text()
        raise AssertionError(f"screen never matched; it shows:\n{self.text()}")

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def resize(self, cols: int, rows: int) -> None:
        self.screen.resize(rows, cols)
        self.child.setwinsize(rows, cols)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def demo(aegis_home: Path, tmp_path: Path) -> Config:
    project = tmp_path / "project"
    project.mkdir()
    create_config(aegis_home / "demo", "demo", "workspace-write", project)
    config = load_config("demo")
    with open_ledger(config) as ledger:
        sid = ledger.begin_session(
            command=["agent", "run"], cwd=str(project), policy_hash="h", observer="seccomp", config="demo"
        )
        ledger.append(
            [
                Event(
                    action="FileRead",
                    resource=f"/old/file{i}.txt",
                    decision="allow",
                    session_id=sid,
                    pid=77,
                    executable="/usr/bin/cat",
                )
                for i in range(5)
            ]
            + [
                Event(
                    action="Drop",
                    resource="seccomp",
                    decision="info",
                    session_id=sid,
                    reason="ring full",
                    details={"count": 42},
                )
            ]
        )
        ledger.end_session(sid, exit_code=3, signal=None)
    return config


def append_from_other_process(*specs: str) -> None:
    env = dict(os.environ, PYTHONPATH=aegis_import_root())
    subprocess.run([sys.executable, "-c", APPEND_SCRIPT, "demo", *specs], check=True, env=env, timeout=60)


@pytest.fixture
def screen(demo: Config):
    s = Screen("demo")
    yield s
    s.close()


def test_shows_entries_appended_after_start_and_filters(screen: Screen) -> None:
    screen.wait_for(lambda t: "/old/file4.txt" in t and "LIVE FEED" in t and "seccomp: 42 events lost" in t)
    append_from_other_process(
        "FileWrite|/live/secret.env|deny", "NetConnect|example.org:443|allow", "FileRead|/live/notes.md|allow"
    )
    text = screen.wait_for(lambda t: "/live/secret.env" in t and "example.org:443" in t)
    assert "forbid-x" in text and "appender" in text
    screen.send("/decision:deny")
    text = screen.wait_for(lambda t: "example.org:443" not in t)
    assert "/live/secret.env" in text and "/old/file1.txt" not in text
    screen.send("q")  # typed into the filter: must not quit
    screen.pump(0.5)
    assert screen.child.isalive()
    screen.send("\x7f\r")  # backspace the q, Enter keeps the filter
    screen.send("q")
    screen.child.expect(pexpect.EOF, timeout=30)
    assert "\x1b[?1049l" in screen.child.before and "\x1b[?25h" in screen.child.before  # screen, cursor back
    screen.child.close()
    assert screen.child.exitstatus == 0


def test_resize_small_terminal_sessions_and_views(screen: Screen) -> None:
    screen.wait_for(lambda t: "/old/file4.txt" in t)
    screen.resize(80, 24)
    # The help bar on the last of 24 rows means the frame was laid out for the new size.
    screen.wait_for(lambda t: "/old/file4.txt" in t and "q quit" in t.splitlines()[23])
    screen.resize(30, 8)
    screen.wait_for(lambda t: "too small" in t)
    screen.resize(120, 40)
    screen.wait_for(lambda t: "LIVE FEED" in t)
    screen.send("s")
    text = screen.wait_for(lambda t: "SESSIONS" in t and "agent run" in t)
    assert "finished" in text and "exit 3" in text
    screen.send("\r")
    text = screen.wait_for(lambda t: "command: agent run" in t)
    assert "/old/file0.txt" in text
    screen.send("p")
    screen.wait_for(lambda t: "forbid-secrets" in t)
    screen.send("?")
    screen.wait_for(lambda t: "denials only" in t)
    screen.send("d")
    screen.wait_for(lambda t: "DENIALS" in t)
    screen.send("q")
    screen.child.expect(pexpect.EOF, timeout=30)
    screen.child.close()
    assert screen.child.exitstatus == 0


def test_terminal_restored_after_sigterm(screen: Screen) -> None:
    screen.wait_for(lambda t: "LIVE FEED" in t)
    screen.child.kill(15)
    screen.child.expect(pexpect.EOF, timeout=30)
    tail = screen.child.before or ""
    assert "\x1b[?1049l" in tail and "\x1b[?25h" in tail  # normal screen back, cursor visible


def test_long_ledger_catches_up_in_chunks_and_shows_newest(demo: Config) -> None:
    with open_ledger(demo) as ledger:
        for batch in range(6):
            ledger.append(
                [
                    Event(action="DirList", resource=f"/bulk/{batch}/{i}", decision="allow", pid=9)
                    for i in range(5000)
                ]
            )
    s = Screen("demo")
    try:
        s.wait_for(lambda t: "/bulk/5/4999" in t)
        s.wait_for(lambda t: "DirList" in t and "30000" in t and "catching up" not in t)
    finally:
        s.close()


def test_needs_a_terminal(demo, run_aegis) -> None:
    from support import assert_one_line_error

    assert_one_line_error(run_aegis("monitor", "demo"))
    assert_one_line_error(run_aegis("monitor", "missing"))


class FakeEntry:
    """Entry-shaped values for the pure state/render functions."""

    def __init__(self, seq: int, action: str, decision: str, resource: str = "/x", pid: int = 1) -> None:
        self.seq, self.action, self.decision, self.resource, self.pid = seq, action, decision, resource, pid
        self.ppid, self.executable, self.session_id, self.policy_ids = 0, "/bin/x", "s", []
        self.details, self.reason = {}, ""
        self.ts_ns = 1_700_000_000_000_000_000 + seq * 1_000_000


def test_filter_words() -> None:
    e = FakeEntry(1, "FileWrite", "deny", "/home/u/.env", pid=123)
    assert parse_filter("action:FileWrite decision:deny pid:123 .env")(e)
    assert parse_filter("action:filewrite")(e)
    assert not parse_filter("decision:allow")(e)
    assert not parse_filter("pid:124")(e)
    with pytest.raises(Exception, match="pid"):
        parse_filter("pid:abc")


def test_state_bounded_and_counts_everything() -> None:
    state = MonitorState()
    state.ingest(
        FakeEntry(i, "FileRead" if i % 3 else "FileWrite", "deny" if i % 7 == 0 else "allow")
        for i in range(1, FEED_KEEP * 3)
    )
    assert len(state.feed) == FEED_KEEP and state.last_seq == FEED_KEEP * 3 - 1
    assert sum(state.counts.values()) == FEED_KEEP * 3 - 1
    assert state.denials and all(e.decision == "deny" for e in state.denials)
    lines = counter_lines(state.action_totals(), 60, 5, lambda _s, t: t)
    assert all(len(line) <= 60 for line in lines) and lines[1].startswith("FileRead")
    feed = feed_lines([FakeEntry(1, "FileRead", "allow", "/very/long/" + "ü" * 200)], 80, lambda _s, t: t)
    assert all(len(line) <= 80 for line in feed)
    assert sparkline([0, 1, 8]) == " ▂█"


def test_preloaded_feed_is_not_duplicated_by_catch_up() -> None:
    entries = [FakeEntry(i, "FileRead", "allow") for i in range(1, 101)]
    state = MonitorState()
    state.preload_feed(entries[-10:])
    state.ingest(entries[:50])
    assert [e.seq for e in state.feed] == list(range(91, 101)) and state.entries == 50
    state.ingest(entries[50:] + [FakeEntry(101, "FileRead", "deny")])
    assert [e.seq for e in state.feed] == list(range(91, 102))
    assert sum(state.counts.values()) == 101
