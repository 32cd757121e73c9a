"""The inotify fallback observer, for machines without seccomp user notification.

WITHOUT PID ATTRIBUTION: inotify reports that a file under the project
directory was opened, modified, created or deleted, but not by which process,
and it cannot tell the agent's accesses from anyone else's. Every event is
recorded with pid 0, source "inotify" and that caveat in its reason. It only
observes; enforcement is Landlock's alone in this mode.
"""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

from aegis.ledger import Event
from aegis.observer.api import Observer

IN_ACCESS, IN_MODIFY, IN_OPEN, IN_CREATE, IN_DELETE = 0x1, 0x2, 0x20, 0x100, 0x200
IN_MOVED_FROM, IN_MOVED_TO, IN_ISDIR, IN_Q_OVERFLOW = 0x40, 0x80, 0x40000000, 0x4000
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
WATCH_MASK = IN_OPEN | IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
_HEADER = struct.Struct("iIII")
REASON = "inotify fallback: no pid attribution (any process may have caused this)"


def _action(mask: int) -> str:
    if mask & (IN_DELETE | IN_MOVED_FROM):
        return "FileDelete"
    if mask & IN_CREATE and mask & IN_ISDIR:
        return "DirCreate"
    if mask & (IN_MODIFY | IN_CREATE | IN_MOVED_TO):
        return "FileWrite"
    return "DirList" if mask & IN_ISDIR else "FileRead"


class InotifyObserver(Observer):
    name = "inotify"
    pid_attribution = False

    def __init__(self, root: Path, *, session_id: str, principal: str) -> None:
        self.session_id, self.principal = session_id, principal
        self._libc = ctypes.CDLL(None, use_errno=True)  # libc, already loaded
        self._fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._dirs: dict[int, str] = {}
        self._overflows = 0
        self._events = 0
        for directory, _, _ in os.walk(root):
            self._watch(directory)

    def _watch(self, directory: str) -> None:
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(directory), WATCH_MASK)
        if wd >= 0:
            self._dirs[wd] = directory

    def drain(self, max_events: int = 4096) -> list[Event]:
        events: list[Event] = []
        while self._fd >= 0 and len(events) < max_events:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                wd, mask, _, length = _HEADER.unpack_from(data, offset)
                name = data[offset + _HEADER.size:offset + _HEADER.size + length].rstrip(b"\0")
                offset += _HEADER.size + length
                if mask & IN_Q_OVERFLOW:
                    self._overflows += 1
                    continue
                directory = self._dirs.get(wd, "?")
                path = os.path.join(directory, os.fsdecode(name)) if name else directory
                if mask & IN_CREATE and mask & IN_ISDIR:
                    self._watch(path)
                events.append(Event(action=_action(mask), resource=path, decision="allow",
                                    session_id=self.session_id, principal=self.principal, source="inotify",
                                    reason=REASON, details={"mask": mask}))
        self._events += len(events)
        return events

    def take_dropped(self) -> int:
        dropped, self._overflows = self._overflows, 0
        return dropped

    def finished(self) -> bool:
        return True  # inotify cannot know; the session relies on its process accounting

    def stats(self) -> dict[str, int]:
        return {"inotify_events": self._events, "watched_dirs": len(self._dirs)}

    def stop(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
