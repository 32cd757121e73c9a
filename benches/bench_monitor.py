"""The dashboard and the report on a ledger of 1,000,000 entries.

- one tick at the live tail (poll after the last seq + ingest + draw a 132x40 frame):
  what the dashboard pays per refresh once caught up; must stay far below the 0.25 s
  refresh interval however long the ledger is;
- one catch-up chunk (2,000 entries) from the middle of the ledger: the longest the
  screen waits for a key while loading history;
- the whole catch-up of 1,000,000 entries, and a full text report over them.

    AEGIS_NATIVE_LIB=... PYTHONPATH=. .venv/bin/pytest benches/bench_monitor.py --benchmark-only -s
"""

from __future__ import annotations

import time

import pytest
from blessed import Terminal

from aegis.config import load_config
from aegis.ledger import Event, open_ledger
from aegis.monitor.app import Dashboard
from aegis.monitor.state import MonitorState
from aegis.monitor.tail import LedgerTail
from aegis.provision import create_config
from aegis.report import build_report, render_report

ENTRIES = 1_000_000
ACTIONS = ("FileRead", "FileWrite", "NetConnect", "ProcessSpawn", "DirList")


@pytest.fixture(scope="module")
def big_config(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("bench-monitor-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("AEGIS_HOME", str(home))
    project = home / "project"
    project.mkdir()
    create_config(home / "big", "big", "workspace-write", project)
    config = load_config("big")
    base = time.time_ns() - 10**12
    with open_ledger(config) as ledger:
        sid = ledger.begin_session(
            command=["agent"], cwd=str(project), policy_hash="h", observer="seccomp", config="big"
        )
        for batch in range(ENTRIES // 10_000):
            ledger.append(
                [
                    Event(
                        action=ACTIONS[i % 5],
                        resource=f"/data/d{i % 100}/f{i}.txt",
                        decision="deny" if i % 13 == 0 else "allow",
                        session_id=sid,
                        pid=1000 + i % 50,
                        ppid=1,
                        executable="/usr/bin/python3",
                        ts_ns=base + (batch * 10_000 + i) * 10**6,
                    )
                    for i in range(10_000)
                ]
            )
        ledger.end_session(sid, exit_code=0, signal=None)
    yield config
    mp.undo()


def _caught_up(ledger) -> Dashboard:
    dash = Dashboard(Terminal(force_styling=True), ledger, "big", [])
    while True:
        dash.refresh()
        if not dash.tail.behind:
            return dash


def test_tick_at_live_tail(benchmark, big_config) -> None:
    with open_ledger(big_config) as ledger:
        dash = _caught_up(ledger)
        assert dash.state.entries >= ENTRIES

        def tick() -> None:
            dash.refresh()
            dash.frame(132, 40)

        benchmark(tick)


def test_catch_up_chunk(benchmark, big_config) -> None:
    with open_ledger(big_config) as ledger:
        tail, state = LedgerTail(ledger), MonitorState()
        benchmark(lambda: state.ingest(tail.poll(ENTRIES // 2)))


def test_full_catch_up_and_report(benchmark, big_config) -> None:
    with open_ledger(big_config) as ledger:
        dash = benchmark.pedantic(_caught_up, args=(ledger,), rounds=1, iterations=1)
    assert dash.state.entries >= ENTRIES
    started = time.perf_counter()
    text = render_report(build_report(big_config), "text")
    print(f"\nreport over {ENTRIES} entries: {time.perf_counter() - started:.1f} s, {len(text)} bytes")
    assert f"events {ENTRIES}" in text
