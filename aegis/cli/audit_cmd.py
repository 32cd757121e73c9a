"""``aegis audit``: query, verify and export a config's ledger."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable

import click

from aegis.cli.output import clip, display_width, echo_json, echo_table
from aegis.config import load_config
from aegis.export import FORMATS, export_entries, follow_entries
from aegis.ledger import Entry, Ledger, open_ledger
from aegis.ledger.history import diff_versions
from aegis.ledger.timespec import format_time, parse_time
from aegis.nets.snapshot import changes_for_session, changes_table

# Streamed table: fixed widths, so a million rows print without being held in memory.
_COLUMNS = (("SEQ", 8), ("TIME (UTC)", 20), ("SESSION", 8), ("ACTION", 14), ("DECISION", 8), ("RESOURCE", 56),
            ("POLICY", 24))


def _ledger(name: str) -> Ledger:
    return open_ledger(load_config(name))


def _pad(text: str, width: int) -> str:
    text = clip(text, width)
    return text + " " * (width - display_width(text))


def _echo_entry_table(entries: Iterable[Entry]) -> int:
    click.echo("  ".join(_pad(title, width) for title, width in _COLUMNS).rstrip())
    count = 0
    for e in entries:
        cells = (str(e.seq), format_time(e.ts_ns), e.session_id[:8], e.action, e.decision, e.resource,
                 ",".join(e.policy_ids))
        padded = (_pad(cell, width) for cell, (_, width) in zip(cells, _COLUMNS, strict=True))
        click.echo("  ".join(padded).rstrip())
        count += 1
    return count


def _echo_json_stream(entries: Iterable[Entry]) -> None:
    export_entries(entries, "json", click.get_text_stream("stdout"))


def _time(value: str | None) -> int | None:
    return None if value is None else parse_time(value)


@click.group()
def audit() -> None:
    """Query, verify and export the audit ledger of a config.

    Every event Aegis observed, every session and every policy change is an entry
    in a hash chain; `aegis audit verify NAME` proves nothing was edited, removed
    or rewritten since.

    Times (--since/--until) are a duration ago (15m, 2h, 7d), ISO 8601
    (2026-11-28T10:00:00Z; without an offset, UTC) or @EPOCH_SECONDS.
    """


@audit.command()
@click.argument("name")
@click.option("--last", type=click.IntRange(min=1), help="Only the newest N matching entries.")
@click.option("--action", help="Only this action (FileRead, NetConnect, SessionStart, ...).")
@click.option("--decision", type=click.Choice(["allow", "deny", "info"]), help="Only this decision.")
@click.option("--since", help="Only entries at or after this time.")
@click.option("--until", help="Only entries before this time.")
@click.option("--session", help="Only entries of this session id.")
@click.option("--path-glob", help="Only resources matching this glob (* also matches /).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array with every field.")
def query(name: str, last: int | None, action: str | None, decision: str | None, since: str | None,
          until: str | None, session: str | None, path_glob: str | None, as_json: bool) -> None:
    """Print the entries of config NAME that match every filter, oldest first."""
    with _ledger(name) as ledger:
        entries = ledger.query(last=last, action=action, decision=decision, since_ns=_time(since),
                               until_ns=_time(until), session=session, path_glob=path_glob)
        if as_json:
            _echo_json_stream(entries)
        else:
            _echo_entry_table(entries)


@audit.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(name: str, as_json: bool) -> int:
    """Check the whole ledger of config NAME: every entry's hash and link, and every
    signed checkpoint (in the ledger and in the checkpoint file beside it).

    On failure prints the first bad sequence number and why (hash mismatch, broken
    link, gap, checkpoint mismatch, signature invalid) and exits 1.
    """
    with _ledger(name) as ledger:
        result = ledger.verify()
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(f"entries checked: {result.entries_checked}")
        click.echo(f"checkpoints checked: {result.checkpoints_checked}")
        if result.ok:
            click.echo("ledger OK")
        else:
            click.echo(f"FAILED at entry {result.first_bad_seq}: {result.reason}: {result.detail}")
    return 0 if result.ok else 1


@audit.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the sessions as JSON.")
def sessions(name: str, as_json: bool) -> None:
    """List the sessions of config NAME: command, start and end, exit, counts."""
    with _ledger(name) as ledger:
        found = ledger.sessions()
    if as_json:
        echo_json([s.to_dict() for s in found])
        return
    echo_table(["ID", "STATE", "START (UTC)", "END (UTC)", "EXIT", "EVENTS", "COMMAND"],
               [(s.id, s.state, format_time(s.start_ns), format_time(s.end_ns) if s.end_ns else "-",
                 s.exit_code if s.signal is None else f"signal {s.signal}",
                 sum(v for v in s.counts.values() if isinstance(v, int)), " ".join(s.command))
                for s in found], max_width={6: 60})


@audit.command()
@click.argument("name")
@click.option("--id", "session_id", required=True, help="The session id (see `aegis audit sessions`).")
@click.option("--changes", is_flag=True,
              help="Print only the session's file changes (what its project snapshot found created, "
                   "modified or deleted, and whether each was observed as it happened).")
@click.option("--json", "as_json", is_flag=True, help="Print the session and its entries as JSON.")
def session(name: str, session_id: str, changes: bool, as_json: bool) -> None:
    """Show one session of config NAME and every entry it recorded."""
    with _ledger(name) as ledger:
        found = ledger.session(session_id)
        if changes:
            rows = changes_for_session(ledger, found.id)
            if as_json:
                echo_json(rows)
            else:
                echo_table(*changes_table(rows))
            return
        entries = ledger.query(session=session_id)
        if as_json:
            echo_json({"session": found.to_dict(), "entries": [e.to_dict() for e in entries]})
            return
        for label, value in (("id", found.id), ("config", found.config),
                             ("command", " ".join(found.command)), ("cwd", found.cwd), ("state", found.state),
                             ("start", format_time(found.start_ns)),
                             ("end", format_time(found.end_ns) if found.end_ns else "-"),
                             ("exit code", found.exit_code), ("signal", found.signal),
                             ("policy hash", found.policy_hash), ("observer", found.observer),
                             ("counts", json.dumps(found.counts, sort_keys=True))):
            click.echo(f"{label + ':':13} {'-' if value is None else value}")
        click.echo()
        _echo_entry_table(entries)


@audit.command("policy-history")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print every version with its files as JSON.")
def policy_history(name: str, as_json: bool) -> None:
    """Every policy version recorded for config NAME, with a unified diff from the
    version before."""
    with _ledger(name) as ledger:
        versions = ledger.policy_history()
    if as_json:
        echo_json([v.to_dict() for v in versions])
        return
    if not versions:
        click.echo("no policy versions recorded yet")
    previous = None
    for version in versions:
        click.echo(f"version {version.hash[:16]}  entry {version.seq}  {format_time(version.ts_ns)}  "
                   f"files: {', '.join(sorted(version.files))}")
        diff = diff_versions(previous, version)
        if diff:
            click.echo(diff.rstrip("\n"))
        click.echo()
        previous = version


@audit.command()
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True,
              help="json: one array; jsonl: one object per line; csv (formulas neutralised); cef (ArcSight).")
@click.option("--since", help="Only entries at or after this time.")
@click.option("--follow", is_flag=True, help="Keep streaming new entries as they land, until interrupted.")
def export(name: str, fmt: str, since: str | None, follow: bool) -> None:
    """Write every entry of config NAME (no cap), oldest first, to stdout."""
    out = click.get_text_stream("stdout")
    with _ledger(name) as ledger:
        if not follow:
            export_entries(ledger.query(since_ns=_time(since)), fmt, out)
            return
        try:
            export_entries(follow_entries(ledger, since_ns=_time(since), on_idle=out.flush), fmt, out)
        except KeyboardInterrupt:
            out.flush()  # interrupting is how --follow ends


@audit.command()
@click.argument("name")
def checkpoint(name: str) -> None:
    """Sign a checkpoint of config NAME's ledger now and print it (C2SP signed note).

    It is stored in the ledger and appended to the config's checkpoint file.
    """
    with _ledger(name) as ledger:
        sys.stdout.write(ledger.checkpoint())
