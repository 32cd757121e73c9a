"""Inline SVG charts for the HTML report: plain markup, no scripts, no fonts to fetch.

Coordinates are rounded to one decimal so the output is byte-for-byte stable.
Every chart has a ``<title>`` and an ``aria-label`` so it reads without sight.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

COLOURS = {"allow": "#2e7d32", "deny": "#c62828", "info": "#607d8b"}
BAR = "#1565c0"


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _svg(chart_id: str, title: str, width: int, height: int, body: list[str]) -> str:
    return (
        f'<svg id="{chart_id}" class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{escape(title)}" viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def stacked_timeline(chart_id: str, title: str, buckets: Sequence[dict], series: Sequence[str]) -> str:
    """Vertical bars over time, each stacked by ``series`` (e.g. allow/deny/info), with a legend."""
    width, height, left, bottom, top = 720, 240, 48, 36, 28
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max((sum(b[s] for s in series) for b in buckets), default=0) or 1
    step = plot_w / max(len(buckets), 1)
    body = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" stroke="#999"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for i, bucket in enumerate(buckets):
        y = top + plot_h
        for s in series:
            h = bucket[s] * plot_h / peak
            if h <= 0:
                continue
            y -= h
            body.append(
                f'<rect class="bar-{s}" x="{_n(left + i * step + 1)}" y="{_n(y)}" '
                f'width="{_n(max(step - 2, 1))}" '
                f'height="{_n(h)}" fill="{COLOURS.get(s, BAR)}"><title>{escape(bucket["start"])}: '
                f"{bucket[s]} {s}</title></rect>"
            )
    if buckets:
        body.append(
            f'<text x="{left}" y="{height - 8}" font-size="11">{escape(buckets[0]["start"][:19])}</text>'
        )
        body.append(
            f'<text x="{width - 8}" y="{height - 8}" text-anchor="end" font-size="11">'
            f"{escape(buckets[-1]['start'][:19])}</text>"
        )
    for i, s in enumerate(series):
        x = left + i * 90
        body.append(
            f'<rect x="{x}" y="6" width="12" height="12" fill="{COLOURS.get(s, BAR)}"/>'
            f'<text x="{x + 16}" y="16" font-size="12">{escape(s)}</text>'
        )
    return _svg(chart_id, title, width, height, body)


def horizontal_bars(
    chart_id: str, title: str, rows: Sequence[tuple[str, dict[str, int]]], series: Sequence[str]
) -> str:
    """One horizontal bar per row (label, counts per series), stacked by ``series``."""
    label_w, width, row_h = 300, 720, 22
    plot_w = width - label_w - 70
    height = max(len(rows), 1) * row_h + 30
    peak = max((sum(c.get(s, 0) for s in series) for _, c in rows), default=0) or 1
    body = []
    for i, (label, counts) in enumerate(rows):
        y = 24 + i * row_h
        shown = label if len(label) <= 44 else "…" + label[-43:]
        body.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12">'
            f"<title>{escape(label)}</title>{escape(shown)}</text>"
        )
        x = float(label_w)
        for s in series:
            w = counts.get(s, 0) * plot_w / peak
            if w <= 0:
                continue
            body.append(
                f'<rect class="bar-{s}" x="{_n(x)}" y="{y + 2}" width="{_n(max(w, 1))}" height="{row_h - 6}" '
                f'fill="{COLOURS.get(s, BAR)}"><title>{escape(label)}: {counts[s]} {s}</title></rect>'
            )
            x += w
        total = sum(counts.get(s, 0) for s in series)
        body.append(f'<text x="{_n(x + 6)}" y="{y + 14}" font-size="12">{total}</text>')
    if not rows:
        body.append('<text x="10" y="30" font-size="12">none in this period</text>')
    if len(series) > 1:
        for i, s in enumerate(series):
            x = label_w + i * 90
            body.append(
                f'<rect x="{x}" y="4" width="12" height="12" fill="{COLOURS.get(s, BAR)}"/>'
                f'<text x="{x + 16}" y="14" font-size="12">{escape(s)}</text>'
            )
    return _svg(chart_id, title, width, height, body)
