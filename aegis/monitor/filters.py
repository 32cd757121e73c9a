"""The dashboard's `/` filter: words that must all match an entry.

``action:FileWrite`` and ``decision:deny`` match the field (any case),
``pid:123`` the process or its parent, ``session:ID`` an id prefix and
``exe:NAME`` a substring of the executable; any other word matches as a
case-insensitive substring of the resource, executable, action, decision or
policy ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aegis.errors import AegisError

FIELDS = ("action", "decision", "pid", "session", "exe")


def _field_test(key: str, value: str) -> Callable[[Any], bool]:
    if key == "action":
        wanted = value.lower()
        return lambda e: e.action.lower() == wanted
    if key == "decision":
        wanted = value.lower()
        return lambda e: e.decision == wanted
    if key == "pid":
        if not value.isdigit():
            raise AegisError(f"pid:{value}: a pid is a number")
        pid = int(value)
        return lambda e: e.pid == pid or e.ppid == pid
    if key == "session":
        return lambda e: e.session_id.startswith(value)
    wanted = value.lower()
    return lambda e: wanted in e.executable.lower()


def _substring_test(word: str) -> Callable[[Any], bool]:
    needle = word.lower()

    def test(e: Any) -> bool:
        return (
            needle in e.resource.lower()
            or needle in e.executable.lower()
            or needle in e.action.lower()
            or needle == e.decision
            or any(needle in p.lower() for p in e.policy_ids)
        )

    return test


@dataclass(frozen=True)
class EntryFilter:
    """A parsed filter; ``text`` is what the user typed (empty matches everything)."""

    text: str
    tests: tuple[Callable[[Any], bool], ...]

    def __call__(self, entry: Any) -> bool:
        return all(test(entry) for test in self.tests)


def parse_filter(text: str) -> EntryFilter:
    """Parse filter text; raises AegisError naming a bad ``key:value`` word."""
    tests = []
    for word in text.split():
        key, sep, value = word.partition(":")
        if sep and key.lower() in FIELDS:
            if not value:
                raise AegisError(f"{word}: give a value after ':'")
            tests.append(_field_test(key.lower(), value))
        else:
            tests.append(_substring_test(word))
    return EntryFilter(text.strip(), tuple(tests))
