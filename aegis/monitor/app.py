"""`aegis monitor`: the full-screen dashboard loop (blessed).

Each tick reads the entries appended since the last sequence number seen (a
bounded chunk, see ``LedgerTail``), updates ``MonitorState``, redraws, and waits
for a key for at most the refresh interval. The terminal is put back (normal
screen, cursor, line mode) by blessed's context managers on exit, on errors and
on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import textwrap
import time
from collections import deque
from typing import Any

from blessed import Terminal

from aegis.errors import AegisError
from aegis.monitor.filters import EntryFilter, parse_filter
from aegis.monitor.render import blank, counter_lines, feed_lines, fit, session_row, sparkline
from aegis.monitor.state import DENIALS_KEEP, FEED_KEEP, MonitorState
from aegis.monitor.tail import DEFAULT_CHUNK, LedgerTail

MIN_WIDTH, MIN_HEIGHT = 40, 10

HELP = (
    ("q", "quit (while typing a filter, q is just a letter)"),
    (
        "/",
        "filter: words that must all match; substring, or action:FileWrite decision:deny pid:123 "
        "session:ID exe:NAME; Enter keeps it, Esc clears it. It narrows the newest "
        f"{FEED_KEEP} entries ({DENIALS_KEEP} denials) kept on screen; `aegis audit query` searches "
        "the whole ledger",
    ),
    ("d", "denials only (again: back to the feed)"),
    ("s", "sessions list; Up/Down select, Enter drills into a session"),
    ("p", "the policies in force with their ids"),
    ("?", "this help"),
    ("Esc", "back to the feed"),
)


class Dashboard:
    """Views, keys and drawing of one monitor screen over one ledger."""

    def __init__(
        self,
        term: Terminal,
        ledger: Any,
        name: str,
        policies: list[dict[str, str]],
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        self.term = term
        self.ledger = ledger
        self.name = name
        self.policies = policies  # {"id", "effect", "file"}
        self.state = MonitorState()
        self.tail = LedgerTail(ledger, chunk)
        self.view = "feed"  # feed | denials | sessions | session | policies | help
        self.filter: EntryFilter = parse_filter("")
        self.typing: str | None = None  # filter text being typed, or None
        self.message = ""
        self.selected = 0
        self.drilled = ""  # id of the session being viewed
        self.session_feed: deque[Any] = deque(maxlen=FEED_KEEP)
        self.running = True
        self._size = (0, 0)

    # -- data ---------------------------------------------------------------------------------------
    def refresh(self) -> None:
        batch = self.tail.poll(self.state.last_seq)
        self.state.ingest(batch)
        if self.drilled:
            self.session_feed.extend(e for e in batch if e.session_id == self.drilled)

    # -- keys ---------------------------------------------------------------------------------------
    def handle(self, key: Any) -> None:
        if self.typing is not None:
            self._handle_typing(key)
            return
        name = key.name if key.is_sequence else None
        if key == "q":
            self.running = False
        elif key == "/":
            self.typing = self.filter.text
        elif key == "d":
            self.view = "feed" if self.view == "denials" else "denials"
        elif key == "s":
            self.view = "feed" if self.view == "sessions" else "sessions"
        elif key == "p":
            self.view = "feed" if self.view == "policies" else "policies"
        elif key == "?":
            self.view = "feed" if self.view == "help" else "help"
        elif name == "KEY_ESCAPE":
            self.view = "sessions" if self.view == "session" else "feed"
        elif self.view == "sessions" and name in ("KEY_UP", "KEY_DOWN"):
            step = -1 if name == "KEY_UP" else 1
            self.selected = min(max(self.selected + step, 0), max(len(self.state.sessions) - 1, 0))
        elif self.view == "sessions" and name == "KEY_ENTER" and self.state.sessions:
            self._drill(self.state.sessions[min(self.selected, len(self.state.sessions) - 1)])

    def _handle_typing(self, key: Any) -> None:
        name = key.name if key.is_sequence else None
        if name == "KEY_ENTER":
            self.typing = None
            return
        if name == "KEY_ESCAPE":
            self.typing = None
            self._apply_filter("")
            return
        if name in ("KEY_BACKSPACE", "KEY_DELETE"):
            text = (self.typing or "")[:-1]
        elif not key.is_sequence and key and key.isprintable():
            text = (self.typing or "") + str(key)
        else:
            return
        self.typing = text
        self._apply_filter(text)

    def _apply_filter(self, text: str) -> None:
        try:
            self.filter = parse_filter(text)
            self.message = ""
        except AegisError as exc:
            self.message = str(exc)  # keep the previous filter until the text parses

    def _drill(self, session: Any) -> None:
        self.drilled = session.id
        self.view = "session"
        self.session_feed.clear()
        self.session_feed.extend(
            e for e in self.ledger.query(session=session.id, last=FEED_KEEP) if e.seq <= self.state.last_seq
        )

    # -- drawing ------------------------------------------------------------------------------------
    def paint(self, style: str, text: str) -> str:
        t = self.term
        if style == "deny":
            return t.bold_red(text)
        if style == "allow":
            return t.green(text)
        if style == "header":
            return t.bold(text)
        if style == "title":
            return t.reverse(text)
        return text

    def frame(self, width: int, height: int) -> list[str]:
        """The whole screen as ``height`` lines of ``width`` columns."""
        if width < MIN_WIDTH or height < MIN_HEIGHT:
            return [fit(f"terminal too small ({width}x{height}); need {MIN_WIDTH}x{MIN_HEIGHT}", width)] + [
                blank(width)
            ] * (height - 1)
        totals = self.state.decision_totals()
        catching = "  catching up…" if self.tail.behind else ""
        title = (
            f" aegis monitor {self.name} │ {self.state.entries} entries │ seq {self.state.last_seq} │ "
            f"allow {totals['allow']} deny {totals['deny']} │ view {self.view}"
            + (f" │ filter: {self.filter.text}" if self.filter.text else "")
            + catching
        )
        lines = [self.paint("title", fit(title, width))]
        body_h = height - 2
        if self.view in ("feed", "denials"):
            lines += self._overview(width, body_h)
        elif self.view == "sessions":
            lines += self._sessions(width, body_h)
        elif self.view == "session":
            lines += self._session(width, body_h)
        elif self.view == "policies":
            lines += [fit(f"{p['id']}  {p['effect']:<7} {p['file']}", width) for p in self.policies][:body_h]
        else:
            for key, text in HELP:
                wrapped = textwrap.wrap(text, max(width - 8, 10)) or [""]
                lines += [
                    fit(f" {key if i == 0 else '':<5}  {part}", width) for i, part in enumerate(wrapped)
                ]
            lines = lines[: body_h + 1]
        lines += [blank(width)] * (height - 1 - len(lines))
        lines.append(self._bottom(width))
        return lines[:height]

    def _bottom(self, width: int) -> str:
        if self.typing is not None:
            return fit(f"/{self.typing}▏ {self.message}", width)
        if self.message:
            return self.paint("deny", fit(self.message, width))
        return self.paint(
            "title", fit(" q quit  / filter  d denials  s sessions  Enter drill  p policies  ? help", width)
        )

    def _filtered(self, entries: deque[Any], rows: int) -> list[Any]:
        """The newest ``rows`` entries matching the filter, newest first."""
        out = []
        for e in reversed(entries):
            if self.filter(e):
                out.append(e)
                if len(out) >= rows:
                    break
        return out

    def _overview(self, width: int, height: int) -> list[str]:
        top = min(max(height // 3, 4), 12)
        left_w = min(max(width // 2, 44), width - 20) if width >= 84 else width
        counters = counter_lines(self.state.action_totals(), left_w, top, self.paint)
        counters += [blank(left_w)] * (top - len(counters))
        if left_w < width:
            right_w = width - left_w - 3
            rate = self.state.rate_series(int(time.time()), max(right_w - 22, 1))
            right = [self.paint("header", fit("SESSIONS", right_w))]
            right += [
                session_row(s, self.state.session_counts.get(s.id, {}), right_w)
                for s in self.state.sessions[: top - 2]
            ]
            right += [blank(right_w)] * (top - 1 - len(right))
            right.append(fit(f"events/s {sparkline(rate)} {rate[-1] if rate else 0:>6}/s", right_w))
            panel = [c + " │ " + r for c, r in zip(counters, right, strict=True)]
        else:
            rate = self.state.rate_series(int(time.time()), max(width - 22, 1))
            panel = counters[: top - 1] + [
                fit(f"events/s {sparkline(rate)} {rate[-1] if rate else 0:>6}/s", width)
            ]
        source = self.state.denials if self.view == "denials" else self.state.feed
        title = "DENIALS" if self.view == "denials" else "LIVE FEED"
        rows = height - top - 2
        feed = feed_lines(self._filtered(source, rows), width, self.paint)
        return panel + [self.paint("header", fit(f"── {title} (newest first) ", width))] + feed

    def _sessions(self, width: int, height: int) -> list[str]:
        lines = [self.paint("header", fit("SESSIONS  (Up/Down select, Enter drill in, Esc back)", width))]
        sessions = self.state.sessions
        first = max(self.selected - (height - 2), 0)
        for i, s in enumerate(sessions[first : first + height - 1], start=first):
            row = session_row(s, self.state.session_counts.get(s.id, {}), width)
            lines.append(self.term.reverse(row) if i == self.selected else row)
        if not sessions:
            lines.append(fit("no sessions recorded yet", width))
        return lines

    def _session(self, width: int, height: int) -> list[str]:
        s = self.state.session(self.drilled)
        counts = self.state.session_counts.get(s.id, {})
        ended = (
            f"exit {s.exit_code}" if s.exit_code is not None else (f"signal {s.signal}" if s.signal else "")
        )
        lines = [
            fit(f"session {s.id}  {s.state} {ended}", width),
            fit(f"command: {' '.join(s.command)}", width),
            fit(
                f"events: allow {counts.get('allow', 0)}  deny {counts.get('deny', 0)}  "
                f"info {counts.get('info', 0)}   (Esc: back to sessions)",
                width,
            ),
        ]
        return lines + feed_lines(self._filtered(self.session_feed, height - 4), width, self.paint)

    def draw(self) -> None:
        t = self.term
        size = (t.width, t.height)
        out = [t.clear] if size != self._size else []
        self._size = size
        out += [t.move_yx(y, 0) + line for y, line in enumerate(self.frame(*size))]
        sys.stdout.write("".join(out))
        sys.stdout.flush()


def _raise_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def run_dashboard(
    ledger: Any,
    name: str,
    policies: list[dict[str, str]],
    refresh: float = 0.25,
) -> None:
    """Run the dashboard until `q` (or SIGTERM/SIGHUP); the terminal is restored either way."""
    term = Terminal()
    if not term.is_a_tty:
        raise AegisError(
            "aegis monitor needs a terminal (for a stream, use `aegis audit export NAME --follow`)"
        )
    dash = Dashboard(term, ledger, name, policies)
    dash.state.preload_feed(list(ledger.query(last=FEED_KEEP)))
    previous = {sig: signal.signal(sig, _raise_exit) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with term.fullscreen(), term.cbreak(), term.hidden_cursor():
            while dash.running:
                dash.refresh()
                dash.draw()
                key = term.inkey(timeout=0 if dash.tail.behind else refresh)
                while key and dash.running:
                    dash.handle(key)
                    key = term.inkey(timeout=0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
