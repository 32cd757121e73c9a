r"""``aegis.Sandbox``: run commands under a config's policies from Python.

Each ``Sandbox.run`` is one session, exactly what `aegis run` does: kernel
enforcement (Landlock, seccomp), per-process observation, every event in the
config's ledger. The session is supervised by a process of its own
(``aegis.api.supervisor``), so the embedding program keeps its signal handlers and
children, several runs can go at once from any threads, and stdio, working
directory and environment are the agent's, as with ``subprocess.Popen``.

>>> import aegis, subprocess, tempfile
>>> work = tempfile.mkdtemp()
>>> config = aegis.create_config("doc-sandbox", template="workspace-write", project_dir=work)
>>> with Sandbox(config) as sandbox:
...     proc = sandbox.run(["sh", "-c", "echo hi > note.txt; echo hi > /etc/aegis-doc; echo done"],
...                        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
...     out, _ = proc.communicate()
...     events = list(proc.events())
>>> proc.returncode, out
(0, b'done\n')
>>> sorted((e.action, e.decision, e.resource) for e in events if e.action == "FileWrite")
[('FileWrite', 'allow', '.../note.txt'), ('FileWrite', 'deny', '/etc/aegis-doc')]
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import tomli_w

from aegis.config import Config, load_config
from aegis.errors import AegisError
from aegis.ledger.model import Entry

__all__ = ["Sandbox", "SandboxProcess"]

Stdio = int | IO[Any] | None
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding the aegis package


def _supervisor_env() -> dict[str, str]:
    """This process's environment, with the aegis package importable from any cwd."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    return env


