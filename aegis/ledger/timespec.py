"""Times given on the command line (``--since``/``--until``), as UTC nanoseconds."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from aegis.errors import AegisError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RELATIVE = re.compile(r"(\d+)([smhdw])")


def parse_time(text: str, *, now_ns: int | None = None) -> int:
    """``text`` as nanoseconds since the epoch (UTC).

    Accepts a duration ago (``30s``, ``15m``, ``2h``, ``7d``, ``1w``), ISO 8601
    (``2026-11-28``, ``2026-11-28T10:00:00+01:00``; no offset means UTC), or
    ``@SECONDS`` since the epoch.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    text = text.strip()
    if match := _RELATIVE.fullmatch(text):
        return now_ns - int(match.group(1)) * _UNITS[match.group(2)] * 1_000_000_000
    if text.startswith("@"):
        try:
            return int(float(text[1:]) * 1_000_000_000)
        except ValueError:
            pass
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
            return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    raise AegisError(f"cannot read time {text!r}: use a duration ago (15m, 2h, 7d), ISO 8601 "
                     "(2026-11-28T10:00:00Z) or @EPOCH_SECONDS")


def format_time(ts_ns: int) -> str:
    """UTC, to the second: ``2026-11-28T10:00:00Z``."""
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
