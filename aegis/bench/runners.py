"""Ways to run a workload: bare, under ``aegis wrap`` with each observer, under
strace, and under the fanotify observer alone (the observer's own cost, without
a session, its supervisor or the ledger). Each runner times one run and says why
it is not available instead of failing the whole suite."""

from __future__ import annotations

import abc
import dataclasses
import json
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aegis.bench.workloads import Workload
from aegis.errors import AegisError
from aegis.ledger.canonical import FIELD_INDEX, decode_record

OBSERVERS = ("seccomp", "fanotify", "inotify")
STRACE_ARGS = ("-f", "-qq", "-y", "-e", "trace=file,process")


class RunFailed(Exception):
    """The workload did not run to completion under this runner."""


def aegis_command() -> list[str]:
    """The installed ``aegis`` beside this Python, else ``python -m aegis``."""
    exe = Path(sys.executable).with_name("aegis")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "aegis"]


def run_timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Wall time of one run (stdout discarded); returns (seconds, stderr)."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    elapsed = time.perf_counter() - start
    # grep exits 1 when nothing matched; anything else non-zero is a failure
    if proc.returncode not in (0, 1):
        last = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise RunFailed(last[0])
    return elapsed, proc.stderr


@dataclass
class Runner(abc.ABC):
    """Base: runs a workload and returns the wall time in seconds."""

    name: str
    unavailable: str = ""                     # why it cannot run here ("" = available)
    notes: list[str] = field(default_factory=list)

    def prepare(self, workloads: list[Workload]) -> None:  # noqa: B027 - optional hook, most runners need none
        """One-time set-up; sets ``unavailable`` on failure."""

    @abc.abstractmethod
    def run(self, workload: Workload) -> float:
        """Run ``workload`` once; its wall time in seconds."""


class BareRunner(Runner):
    def run(self, workload: Workload) -> float:
        return run_timed(list(workload.argv), workload.cwd)[0]


class StraceRunner(Runner):
    def __init__(self, out_dir: Path) -> None:
        super().__init__("strace -f")
        self.out_dir = out_dir
        self.strace = shutil.which("strace")
        if self.strace is None:
            self.unavailable = "strace is not installed (apt-get install strace)"

    def trace_file(self, workload: Workload) -> Path:
        return self.out_dir / f"strace-{workload.slug}.txt"

    def run(self, workload: Workload) -> float:
        assert self.strace is not None
        argv = [self.strace, *STRACE_ARGS, "-o", str(self.trace_file(workload)), *workload.argv]
        return run_timed(argv, workload.cwd)[0]


class WrapRunner(Runner):
    """``aegis wrap`` with the wrap's ``observer.mode`` set to one mechanism; each
    workload gets its own wrap (its project directory is the workload's tree).

    Observation rows run with ``--no-snapshot``; the snapshot net (a walk and
    fingerprint of the project at session start and end) is its own row, ``+ snapshot``,
    so its cost is reported rather than mixed into the observer's."""

    def __init__(self, observer: str, snapshot: bool = False) -> None:
        super().__init__(f"aegis wrap ({observer}{' + snapshot' if snapshot else ''})")
        self.observer = observer
        self.snapshot = snapshot
        self.last_session: dict[str, str] = {}

    def wrap_name(self, workload: Workload) -> str:
        return f"bench-{self.observer}-{workload.slug}"

    def _wrap(self, workload: Workload, argv: tuple[str, ...]) -> tuple[float, dict[str, object]]:
        cmd = [*aegis_command(), "wrap", "--json", "--name", self.wrap_name(workload),
               *(() if self.snapshot else ("--no-snapshot",)), "--", *argv]
        elapsed, stderr = run_timed(cmd, workload.cwd)
        last = (stderr.strip().splitlines() or [""])[-1]
        try:
            summary = json.loads(last)
        except ValueError:
            raise RunFailed(f"no session summary: {last or 'nothing on stderr'}") from None
        self.last_session[workload.name] = str(summary["session"])
        return elapsed, summary

    def prepare(self, workloads: list[Workload]) -> None:
        """Create each workload's wrap (project directory = its tree), switch it to
        this observer, and check that a session really runs with it."""
        from aegis.config import load_config_dir, save_config
        from aegis.paths import wrap_dir

        try:
            for workload in workloads:
                name = self.wrap_name(workload)
                create = [*aegis_command(), "wrap", "--name", name, "--dir", str(workload.tree), "--", "true"]
                run_timed(create, workload.cwd)
                config = load_config_dir(wrap_dir(name))
                save_config(dataclasses.replace(config, observer=self.observer))
                _, summary = self._wrap(workload, ("true",))
                ran = summary.get("observer")
                if ran != self.observer:
                    self.unavailable = f"not available: aegis wrap ran with observer {ran!r}"
                    return
        except (RunFailed, AegisError, ValueError, KeyError, OSError) as exc:
            self.unavailable = f"not available: {exc}"

    def run(self, workload: Workload) -> float:
        return self._wrap(workload, workload.argv)[0]


class FanotifyOnlyRunner(Runner):
    """The workload under the fanotify observer alone (cgroup, marks, reader thread,
    ring drained and encoded as a session encodes it): the observer's cost without a
    session or ledger."""

    def __init__(self) -> None:
        super().__init__("fanotify observer only")
        # (action, resource) of each recorded event of the last run, per workload; kept
        # as tuples so that holding 13,000 of them does not feed the cyclic GC
        self.seen: dict[str, list[tuple[str, str]]] = {}
        try:
            from aegis.observer import fanotify
        except ImportError as exc:
            self.unavailable = f"not available: {exc}"
            return
        if not fanotify.available():
            self.unavailable = "not available: needs root (CAP_SYS_ADMIN) and a cgroup v2 mount"

    def run(self, workload: Workload) -> float:
        from aegis.observer.fanotify import FanotifyObserver

        # The child waits for a line on stdin until it is in the cgroup, then execs the
        # workload (whose stdin is then at end of file, as none of them reads it).
        start = time.perf_counter()
        observer = FanotifyObserver(session_id=f"bench-{uuid.uuid4().hex[:12]}")
        encoded: list[bytes] = []  # the records as a session encodes them (in C), read after the clock stops
        try:
            child = subprocess.Popen(["/bin/sh", "-c", 'read _; exec "$@"', "sh", *workload.argv],
                                     cwd=workload.cwd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
            assert child.stdin is not None
            observer.attach(child.pid)
            child.stdin.write(b"go\n")
            child.stdin.close()
            while not observer.finished():
                encoded.extend(lines for lines, _ in observer.drain_encoded().segments)
                time.sleep(0.005)
            encoded.extend(lines for lines, _ in observer.drain_encoded().segments)
            code = child.wait()
        finally:
            observer.stop()
        elapsed = time.perf_counter() - start
        if code not in (0, 1):
            raise RunFailed(f"exit {code}")
        records = (decode_record(line.decode()) for lines in encoded for line in lines.split(b"\n"))
        self.seen[workload.name] = [(r[FIELD_INDEX["action"]], r[FIELD_INDEX["resource"]]) for r in records]
        return elapsed


def make_runners(scratch: Path, observers: tuple[str, ...] = OBSERVERS) -> list[Runner]:
    """bare first (every ratio divides by it), strace last."""
    runners: list[Runner] = [BareRunner("bare")]
    runners += [WrapRunner(name) for name in observers]
    if "seccomp" in observers:
        runners.append(WrapRunner("seccomp", snapshot=True))
    runners.append(FanotifyOnlyRunner())
    runners.append(StraceRunner(scratch))
    return runners