class SandboxProcess:
    """A running session, returned by ``Sandbox.run``; like ``subprocess.Popen``.

    ``pid`` is the agent's process id and ``session_id`` its ledger session, both
    known when ``run`` returns. ``stdin``/``stdout``/``stderr`` are pipes when asked
    for with ``subprocess.PIPE``. Use it as a context manager: leaving the block
    ends the session (SIGTERM, then SIGKILL after a grace period) if it still runs.
    """

    def __init__(self, popen: subprocess.Popen, status: IO[str], config: Config, command: list[str]) -> None:
        self._popen = popen
        self._status = status
        self._config = config
        self.command = command
        self.stdin, self.stdout, self.stderr = popen.stdin, popen.stdout, popen.stderr
        self.error: str | None = None
        self.result: dict[str, Any] = {}
        self._finish_lock = threading.Lock()  # poll() from events() may race wait() in another thread
        spawned = self._read_status()
        if spawned is None or spawned.get("event") != "spawned":
            popen.wait()
            status.close()
            message = (spawned or {}).get("message") or f"the session supervisor exited with {popen.returncode}"
            raise AegisError(message, exit_code=int((spawned or {}).get("exit_code", 1)))
        self.pid: int = int(spawned["pid"])
        self.session_id: str = str(spawned["session_id"])

    def _read_status(self) -> dict[str, Any] | None:
        line = self._status.readline()
        return json.loads(line) if line else None

    @property
    def returncode(self) -> int | None:
        """The agent's exit code (128+N when killed by signal N) once it ended, else None."""
        return self._popen.returncode

    def poll(self) -> int | None:
        """The exit code if the session has ended, else None (does not block)."""
        if self._popen.poll() is not None:
            self._finish()
        return self._popen.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait until the session has ended (agent and everything it started, session
        recorded); returns the agent's exit code. Raises ``subprocess.TimeoutExpired``.

        A command that could not be executed (e.g. its program is denied by the
        policy) exits 126 or 127 with the reason in ``error``."""
        self._popen.wait(timeout)
        self._finish()
        return self._popen.returncode

    def communicate(self, input: bytes | str | None = None, timeout: float | None = None) -> tuple[Any, Any]:
        """``subprocess.Popen.communicate``: send ``input``, read stdout/stderr to EOF, wait."""
        out = self._popen.communicate(input, timeout)
        self._finish()
        return out

    def _finish(self) -> None:
        with self._finish_lock:
            if self._status.closed:
                return
            message = self._read_status()
            self._status.close()
            if message is None:
                self.error = f"the session supervisor exited with {self._popen.returncode}"
            elif message["event"] == "error":
                self.error = message["message"]
            else:
                self.result = {k: v for k, v in message.items() if k != "event"}

    def send_signal(self, signum: int) -> None:
        """Signal the session: SIGINT, SIGTERM and SIGHUP are forwarded to the agent,
        which is killed if it has not exited a few seconds later."""
        if self._popen.returncode is None:
            self._popen.send_signal(signum)

    def terminate(self) -> None:
        """End the session: SIGTERM to the agent, SIGKILL after a grace period."""
        self.send_signal(signal.SIGTERM)

    def close(self) -> None:
        """End the session if it still runs and wait until it is recorded as ended."""
        if self.poll() is None:
            self.terminate()
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.wait()

    def events(self, *, follow: bool = True) -> Iterator[Entry]:
        """This session's ledger entries, oldest first (SessionStart to SessionEnd).

        With ``follow`` (the default) a live tail: new entries are yielded as the
        session records them, and the iterator ends after the session's end entry.
        Without, only what is recorded so far."""
        from aegis.api.ledger import Ledger

        with Ledger.open(self._config) as ledger:
            if follow:
                yield from ledger.follow(session=self.session_id, stop=lambda: self.poll() is not None)
            else:
                yield from ledger.query(session=self.session_id)

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SandboxProcess(pid={self.pid}, session_id={self.session_id!r}, returncode={self.returncode})"


class Sandbox:
    """Runs commands under one config's policies, each run a ledger session.

    ``config`` is a config name (made by ``aegis init`` / ``aegis.create_config``) or
    a ``Config``. Thread safety: ``run`` may be called from several threads at once;
    each run is its own supervised session, appended to the config's ledger on
    one unforked chain. Closing the sandbox (or leaving its ``with`` block) ends
    every session it started that is still running.
    """

    def __init__(self, config: str | Config, *, mode: str = "api") -> None:
        self.config = load_config(config) if isinstance(config, str) else config
        self.mode = mode
        self._running: list[SandboxProcess] = []
        self._lock = threading.Lock()

    def run(self, argv: Sequence[str], cwd: str | os.PathLike[str] | None = None,
            env: Mapping[str, str] | None = None, stdin: Stdio = None, stdout: Stdio = None,
            stderr: Stdio = None, *, text: bool = False) -> SandboxProcess:
        """Start ``argv`` in a new session; returns once the agent process exists.

        ``cwd`` and ``env`` default to this process's; ``stdin``/``stdout``/``stderr``
        take what ``subprocess.Popen`` takes (``None`` inherits, ``subprocess.PIPE``,
        ``subprocess.DEVNULL``, a file or descriptor); ``text`` makes pipes text.
        Raises ``AegisError`` when the session cannot start (no such program, invalid
        policies, ...)."""
        command = [os.fspath(a) for a in argv]
        if not command:
            raise AegisError("no command given")
        agent_env = dict(os.environ if env is None else env)
        request = json.dumps({"config": tomli_w.dumps(self.config.to_toml()),
                              "directory": str(self.config.directory), "command": command,
                              "env": agent_env, "mode": self.mode, "parent": os.getpid()}).encode()
        request_r, request_w = os.pipe()
        status_r, status_w = os.pipe()
        try:
            popen = subprocess.Popen(
                [sys.executable, "-P", "-m", "aegis.api.supervisor", str(request_r), str(status_w)],
                cwd=cwd, env=_supervisor_env(), stdin=stdin, stdout=stdout, stderr=stderr, text=text,
                pass_fds=(request_r, status_w))
        except BaseException as exc:
            for fd in (request_r, request_w, status_r, status_w):
                os.close(fd)
            if isinstance(exc, OSError):
                raise AegisError(f"cannot start a session for {command[0]}: {exc}") from None
            raise
        os.close(request_r)
        os.close(status_w)
        try:
            with os.fdopen(request_w, "wb") as fh:
                fh.write(request)
        except BrokenPipeError:
            pass  # the supervisor died at once; SandboxProcess reports it from the status pipe
        process = SandboxProcess(popen, os.fdopen(status_r, "r", encoding="utf-8"), self.config, command)
        with self._lock:
            self._running = [p for p in self._running if p.returncode is None] + [process]
        return process

    def close(self) -> None:
        """End every session started here that still runs (and wait for each)."""
        with self._lock:
            running, self._running = self._running, []
        for process in running:
            process.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
