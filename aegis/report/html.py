"""The compliance report as one self-contained HTML file.

No scripts, no external stylesheets, fonts or images: the charts are inline SVG
(``aegis.report.svg``), so the file opens the same offline, in a mail client or
in an archive years later. Every value from the ledger is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from aegis.report.collect import session_table_rows
from aegis.report.svg import horizontal_bars, stacked_timeline

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;color:#222;
padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;
margin-top:2rem}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin:.5rem 0}
th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #eee;vertical-align:top;
overflow-wrap:anywhere}
th{background:#f5f5f5}.num{text-align:right}.deny{color:#c62828;font-weight:600}.allow{color:#2e7d32}
.ok{color:#2e7d32;font-weight:700}.bad{color:#c62828;font-weight:700}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;
min-width:8rem}.card b{display:block;font-size:1.4rem}.chart{max-width:100%;height:auto}
code{font-size:.85em}
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    if not rows:
        return "<p><em>None in this period.</em></p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            text = escape(str(v))
            cls = ' class="num"' if i in numeric else ' class="deny"' if v == "deny" else ""
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section(key: str, title: str, *parts: str) -> str:
    return f'<section id="{key}"><h2>{escape(title)}</h2>{"".join(parts)}</section>'


def render_html(report: dict[str, Any]) -> str:
    p, t, integ = report["period"], report["totals"], report["integrity"]
    name = escape(report["config"])
    cards = "".join(
        f'<div class="card"><b>{v}</b>{escape(k)}</div>'
        for k, v in (
            ("events", t["events"]),
            ("allowed", t["allow"]),
            ("denied", t["deny"]),
            ("forbid hits", t["denied_by_forbid"]),
            ("evaluation errors", len(report["evaluation_errors"])),
            ("events lost (drops)", report["drops"]["events_lost"]),
            ("sessions", len(report["sessions"])),
        )
    )
    verdict = '<span class="ok">verified</span>' if integ["ok"] else '<span class="bad">FAILED</span>'
    actions = [(a["action"], a) for a in report["actions"]]
    denied_paths = [(f"{r['action']} {r['resource']}", {"deny": r["count"]}) for r in report["top_denied"]]
    sections = [
        _section(
            "period",
            "Period",
            f"<p>Requested <code>{escape(p['since'] or 'beginning')}</code> to "
            f"<code>{escape(p['until'] or 'end of the ledger')}</code>"
            + (f", session <code>{escape(p['session'])}</code>" if p["session"] else "")
            + f". Entries from <code>{escape(p['first_entry'] or '-')}</code> to "
            f"<code>{escape(p['last_entry'] or '-')}</code> (sequence {p['first_seq']} to {p['last_seq']}). "
            f"Ledger integrity: {verdict}.</p>",
            f'<div class="cards">{cards}</div>',
        ),
        _section(
            "timeline",
            "Events over time by decision",
            stacked_timeline(
                "chart-timeline",
                "Events over time by decision",
                report["timeline"],
                ("allow", "deny", "info"),
            ),
        ),
        _section(
            "actions",
            "Allow/deny per action class",
            horizontal_bars("chart-actions", "Actions by class", actions, ("allow", "deny", "info")),
            _table(
                ["Action", "Class", "Allow", "Deny", "Info", "Total"],
                [
                    (a["action"], a["class"], a["allow"], a["deny"], a["info"], a["total"])
                    for a in report["actions"]
                ],
                numeric=(2, 3, 4, 5),
            ),
        ),
        _section(
            "top_denied",
            "Top denied resources",
            horizontal_bars("chart-denied", "Top denied paths", denied_paths, ("deny",)),
            _table(
                ["Count", "Action", "Resource"],
                [(r["count"], r["action"], r["resource"]) for r in report["top_denied"]],
                numeric=(0,),
            ),
        ),
        _section(
            "top_resources",
            "Top resources",
            _table(
                ["Count", "Action", "Resource"],
                [(r["count"], r["action"], r["resource"]) for r in report["top_resources"]],
                numeric=(0,),
            ),
        ),
        _section(
            "agents",
            "Agents",
            _table(
                ["Principal", "Events"],
                [(a["principal"], a["events"]) for a in report["agents"]],
                numeric=(1,),
            ),
        ),
        _section(
            "sessions",
            "Sessions",
            _table(
                ["Id", "State", "Exit", "Started", "Ended", "Events", "Denied", "Command"],
                session_table_rows(report),
                numeric=(5, 6),
            ),
        ),
        _section(
            "forbid_hits",
            f"Forbid policy hits ({len(report['forbid_hits'])})",
            _table(
                ["Seq", "Time", "Action", "Resource", "Pid", "Executable", "Policy ids"],
                [
                    (
                        h["seq"],
                        h["time"],
                        h["action"],
                        h["resource"],
                        h["pid"],
                        h["executable"],
                        ", ".join(h["policy_ids"]),
                    )
                    for h in report["forbid_hits"]
                ],
                numeric=(0, 4),
            ),
        ),
        _section(
            "evaluation_errors",
            "Evaluation errors (each counted as a deny)",
            _table(
                ["Seq", "Time", "Action", "Resource", "Errors"],
                [
                    (e["seq"], e["time"], e["action"], e["resource"], "; ".join(e["errors"]))
                    for e in report["evaluation_errors"]
                ],
                numeric=(0,),
            ),
        ),
        _section(
            "drops",
            f"Observer drops: {report['drops']['records']} records, "
            f"{report['drops']['events_lost']} events lost",
            _table(
                ["Seq", "Time", "Session", "Events lost", "Reason"],
                [
                    (d["seq"], d["time"], d["session"], d["events_lost"], d["reason"])
                    for d in report["drops"]["list"]
                ],
                numeric=(0, 3),
            ),
        ),
        _section(
            "processes",
            f"Processes: {report['processes']['distinct_pids']} distinct pids, "
            f"tree depth {report['processes']['tree_depth']}",
            f"<p>{report['processes']['spawns']} programs run, {report['processes']['distinct_programs']} "
            "distinct; the most run first:</p>",
            _table(
                ["Count", "Executed"],
                [(x["count"], x["executable"]) for x in report["processes"]["executed"]],
                numeric=(0,),
            ),
        ),
        _section(
            "network",
            "Network destinations",
            _table(
                ["Destination", "Allow", "Deny"],
                [(n["destination"], n["allow"], n["deny"]) for n in report["network"]],
                numeric=(1, 2),
            ),
        ),
        _section(
            "tool_calls",
            "Tool calls",
            _table(
                ["Tool", "Allow", "Deny"],
                [(x["tool"], x["allow"], x["deny"]) for x in report["tool_calls"]],
                numeric=(1, 2),
            ),
        ),
        _section(
            "policies_in_force",
            "Policies in force",
            _table(
                ["Id", "Effect", "File"],
                [(x["id"], x["effect"], x["file"]) for x in report["policies_in_force"]],
            ),
        ),
        _section(
            "policy_changes",
            "Policy changes in the period",
            _table(
                ["Seq", "Time", "Hash", "Files"],
                [(c["seq"], c["time"], c["hash"], ", ".join(c["files"])) for c in report["policy_changes"]],
                numeric=(0,),
            ),
        ),
        _section(
            "integrity",
            "Integrity evidence",
            f"<p>Verify: {verdict} ({escape(integ['detail'])}); {integ['entries_checked']} entries and "
            f"{integ['checkpoints_checked']} checkpoints checked.</p>",
            _table(
                ["", "Checkpoint"],
                [
                    ("first of the period", integ["first_checkpoint"] or "-"),
                    ("last of the period", integ["last_checkpoint"] or "-"),
                ],
            ),
        ),
        _section(
            "controls",
            "Control mapping",
            _table(
                ["Framework", "Control", "Title", "Evidence (sections)", "How"],
                [
                    (c["framework"], c["control"], c["title"], ", ".join(c["evidence"]), c["how"])
                    for c in report["controls"]
                ],
            ),
        ),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>Aegis compliance report: {name}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Aegis compliance report: {name}</h1>" + "\n".join(sections) + "</body></html>\n"
    )
