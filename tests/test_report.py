"""`aegis report`: the compliance report over real ledgers written through the Ledger API.

Golden files live in tests/golden/report.{txt,json,html}. Values that differ
between runs by nature (session ids, session start/end times, checkpoint roots,
the temporary Aegis home) are replaced by placeholders before comparing; every
other byte must match. Regenerate with AEGIS_UPDATE_GOLDEN=1 after a deliberate
change and review the diff.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from aegis.config import Config, load_config
from aegis.ledger import Event, open_ledger
from aegis.provision import create_config
from aegis.report import build_report, render_report
from aegis.report.collect import parse_time

GOLDEN = Path(__file__).with_name("golden")
BASE_NS = 1_767_323_045_000_000_000  # 2026-01-02T03:04:05Z: every observed event is at a fixed time
PROJECT = "/work/project"
POLICY_V1 = {
    "default.cedar": '@id("allow-read")\npermit (principal, action == Aegis::Action::"FileRead", resource);\n'
}
POLICY_V2 = {
    **POLICY_V1,
    "secrets.cedar": '@id("forbid-dotenv")\nforbid (principal, action, resource) '
    'when { resource.path like "*/.env" };\n',
}


def ev(i: int, action: str, resource: str, decision: str, session: str, **kw) -> Event:
    return Event(
        action=action,
        resource=resource,
        decision=decision,
        session_id=session,
        ts_ns=BASE_NS + i * 250_000_000,
        principal="demo",
        **kw,
    )


def populate(config: Config) -> list[str]:
    """Two sessions of varied, fixed activity; returns the session ids in order."""
    with open_ledger(config) as ledger:
        ledger.record_policy_snapshot(POLICY_V1)
        s1 = ledger.begin_session(
            command=["agent", "--task", "fix"],
            cwd=PROJECT,
            policy_hash="h1",
            observer="seccomp",
            config=config.name,
        )
        events = [
            ev(
                0,
                "ProcessSpawn",
                "/usr/bin/python3",
                "allow",
                s1,
                pid=100,
                ppid=1,
                executable="/usr/bin/python3",
                details={"argv": ["python3", "agent.py"]},
            )
        ]
        events += [
            ev(
                1 + i,
                "FileRead",
                f"{PROJECT}/src/mod{i % 3}.py",
                "allow",
                s1,
                pid=100,
                ppid=1,
                executable="/usr/bin/python3",
                source="openat",
            )
            for i in range(9)
        ]
        events += [
            ev(
                10,
                "FileWrite",
                f"{PROJECT}/.env",
                "deny",
                s1,
                pid=100,
                ppid=1,
                executable="/usr/bin/python3",
                policy_ids=["forbid-dotenv"],
                reason="forbidden",
            ),
            ev(
                11,
                "FileWrite",
                f"{PROJECT}/.env",
                "deny",
                s1,
                pid=100,
                ppid=1,
                executable="/usr/bin/python3",
                policy_ids=["forbid-dotenv"],
            ),
            ev(12, "FileWrite", "/etc/passwd", "deny", s1, pid=101, ppid=100, executable="/bin/sh"),
            ev(13, "ProcessSpawn", "/usr/bin/git", "allow", s1, pid=102, ppid=101, executable="/usr/bin/git"),
            ev(
                14,
                "NetConnect",
                "api.example.com:443",
                "allow",
                s1,
                pid=100,
                ppid=1,
                executable="/usr/bin/python3",
            ),
            ev(
                15,
                "NetConnect",
                "evil.example.net:80",
                "deny",
                s1,
                pid=100,
                ppid=1,
                executable="/usr/bin/python3",
            ),
            ev(16, "ToolCall", "Bash", "allow", s1, source="hook:claude-code"),
            ev(
                17,
                "ToolCall",
                "WebFetch",
                "deny",
                s1,
                source="hook:claude-code",
                errors=["while evaluating policy `p3`: attribute `url` not found"],
            ),
            ev(18, "Drop", "", "info", s1, reason="ring buffer full", details={"count": 17}),
            ev(19, "KernelDenial", f"{PROJECT}/../outside", "deny", s1, pid=102, source="audit"),
            ev(20, "ProcessExit", "/usr/bin/git", "info", s1, pid=102, ppid=101, executable="/usr/bin/git"),
        ]
        ledger.append(events)
        ledger.end_session(s1, exit_code=0, signal=None, counts={"events": len(events)})
        ledger.record_policy_snapshot(POLICY_V2)
        s2 = ledger.begin_session(
            command=["agent", "--task", "deploy"],
            cwd=PROJECT,
            policy_hash="h2",
            observer="seccomp",
            config=config.name,
        )
        ledger.append(
            [
                ev(
                    40 + i,
                    "FileDelete",
                    f"{PROJECT}/build/o{i}.tmp",
                    "allow",
                    s2,
                    pid=200,
                    ppid=1,
                    executable="/usr/bin/rm",
                )
                for i in range(3)
            ]
            + [
                ev(
                    44,
                    "DirCreate",
                    "/root/.ssh",
                    "deny",
                    s2,
                    pid=200,
                    ppid=1,
                    executable="/usr/bin/mkdir",
                    policy_ids=["forbid-secrets"],
                )
            ]
        )
        ledger.end_session(s2, exit_code=None, signal=9, state="interrupted")
    return [s1, s2]


@pytest.fixture
def demo(aegis_home: Path, tmp_path: Path) -> tuple[Config, list[str]]:
    project = tmp_path / "project"
    project.mkdir()
    create_config(aegis_home / "demo", "demo", "workspace-write", project)
    config = load_config("demo")
    return config, populate(config)


def normalise(text: str, config: Config, sessions: list[str]) -> str:
    """Replace what differs between runs by nature with stable placeholders."""
    for i, sid in enumerate(sessions, start=1):
        text = text.replace(sid, f"<session-{i}>").replace(sid[:8], f"<s{i}>")
    text = text.replace(str(config.directory.parent), "<home>")
    # Session bookkeeping entries are stamped with the real clock; observed events are in 2026-01-02.
    text = re.sub(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z",
        lambda m: m.group(0) if m.group(0).startswith("2026-01-02") else "<now>",
        text,
    )
    return re.sub(r"root [A-Za-z0-9+/=]{44}", "root <root>", text)


@pytest.mark.parametrize("fmt,suffix", [("text", "txt"), ("json", "json"), ("html", "html")])
def test_report_matches_golden(demo, fmt: str, suffix: str) -> None:
    config, sessions = demo
    rendered = normalise(render_report(build_report(config), fmt), config, sessions)
    golden = GOLDEN / f"report.{suffix}"
    if os.environ.get("AEGIS_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered, encoding="utf-8")
    assert rendered == golden.read_text(encoding="utf-8")


def test_same_ledger_same_bytes(demo, run_aegis) -> None:
    config, _ = demo
    for fmt in ("text", "json", "html"):
        first = run_aegis("report", "demo", "--format", fmt, check=True).stdout
        second = run_aegis("report", "demo", "--format", fmt, check=True).stdout
        assert first == second and first


def test_report_figures(demo) -> None:
    config, (s1, s2) = demo
    report = build_report(config)
    actions = {a["action"]: a for a in report["actions"]}
    assert actions["FileRead"]["allow"] == 9 and actions["FileWrite"]["deny"] == 3
    assert report["totals"]["denied_by_forbid"] == 3 and report["totals"]["denied_by_default"] == 4
    assert [h["policy_ids"] for h in report["forbid_hits"]] == [["forbid-dotenv"]] * 2 + [["forbid-secrets"]]
    assert report["top_denied"][0] == {"action": "FileWrite", "resource": f"{PROJECT}/.env", "count": 2}
    assert report["drops"]["events_lost"] == 17
    assert report["evaluation_errors"][0]["resource"] == "WebFetch"
    assert {n["destination"]: n["deny"] for n in report["network"]} == {
        "api.example.com:443": 0,
        "evil.example.net:80": 1,
    }
    assert report["processes"]["executed"][0]["executable"] in ("/usr/bin/git", "/usr/bin/python3")
    assert report["processes"]["tree_depth"] == 3  # 102 -> 101 -> 100 -> 1
    assert [c["files"] for c in report["policy_changes"]] == [
        ["default.cedar"],
        ["default.cedar", "secrets.cedar"],
    ]
    assert [(s["id"], s["state"]) for s in report["sessions"]] == [(s1, "finished"), (s2, "interrupted")]
    assert report["integrity"]["ok"] and report["integrity"]["last_checkpoint"].startswith("size ")
    controls = {c["control"] for c in report["controls"]}
    assert {
        "CC6.1",
        "CC6.6",
        "CC6.7",
        "CC6.8",
        "CC7.2",
        "CC8.1",
        "AU-2",
        "AU-3",
        "AU-9(3)",
        "AU-10",
        "AU-12",
        "Art. 12",
    } <= controls


def test_period_and_session_filters(demo) -> None:
    config, (s1, s2) = demo
    only_s2 = build_report(config, session=s2)
    assert only_s2["totals"]["events"] == 4 and [s["id"] for s in only_s2["sessions"]] == [s2]
    window = build_report(config, since_ns=BASE_NS + 10 * 250_000_000, until_ns=BASE_NS + 12 * 250_000_000)
    assert window["totals"] == {
        "events": 2,
        "allow": 0,
        "deny": 2,
        "info": 0,
        "denied_by_forbid": 2,
        "denied_by_default": 0,
        "kernel_denials": 0,
    }
    assert parse_time("2026-01-02T03:04:05Z") == BASE_NS


def test_tampered_ledger_is_reported(demo, run_aegis) -> None:
    config, _ = demo
    import sqlite3

    with sqlite3.connect(config.ledger_path) as db:
        changed = db.execute(
            "UPDATE entries SET record = replace(record, '/etc/passwd', '/etc/shadow') "
            "WHERE record LIKE '%/etc/passwd%'"
        ).rowcount
    assert changed == 1
    report = build_report(config)
    assert not report["integrity"]["ok"] and report["integrity"]["reason"] == "hash mismatch"
    assert "verify: FAILED" in run_aegis("report", "demo", check=True).stdout


def test_hostile_values_are_escaped(demo) -> None:
    config, _ = demo
    hostile = '/tmp/<script>alert("x")</script>&\n|=.env'
    with open_ledger(config) as ledger:
        ledger.append(
            [
                Event(
                    action="FileWrite",
                    resource=hostile,
                    decision="deny",
                    policy_ids=['<b>"id"</b>'],
                    executable="</svg><svg onload=x>",
                )
            ]
        )
    report = build_report(config)
    html = render_report(report, "html")
    assert "<script>" not in html and '<b>"id"</b>' not in html and "<svg onload" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in html
    assert hostile in [r["resource"] for r in json.loads(render_report(report, "json"))["top_denied"]]
    assert "/tmp/<script>alert" in render_report(report, "text")


def test_empty_ledger_renders_in_every_format(aegis_home: Path, tmp_path: Path) -> None:
    create_config(aegis_home / "empty", "empty", "default-deny", tmp_path)
    config = load_config("empty")
    with open_ledger(config):
        pass
    report = build_report(config)
    assert report["totals"]["events"] == 0 and report["timeline"] == [] and report["integrity"]["ok"]
    assert "none in this period" in render_report(report, "html")
    assert "events 0:" in render_report(report, "text")


def test_invalid_policies_are_reported_not_fatal(demo) -> None:
    config, _ = demo
    (config.directory / "policies" / "broken.cedar").write_text("permit (principal, action, resource")
    policies = build_report(config)["policies_in_force"]
    assert policies[0]["id"] == "INVALID" and "broken.cedar" in policies[0]["file"]


def test_bad_input_is_one_line_error(demo, run_aegis) -> None:
    from support import assert_one_line_error

    assert_one_line_error(run_aegis("report", "nope"))
    assert_one_line_error(run_aegis("report", "demo", "--since", "yesterday-ish"))
    assert_one_line_error(run_aegis("report", "demo", "--session", "no-such-session"))
    assert_one_line_error(run_aegis("report", "demo", "--since", "2026-02-01", "--until", "2026-01-01"))


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("Debian package chromium is required: apt-get install -y chromium")
    return exe


def test_html_renders_in_headless_chromium(demo, chromium: str, tmp_path: Path, run_aegis) -> None:
    out = tmp_path / "report.html"
    run_aegis("report", "demo", "--format", "html", "--output", str(out), check=True)
    html = out.read_text(encoding="utf-8")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    assert "<script" not in html
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", out.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for chart in ("chart-timeline", "chart-actions", "chart-denied"):
        assert re.search(rf'<svg id="{chart}"[^>]*>.*?<rect class="bar-(allow|deny)"', dom, re.S), chart
    assert "forbid-dotenv" in dom and "AU-9(3)" in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", "--window-size=1200,2400", out.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
