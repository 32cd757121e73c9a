"""Build the compliance report from a ledger in one streaming pass.

``collect_report`` reads the entries of the period once (ascending sequence
number) and keeps counters and the lists the report prints in full, never the
entries themselves: memory grows with the number of distinct resources and
forbid hits, not with the number of entries (about 120 MB for a million
entries on a million distinct paths). The result is plain data (``dict``,
``list``, ``str``, ``int``) in a fixed order: the same ledger always gives the
same report.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aegis.actions import Action
from aegis.errors import AegisError

TOP_N = 10
PROGRAMS_N = 50
TIMELINE_BUCKETS = 48
DECISIONS = ("allow", "deny", "info")

# Action -> the class it is grouped under in the report.
ACTION_CLASSES: dict[str, str] = {
    "FileRead": "file",
    "FileWrite": "file",
    "FileDelete": "file",
    "DirCreate": "file",
    "DirList": "file",
    "FileChange": "file",
    "ProcessSpawn": "process",
    "ProcessExit": "process",
    "NetConnect": "network",
    "ToolCall": "tool",
    "KernelDenial": "kernel",
    "SyscallDenied": "kernel",
}
LEDGER_KINDS = ("SessionStart", "SessionEnd", "PolicySnapshot", "Drop", "ObserverNote", "Checkpoint")
_ACTION_ORDER = {name: i for i, name in
                 enumerate([a.name for a in Action] + ["FileChange", "KernelDenial", "SyscallDenied"])}


def utc(ts_ns: int) -> dt.datetime:
    """The UTC time of ``ts_ns``, exact to the microsecond (no float rounding)."""
    seconds, ns = divmod(ts_ns, 1_000_000_000)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(microsecond=ns // 1000)


def iso(ts_ns: int | None) -> str:
    """UTC ISO-8601 with microseconds (``''`` for none)."""
    if not ts_ns:
        return ""
    return utc(ts_ns).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> int:
    """Parse an ISO-8601 date/time (UTC unless it says otherwise) or epoch seconds into ns."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d{1,9})?", text):
        return int(Decimal(text) * 1_000_000_000)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AegisError(
            f"invalid time {text!r}: use ISO-8601 (2026-01-31 or 2026-01-31T12:00:00Z) or epoch seconds"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


@dataclass
class _Accumulator:
    """Running state of the single pass over the entries."""

    first: Any = None
    last: Any = None
    totals: Counter = field(default_factory=Counter)
    by_action: dict[str, Counter] = field(default_factory=dict)
    principals: Counter = field(default_factory=Counter)
    resources: Counter = field(default_factory=Counter)
    denied: Counter = field(default_factory=Counter)
    network: dict[str, Counter] = field(default_factory=dict)
    tools: dict[str, Counter] = field(default_factory=dict)
    executables: Counter = field(default_factory=Counter)
    pids: set = field(default_factory=set)
    parent_of: dict[int, int] = field(default_factory=dict)
    session_events: dict[str, Counter] = field(default_factory=dict)
    forbid_hits: list = field(default_factory=list)
    default_denies: int = 0
    errors: list = field(default_factory=list)
    drops: list = field(default_factory=list)
    kernel_denials: int = 0
    policy_changes: list = field(default_factory=list)
    per_second: Counter = field(default_factory=Counter)  # (second, decision) -> events, for the timeline

    def add(self, e: Any) -> None:
        if self.first is None:
            self.first = e
        self.last = e
        action, decision = e.action, e.decision
        if action == "PolicySnapshot":
            self.policy_changes.append(
                {
                    "seq": e.seq,
                    "time": iso(e.ts_ns),
                    "hash": e.resource,
                    "files": sorted((e.details or {}).get("files", {})),
                }
            )
            return
        if action == "Drop":
            d = e.details or {}
            self.drops.append(
                {
                    "seq": e.seq,
                    "time": iso(e.ts_ns),
                    "session": e.session_id,
                    "events_lost": int(d.get("count", d.get("dropped", 0)) or 0),
                    "reason": e.reason,
                }
            )
            return
        if action in LEDGER_KINDS:
            return
        self.totals[decision] += 1
        self.by_action.setdefault(action, Counter())[decision] += 1
        if e.principal:
            self.principals[e.principal] += 1
        if e.session_id:
            self.session_events.setdefault(e.session_id, Counter())[decision] += 1
        if e.resource:
            self.resources[(action, e.resource)] += 1
        if e.pid:
            self.pids.add(e.pid)
            if e.ppid:
                self.parent_of[e.pid] = e.ppid
        self.per_second[(e.ts_ns // 1_000_000_000, decision)] += 1
        if action == "KernelDenial":
            self.kernel_denials += 1
        elif action == "NetConnect":
            self.network.setdefault(e.resource, Counter())[decision] += 1
        elif action == "ToolCall":
            self.tools.setdefault(e.resource, Counter())[decision] += 1
        elif action == "ProcessSpawn" and decision == "allow":
            self.executables[e.resource or e.executable] += 1  # the program run, not its parent
        if decision == "deny":
            self.denied[(action, e.resource)] += 1
            if e.policy_ids:
                self.forbid_hits.append(
                    {
                        "seq": e.seq,
                        "time": iso(e.ts_ns),
                        "session": e.session_id,
                        "action": action,
                        "resource": e.resource,
                        "pid": e.pid,
                        "executable": e.executable,
                        "policy_ids": list(e.policy_ids),
                    }
                )
            else:
                self.default_denies += 1
        if e.errors:
            self.errors.append(
                {
                    "seq": e.seq,
                    "time": iso(e.ts_ns),
                    "action": action,
                    "resource": e.resource,
                    "errors": list(e.errors),
                }
            )


def _counts(c: Counter) -> dict[str, int]:
    return {d: c.get(d, 0) for d in DECISIONS}


def _top(counter: Counter, n: int = TOP_N) -> list[dict[str, Any]]:
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [{"action": action, "resource": resource, "count": count} for (action, resource), count in ranked]


def _tree_depth(parent_of: dict[int, int]) -> int:
    """Longest parent chain among the observed processes (1 = no observed parent)."""
    depth: dict[int, int] = {}

    def walk(pid: int) -> int:
        chain = []
        while pid in parent_of and pid not in depth and pid not in chain:
            chain.append(pid)
            pid = parent_of[pid]
        base = depth.get(pid, 0)
        for p in reversed(chain):
            base += 1
            depth[p] = base
        return base

    return max((walk(p) for p in parent_of), default=0)


def _timeline(per_second: Counter, since_ns: int | None, until_ns: int | None) -> list[dict[str, Any]]:
    """Events per decision in ``TIMELINE_BUCKETS`` equal slices of the period (one-second resolution).

    The period is the one asked for, else the span of the observed events.
    """
    if not per_second:
        return []
    seconds = [second for second, _ in per_second]
    start = since_ns // 1_000_000_000 if since_ns is not None else min(seconds)
    end = -(-until_ns // 1_000_000_000) if until_ns is not None else max(seconds) + 1
    span = max(end - start, 1)
    buckets = [Counter() for _ in range(TIMELINE_BUCKETS)]
    for (second, decision), n in per_second.items():
        index = min(max((second - start) * TIMELINE_BUCKETS // span, 0), TIMELINE_BUCKETS - 1)
        buckets[index][decision] += n
    return [
        {
            "start": iso((start * TIMELINE_BUCKETS + span * i) * 1_000_000_000 // TIMELINE_BUCKETS),
            **_counts(b),
        }
        for i, b in enumerate(buckets)
    ]


def _session_rows(
    sessions: Iterable[Any],
    events: dict[str, Counter],
    wanted: set[str] | None,
    since_ns: int | None,
    until_ns: int | None,
) -> list[dict[str, Any]]:
    rows = []
    for s in sessions:
        started, ended = s.start_ns, s.end_ns
        if wanted is not None and s.id not in wanted:
            continue
        if until_ns is not None and started > until_ns:
            continue
        if since_ns is not None and ended and ended < since_ns:
            continue
        counts = events.get(s.id, Counter())
        rows.append(
            {
                "id": s.id,
                "command": list(s.command),
                "started": iso(started),
                "ended": iso(ended),
                "state": s.state,
                "exit_code": s.exit_code,
                "signal": s.signal,
                "policy_hash": s.policy_hash,
                "events": sum(counts.values()),
                "denied": counts.get("deny", 0),
            }
        )
    rows.sort(key=lambda r: (r["started"], r["id"]))
    return rows


def collect_report(
    ledger: Any,
    *,
    config_name: str,
    policies: list[dict[str, str]],
    since_ns: int | None = None,
    until_ns: int | None = None,
    session: str | None = None,
) -> dict[str, Any]:
    """Aggregate the ledger entries of the period into the report data.

    ``policies`` are the policies in force (id, effect, file). The integrity
    evidence and the control mapping are added by ``aegis.report.build_report``.
    """
    acc = _Accumulator()
    for entry in ledger.query(since_ns=since_ns, until_ns=until_ns, session=session):
        acc.add(entry)
    first_ts = acc.first.ts_ns if acc.first else 0
    last_ts = acc.last.ts_ns if acc.last else 0
    actions = sorted(acc.by_action, key=lambda a: (_ACTION_ORDER.get(a, len(_ACTION_ORDER)), a))
    wanted = {session} if session else None
    sessions = _session_rows(ledger.sessions(), acc.session_events, wanted, since_ns, until_ns)
    report: dict[str, Any] = {
        "config": config_name,
        "period": {
            "since": iso(since_ns),
            "until": iso(until_ns),
            "session": session or "",
            "first_entry": iso(first_ts),
            "last_entry": iso(last_ts),
            "first_seq": acc.first.seq if acc.first else 0,
            "last_seq": acc.last.seq if acc.last else 0,
        },
        "agents": [{"principal": p, "events": n} for p, n in sorted(acc.principals.items())],
        "sessions": sessions,
        "totals": {
            "events": sum(acc.totals.values()),
            **_counts(acc.totals),
            "denied_by_forbid": len(acc.forbid_hits),
            "denied_by_default": acc.default_denies,
            "kernel_denials": acc.kernel_denials,
        },
        "actions": [
            {
                "action": a,
                "class": ACTION_CLASSES.get(a, "other"),
                **_counts(acc.by_action[a]),
                "total": sum(acc.by_action[a].values()),
            }
            for a in actions
        ],
        "top_resources": _top(acc.resources),
        "top_denied": _top(acc.denied),
        "forbid_hits": acc.forbid_hits,
        "evaluation_errors": acc.errors,
        "drops": {
            "records": len(acc.drops),
            "events_lost": sum(d["events_lost"] for d in acc.drops),
            "list": acc.drops,
        },
        "processes": {
            "distinct_pids": len(acc.pids),
            "tree_depth": _tree_depth(acc.parent_of),
            "spawns": sum(acc.executables.values()),
            "distinct_programs": len(acc.executables),
            "executed": [  # the most run programs; the counts above cover all of them
                {"executable": x, "count": n}
                for x, n in sorted(acc.executables.items(), key=lambda kv: (-kv[1], kv[0]))[:PROGRAMS_N]
            ],
        },
        "network": [{"destination": d, **_counts(c)} for d, c in sorted(acc.network.items())],
        "tool_calls": [{"tool": t, **_counts(c)} for t, c in sorted(acc.tools.items())],
        "policies_in_force": policies,
        "policy_changes": acc.policy_changes,
        "timeline": _timeline(acc.per_second, since_ns, until_ns),
    }
    return report


def session_table_rows(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The sessions of a collected report as table rows (id, state, exit, started, ended,
    events, denied, command): one definition for every output format."""
    return [
        (
            s["id"],
            s["state"],
            s["exit_code"] if s["exit_code"] is not None else (f"signal {s['signal']}" if s["signal"] else "-"),
            s["started"],
            s["ended"] or "-",
            s["events"],
            s["denied"],
            " ".join(s["command"]),
        )
        for s in report["sessions"]
    ]
