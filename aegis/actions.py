"""Cedar action names and their numeric codes (mirrors csrc/aegis_actions.h)."""

from __future__ import annotations

import enum


class Action(enum.IntEnum):
    FileRead = 1
    FileWrite = 2
    FileDelete = 3
    DirCreate = 4
    DirList = 5
    NetConnect = 6
    ToolCall = 7
    ProcessSpawn = 8
    ProcessExit = 9

    @classmethod
    def parse(cls, name: str) -> Action:
        """Return the action named ``name`` (case-sensitive Cedar name)."""
        try:
            return cls[name]
        except KeyError:
            from aegis.errors import AegisError

            raise AegisError(
                f"unknown action {name!r} (expected one of: {', '.join(a.name for a in cls)})") from None

    @property
    def cedar_uid(self) -> dict[str, str]:
        return {"type": "Aegis::Action", "id": self.name}


FILE_ACTIONS = (Action.FileRead, Action.FileWrite, Action.FileDelete, Action.DirCreate, Action.DirList)
# The actions that change what is on disk (csrc/record_lines.c keeps the same three).
MUTATING_ACTIONS = frozenset({"FileWrite", "FileDelete", "DirCreate"})


class Decision(enum.IntEnum):
    allow = 1
    deny = 2
    residual = 3
