"""The process that supervises one ``aegis.Sandbox`` run (``python -m aegis.api.supervisor``).

A session needs a process of its own: it is the parent of the session's init
(csrc/spawn_linux.c), ends every straggler when the agent exits, handles
SIGINT/SIGTERM on its main thread, and its stdio and working directory are the
agent's. Running it inside the embedding program would make that program reap
the session's init and lose its own signal handlers, so ``aegis.api.sandbox``
starts this module instead.

Protocol: argv is ``REQUEST_FD STATUS_FD``. The request is one JSON object read
to EOF (config text and directory, command, agent environment, parent pid). Status lines go
back as JSON: ``{"event": "spawned", "session_id", "pid"}`` as soon as the agent
exists, then ``{"event": "finished", ...SessionResult}`` or
``{"event": "error", "message", "exit_code"}``. The exit code is the agent's.
If the embedding program dies, the session is ended as if it had sent SIGTERM.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import sys
import threading
from pathlib import Path
from typing import IO

from aegis.config import parse_config
from aegis.errors import AegisError


def _reporter(stream: IO[str]):  # noqa: ANN202 (a callable taking keyword fields)
    def report(**message: object) -> None:
        try:
            stream.write(json.dumps(message) + "\n")
            stream.flush()
        except BrokenPipeError:
            pass  # the embedding program went away; the session still ends properly
    return report


def _end_with_parent(parent: int) -> None:
    """SIGTERM ourselves (ending the session cleanly) when ``parent`` exits."""
    try:
        if os.getppid() != parent:
            raise ProcessLookupError(parent)  # already gone: we were re-parented
        pidfd = os.pidfd_open(parent)
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGTERM)
        return

    def watch() -> None:
        select.select([pidfd], [], [])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="aegis-parent-watch", daemon=True).start()


def supervise(request_fd: int, status_fd: int) -> int:
    """Run the requested session; returns the agent's exit code (or the error's)."""
    for fd in (request_fd, status_fd):
        os.set_inheritable(fd, False)
    with os.fdopen(request_fd, "rb") as fh:
        request = json.loads(fh.read())
    status = os.fdopen(status_fd, "w", encoding="utf-8")
    report = _reporter(status)
    _end_with_parent(request["parent"])
    try:
        if not sys.platform.startswith("linux"):
            raise AegisError(f"aegis.Sandbox enforces with Landlock and seccomp, which need Linux "
                             f"(this is {sys.platform})")
        from aegis.sandbox.linux import run_session

        config = parse_config(request["config"], Path(request["directory"]))
        result = run_session(config, request["command"], mode=request["mode"], env=request["env"],
                             on_spawn=lambda session_id, pid: report(event="spawned", session_id=session_id,
                                                                     pid=pid))
    except AegisError as exc:
        report(event="error", message=str(exc), exit_code=exc.exit_code)
        status.close()
        return exc.exit_code
    report(event="finished", **dataclasses.asdict(result))
    status.close()
    return result.exit_code


if __name__ == "__main__":
    sys.exit(supervise(int(sys.argv[1]), int(sys.argv[2])))
