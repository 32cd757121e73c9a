"""Drawing the dashboard's panels as lines of exactly the screen's width.

Every function returns plain lists of strings, each padded or clipped to a
given display width before colour is added, so long or multibyte paths never
break the layout and the panels can be checked without a terminal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from aegis.cli.output import clip, display_width
from aegis.report.collect import utc

SPARK = "▁▂▃▄▅▆▇█"
Paint = Callable[[str, str], str]  # (decision or style, text) -> text with colour codes


def fit(text: str, width: int) -> str:
    """``text`` clipped and padded to exactly ``width`` display columns."""
    if width <= 0:
        return ""
    text = clip(text, width)
    return text + " " * (width - display_width(text))


def clock(ts_ns: int) -> str:
    return utc(ts_ns).strftime("%H:%M:%S.%f")[:-3]


def sparkline(values: Sequence[int]) -> str:
    peak = max(values, default=0)
    if peak == 0:
        return SPARK[0] * len(values)
    return "".join(
        SPARK[min(v * (len(SPARK) - 1) // peak + (1 if v else 0), len(SPARK) - 1)] if v else " "
        for v in values
    )


FEED_HEADER = ("TIME", "PID", "EXECUTABLE", "ACTION", "DECISION", "RESOURCE")


def feed_columns(width: int) -> tuple[int, ...]:
    """Widths of the feed columns; the resource takes what is left."""
    fixed = (12, 7, 14, 12, 8)
    return (*fixed, max(width - sum(fixed) - len(fixed), 1))


def _what(e: Any) -> str:
    """The feed's last column: the resource, with the deciding policies of a denial or a drop's loss."""
    if e.action == "Drop":
        return f"{e.resource}: {e.details.get('count', '?')} events lost ({e.reason})"
    if e.decision == "deny" and e.policy_ids:
        return f"{e.resource}  [{', '.join(e.policy_ids)}]"
    return e.resource


def feed_lines(entries: Sequence[Any], width: int, paint: Paint) -> list[str]:
    cols = feed_columns(width)
    header = " ".join(fit(h, w) for h, w in zip(FEED_HEADER, cols, strict=True))
    lines = [paint("header", fit(header, width))]
    for e in entries:
        cells = (
            clock(e.ts_ns),
            str(e.pid or ""),
            os.path.basename(e.executable),
            e.action,
            e.decision,
            _what(e),
        )
        parts = [fit(c, w) for c, w in zip(cells, cols, strict=True)]
        parts[4] = paint(e.decision, parts[4])
        lines.append(" ".join(parts))
    return lines


def counter_lines(
    totals: Sequence[tuple[str, int, int, int]], width: int, rows: int, paint: Paint
) -> list[str]:
    """Per-action allow/deny/info counts with a bar (green allow, red deny)."""
    name_w, num_w = 12, 8
    bar_w = max(width - name_w - 3 * num_w - 1, 0)  # one space between the numbers and the bar
    lines = [
        paint(
            "header", fit(f"{'ACTION':<{name_w}}{'ALLOW':>{num_w}}{'DENY':>{num_w}}{'INFO':>{num_w}}", width)
        )
    ]
    peak = max((a + d + i for _, a, d, i in totals), default=0) or 1
    for action, allow, deny, info in totals[: max(rows - 1, 0)]:
        total = allow + deny + info
        cells = f"{fit(action, name_w)}{allow:>{num_w}}{deny:>{num_w}}{info:>{num_w}}"
        length = round(total * bar_w / peak) if total else 0
        deny_len = min(round(deny * bar_w / peak), length) if deny else 0
        if deny and deny_len == 0 and length:
            deny_len = 1
        bar = paint("allow", "█" * (length - deny_len)) + paint("deny", "█" * deny_len)
        lines.append(fit(cells, name_w + 3 * num_w) + " " + bar + " " * (bar_w - length))
    return lines


def session_row(s: Any, counts: dict[str, int], width: int) -> str:
    events = sum(counts.values())
    exit_text = f"exit {s.exit_code}" if s.exit_code is not None else (f"sig {s.signal}" if s.signal else "")
    text = (
        f"{s.id[:8]}  {clock(s.start_ns)[:8]}  {s.state:<11} {exit_text:<8} {events:>8} ev "
        f"{counts.get('deny', 0):>6} den  "
        f"{' '.join(s.command)}"
    )
    return fit(text, width)


def blank(width: int) -> str:
    return " " * width
