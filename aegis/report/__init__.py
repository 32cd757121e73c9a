"""The compliance report (`aegis report NAME`): data from the ledger, rendered as
text, JSON or one self-contained HTML file.

``build_report`` gathers everything (ledger entries of the period, sessions,
policies in force, verify result and checkpoints); ``render_report`` turns it
into one of the formats. The same ledger always renders to the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

from aegis.config import Config
from aegis.errors import AegisError
from aegis.ledger import Ledger, open_ledger
from aegis.policy.engine import PolicyEngine, PolicyError
from aegis.report.collect import collect_report
from aegis.report.controls import CONTROLS
from aegis.report.html import render_html
from aegis.report.text import render_text

FORMATS = ("text", "json", "html")


def policies_in_force(config: Config) -> list[dict[str, str]]:
    """The config's policies (id, effect, "file:line"). Policies that do not validate are
    listed as problems rather than stopping the report: the record is still worth reading."""
    try:
        engine = PolicyEngine.from_files(config.policy_files(), config.name)
    except PolicyError as exc:
        return [{"id": "INVALID", "effect": "-", "file": str(problem)} for problem in exc.problems]
    return [{"id": p.id, "effect": p.effect, "file": f"{p.file}:{p.line}"} for p in engine.policies]


def integrity_evidence(ledger: Ledger, first_seq: int, last_seq: int) -> dict[str, Any]:
    """Verify result plus the first and last signed checkpoints that cover the period's entries."""
    result = ledger.verify()
    # Checkpoints taken during the period; when there are none, the first one after it covers it.
    # A checkpoint whose signature fails is verify's finding, never evidence.
    signed = {(c.size, c.root_base64) for c in ledger.checkpoints() if c.signature_valid is not False}
    covering = sorted(c for c in signed if first_seq and c[0] >= first_seq)
    within = [c for c in covering if c[0] <= last_seq] or covering[:1]

    def describe(c: tuple[int, str] | None) -> str:
        return f"size {c[0]} root {c[1]}" if c else ""

    return {
        "ok": result.ok,
        "detail": result.detail or ("chain and checkpoints intact" if result.ok else ""),
        "first_bad_seq": result.first_bad_seq,
        "reason": result.reason,
        "entries_checked": result.entries_checked,
        "checkpoints_checked": result.checkpoints_checked,
        "first_checkpoint": describe(within[0] if within else None),
        "last_checkpoint": describe(within[-1] if within else None),
    }


def build_report(
    config: Config, *, since_ns: int | None = None, until_ns: int | None = None, session: str | None = None
) -> dict[str, Any]:
    """The report data for config ``config`` over the period (and optionally one session)."""
    if since_ns is not None and until_ns is not None and until_ns <= since_ns:
        raise AegisError("--until must be after --since")
    policies = policies_in_force(config)
    if not config.ledger_path.exists():
        raise AegisError(
            f"config {config.name!r} has no ledger yet at {config.ledger_path} (nothing recorded)"
        )
    with open_ledger(config) as ledger:
        if session and not any(s.id == session for s in ledger.sessions()):
            raise AegisError(
                f"config {config.name!r} has no session {session!r} (see `aegis audit sessions "
                f"{config.name}`)"
            )
        report = collect_report(
            ledger,
            config_name=config.name,
            policies=policies,
            since_ns=since_ns,
            until_ns=until_ns,
            session=session,
        )
        period = report["period"]
        report["integrity"] = integrity_evidence(ledger, period["first_seq"], period["last_seq"])
    report["controls"] = [
        {
            "framework": c.framework,
            "control": c.control,
            "title": c.title,
            "evidence": list(c.sections),
            "how": c.how,
        }
        for c in CONTROLS
    ]
    return report


def render_report(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if fmt == "html":
        return render_html(report)
    if fmt == "text":
        return render_text(report)
    raise AegisError(f"unknown report format {fmt!r} (expected one of: {', '.join(FORMATS)})")
