"""The compliance report as plain text (what `aegis report NAME` prints)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aegis.cli.output import clip, display_width
from aegis.report.collect import session_table_rows


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], width: int = 60) -> list[str]:
    cells = [[clip(str(v), width) for v in row] for row in rows]
    widths = [max([display_width(h)] + [display_width(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return (
            "  " + "  ".join(v + " " * (widths[i] - display_width(v)) for i, v in enumerate(values)).rstrip()
        )

    if not rows:
        return ["  (none)"]
    return [line(headers)] + [line(r) for r in cells]


def render_text(report: dict[str, Any]) -> str:
    p, t = report["period"], report["totals"]
    out = [
        f"Aegis compliance report: {report['config']}",
        "=" * 40,
        "",
        "Period",
        f"  requested: {p['since'] or 'beginning'} .. {p['until'] or 'end of the ledger'}"
        + (f"  (session {p['session']})" if p["session"] else ""),
        f"  entries:   {p['first_entry'] or '-'} .. {p['last_entry'] or '-'}"
        f"  (seq {p['first_seq']}..{p['last_seq']})",
        "",
        "Agents",
    ]
    out += _table(["PRINCIPAL", "EVENTS"], [(a["principal"], a["events"]) for a in report["agents"]])
    out += ["", "Sessions"]
    out += _table(
        ["ID", "STATE", "EXIT", "STARTED", "ENDED", "EVENTS", "DENIED", "COMMAND"],
        session_table_rows(report),
    )
    out += [
        "",
        "Totals",
        f"  events {t['events']}: allow {t['allow']}, deny {t['deny']} "
        f"(forbid policies {t['denied_by_forbid']}, no permit {t['denied_by_default']}), info {t['info']}; "
        f"kernel denials {t['kernel_denials']}",
        "",
        "Allow/deny per action class",
    ]
    out += _table(
        ["ACTION", "CLASS", "ALLOW", "DENY", "INFO", "TOTAL"],
        [(a["action"], a["class"], a["allow"], a["deny"], a["info"], a["total"]) for a in report["actions"]],
    )
    for key, title in (("top_resources", "Top resources"), ("top_denied", "Top denied resources")):
        out += ["", title]
        out += _table(
            ["COUNT", "ACTION", "RESOURCE"],
            [(r["count"], r["action"], r["resource"]) for r in report[key]],
            width=90,
        )
    out += ["", f"Forbid policy hits ({len(report['forbid_hits'])})"]
    out += _table(
        ["SEQ", "TIME", "ACTION", "RESOURCE", "PID", "POLICY IDS"],
        [
            (h["seq"], h["time"], h["action"], h["resource"], h["pid"], ", ".join(h["policy_ids"]))
            for h in report["forbid_hits"]
        ],
    )
    out += ["", f"Evaluation errors ({len(report['evaluation_errors'])}, each counted as a deny)"]
    out += _table(
        ["SEQ", "TIME", "ACTION", "RESOURCE", "ERRORS"],
        [
            (e["seq"], e["time"], e["action"], e["resource"], "; ".join(e["errors"]))
            for e in report["evaluation_errors"]
        ],
    )
    drops = report["drops"]
    out += ["", f"Observer drops: {drops['records']} records, {drops['events_lost']} events lost"]
    if drops["list"]:
        out += _table(
            ["SEQ", "TIME", "SESSION", "LOST", "REASON"],
            [(d["seq"], d["time"], d["session"], d["events_lost"], d["reason"]) for d in drops["list"]],
        )
    procs = report["processes"]
    out += [
        "",
        f"Processes: {procs['distinct_pids']} distinct pids, tree depth {procs['tree_depth']}, "
        f"{procs['spawns']} programs run ({procs['distinct_programs']} distinct; most run first)",
    ]
    out += _table(["COUNT", "EXECUTED"], [(x["count"], x["executable"]) for x in procs["executed"]], width=90)
    out += ["", "Network destinations"]
    out += _table(
        ["DESTINATION", "ALLOW", "DENY"],
        [(n["destination"], n["allow"], n["deny"]) for n in report["network"]],
    )
    out += ["", "Tool calls"]
    out += _table(
        ["TOOL", "ALLOW", "DENY"], [(x["tool"], x["allow"], x["deny"]) for x in report["tool_calls"]]
    )
    out += ["", "Policies in force"]
    out += _table(
        ["ID", "EFFECT", "FILE"], [(x["id"], x["effect"], x["file"]) for x in report["policies_in_force"]]
    )
    out += ["", "Policy changes in the period"]
    out += _table(
        ["SEQ", "TIME", "HASH", "FILES"],
        [(c["seq"], c["time"], c["hash"], ", ".join(c["files"])) for c in report["policy_changes"]],
        width=70,
    )
    i = report["integrity"]
    out += [
        "",
        "Integrity evidence",
        f"  verify: {'OK' if i['ok'] else 'FAILED'} ({i['detail']})",
        f"  entries checked: {i['entries_checked']}, checkpoints checked: {i['checkpoints_checked']}",
        f"  first checkpoint of the period: {i['first_checkpoint'] or '-'}",
        f"  last checkpoint of the period:  {i['last_checkpoint'] or '-'}",
        "",
        "Control mapping",
    ]
    out += _table(
        ["FRAMEWORK", "CONTROL", "EVIDENCE", "HOW"],
        [(c["framework"], c["control"], ", ".join(c["evidence"]), c["how"]) for c in report["controls"]],
        width=200,
    )
    return "\n".join(out) + "\n"
