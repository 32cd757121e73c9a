"""Shared printing helpers: JSON for machines, aligned tables for people."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import click


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=str))


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 0 if unicodedata.combining(ch) else 1
               for ch in text)


def clip(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` display columns, marking the cut with an ellipsis."""
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = display_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], max_width: dict[int, int] | None = None) -> None:
    """Print rows as aligned columns; long or multibyte cells never break the layout."""
    max_width = max_width or {}
    cells = [[clip(str(v), max_width.get(i, 80)) for i, v in enumerate(r)] for r in rows]
    widths = [display_width(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell))

    def line(values: Sequence[str]) -> str:
        return "  ".join(v + " " * (widths[i] - display_width(v)) for i, v in enumerate(values)).rstrip()

    click.echo(line(headers))
    for row in cells:
        click.echo(line(row))
