"""Running a command under enforcement and observation on Linux.

``run_session`` is the whole of `aegis run` / `aegis wrap` once a config is
chosen: compile the policy, record the policy snapshot and session start, build
the Landlock ruleset and seccomp filter, spawn the agent from C
(csrc/spawn_linux.c), serve its notifications (aegis.observer), drain the
observations into the ledger in batches, end every process of the session, and
record the session end. The agent never outlives the session unobserved.

The agent is the only child of a small session init, which (when the kernel
allows: root, or an unprivileged user namespace) is process 1 of a new PID
namespace: if Aegis is killed, the init dies with it and the kernel kills every
process of the session, daemons included (`containment`). The session's mount
namespace covers Aegis's own directories with an empty read-only tmpfs
(`hidden_directories`).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import select
import signal
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aegis import paths
from aegis.actions import MUTATING_ACTIONS, Action
from aegis.config import Config
from aegis.errors import AegisError
from aegis.ledger import Event, Ledger, open_ledger
from aegis.native import errno_name, ffi, lib
from aegis.nets.landlock_audit import DenialHarvester
from aegis.nets.snapshot import SnapshotNet
from aegis.observer import select_observer
from aegis.observer.api import Observer
from aegis.observer.seccomp import RING_CAPACITY, RING_WAIT_MS, SeccompObserver, parse_allowed_network
from aegis.policy.landlock import (
    FS_MAKE_DIR,
    FS_MAKE_REG,
    FS_REMOVE_FILE,
    FS_WRITE_FILE,
    NET_BIND_TCP,
    NET_CONNECT_TCP,
)
from aegis.policy.seccomp import SeccompSpec, seccomp_spec
from aegis.sandbox.capabilities import UNPRIVILEGED_ID, landlock_abi
from aegis.sandbox.policy_cache import NET_PERMIT_ALL, NET_PERMIT_SOME, SessionPolicy, session_policy
from aegis.sandbox.session import resolve_command
from aegis.sandbox.wake_latency import WakeLatency

if TYPE_CHECKING:
    from aegis.observer.fanotify import SessionCgroup

DRAIN_INTERVAL_S = 0.02        # how often the ring is drained while the agent runs
DRAIN_BATCH = 4096             # events per ledger transaction
INTERRUPT_GRACE_S = 3.0        # after forwarding SIGINT/SIGTERM, before SIGKILL
STRAGGLER_GRACE_S = 1.0        # daemons left at the end: SIGTERM, then SIGKILL after this
STRAGGLER_DEADLINE_S = 5.0
# Landlock rights that let the agent change what is below a rule's path (snapshot_roots).
LANDLOCK_WRITES = FS_WRITE_FILE | FS_MAKE_REG | FS_MAKE_DIR | FS_REMOVE_FILE
SCRATCH_DIRS = ("/", "/tmp", "/var/tmp", "/dev/shm")
SYSTEM_DIRS = ("/dev", "/proc", "/sys", "/run")
# With the fanotify observer, opens, execs and path changes are left to Landlock and
# recorded by fanotify; the supervisor still decides what no Landlock right covers:
# metadata changes and socket addresses (pathname unix sockets, TCP by policy).
SUPERVISED_BESIDE_FANOTIFY = ("connect", "bind", "chmod", "fchmodat", "fchmodat2", "chown", "lchown", "fchownat",
                              "setxattr", "lsetxattr", "removexattr", "lremovexattr", "utimensat", "utimes",
                              "utime")
# How the network is enforced (see network_mode).
NETWORK_OPEN = "open"
NETWORK_POLICY = "TCP decided by policy"
NETWORK_LISTED = "TCP to allowed_network only"
NETWORK_DENIED = "denied"


@dataclass
class SessionResult:
    """What `aegis run` reports and exits with."""

    session_id: str
    exit_code: int
    signal: int | None
    state: str
    observer: str
    counts: dict[str, int] = field(default_factory=dict)


def protected_paths(config: Config) -> list[str]:
    """Aegis's own state for this session, lexically and with symlinks resolved."""
    ledger = str(config.ledger_path)
    candidates = [paths.aegis_home(), config.directory, config.keys_dir, config.checkpoints_path,
                  ledger, ledger + "-wal", ledger + "-shm", ledger + "-journal", *config.policy_paths]
    out: list[str] = []
    for item in candidates:
        for form in (os.path.abspath(item), os.path.realpath(item)):
            if form not in out:
                out.append(form)
    return out


def hidden_directories(config: Config, cwd: str) -> list[str]:
    """Aegis's own directories (the Aegis home and the config's directory, where the
    ledger, keys and policies live by default), to be covered in the agent's mount
    namespace; never the agent's working directory or one above it. State kept
    elsewhere by a config's choice is guarded by the supervisor (`protected_paths`)."""
    found = sorted({os.path.realpath(d) for d in (paths.aegis_home(), config.directory) if os.path.isdir(d)})
    outermost = [d for d in found if not any(d != o and d.startswith(o.rstrip("/") + "/") for o in found)]
    here = os.path.realpath(cwd)
    return [d for d in outermost if d != "/" and here != d and not here.startswith(d + "/")]


def check_fanotify_session(config: Config, policy: SessionPolicy, hidden: Sequence[str]) -> None:
    """The fanotify observer leaves files to Landlock: refuse it (with the reason) when
    the kernel cannot enforce this policy exactly, or when Aegis's own state would be
    reachable because it cannot be hidden from the agent."""
    inexact = [*policy.not_enforced_by_kernel]
    if policy.kernel_looser:
        inexact.append(f"the kernel allows more than the policy for {', '.join(policy.kernel_looser)}")
    if inexact:
        raise AegisError("observer 'fanotify' leaves file decisions to the kernel, which cannot enforce this "
                         f"policy exactly ({'; '.join(inexact)}); use --observer seccomp")
    exposed = [p for p in protected_paths(config)
               if not any(p == d or p.startswith(d + "/") for d in hidden)]
    if exposed:
        raise AegisError(f"observer 'fanotify' cannot hide {exposed[0]} from the agent (run from outside the Aegis "
                         "home, keep ledger, keys and policies in the config directory); use --observer seccomp")


def network_mode(policy: SessionPolicy, allowed_network: Sequence[str]) -> str:
    """How the network is enforced.

    An unconditional permit of NetConnect (and no forbid) leaves it open: every
    connect() is still recorded. Otherwise only TCP is possible, because a datagram
    sent with sendto() carries its address past any per-connect decision: UDP and
    raw sockets cannot be created. Each TCP connect() is then decided by the policy
    (and ``allowed_network``); with no permit at all, Landlock also stops TCP in the
    kernel except on the ``allowed_network`` ports."""
    if policy.net_permit == NET_PERMIT_ALL:
        return NETWORK_OPEN
    if policy.net_permit == NET_PERMIT_SOME:
        return NETWORK_POLICY
    return NETWORK_LISTED if allowed_network else NETWORK_DENIED


def nearest_existing(path: str) -> str:
    """``path`` or its closest existing ancestor (a Landlock rule needs an object)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return str(p)


def build_ruleset(policy: SessionPolicy, mode: str, net_ports: Sequence[int]) -> int:
    """The Landlock ruleset fd for ``policy`` (masked for the kernel's ABI), -1 without Landlock.

    The network part is Aegis's: TCP connect/bind handled (denied) unless the policy
    decides connections, with the ports of ``allowed_network`` open for the supervisor
    to decide by address."""
    if policy.landlock_abi < 1:
        return -1
    handled_net, ports = 0, []
    if policy.landlock_abi >= 4 and mode in (NETWORK_LISTED, NETWORK_DENIED):
        handled_net = NET_CONNECT_TCP | NET_BIND_TCP
        ports = [(port, NET_CONNECT_TCP) for port in sorted(set(net_ports))]
    rules = [(nearest_existing(p), access) for p, access in policy.landlock_rules]
    keep = [ffi.new("char[]", os.fsencode(p)) for p, _ in rules]
    fd = lib.aegis_landlock_build_ruleset(
        policy.handled_fs, handled_net, policy.scoped, ffi.new("const char *[]", keep or [ffi.NULL]),
        ffi.new("uint64_t[]", [a for _, a in rules] or [0]), len(rules),
        ffi.new("uint64_t[]", [p for p, _ in ports] or [0]),
        ffi.new("uint64_t[]", [a for _, a in ports] or [0]), len(ports))
    if fd < 0:
        raise AegisError(f"cannot build the Landlock ruleset: {errno_name(fd)}")
    return fd


def build_filter(spec: SeccompSpec, notify: bool, deny_datagram: bool) -> object:
    """The seccomp BPF program (``struct aegis_bpf *``, freed when collected)."""
    numbers = spec.numbers(os.uname().machine)
    notified = [numbers[n] for n in spec.notified if n in numbers] if notify else []
    denied = [(numbers[n], e) for n, e in spec.denied if n in numbers]
    flags = [(numbers[n], arg, mask, e) for n, arg, mask, e in spec.denied_if_flags if n in numbers]
    flag_array = ffi.new("struct aegis_flag_deny[]", max(len(flags), 1))
    for i, (nr, arg, mask, err) in enumerate(flags):
        entry = flag_array[i]
        entry.nr, entry.arg_index, entry.mask, entry.error = nr, arg, mask, err
    bpf = lib.aegis_bpf_build(ffi.new("int[]", notified or [0]), len(notified),
                              ffi.new("int[]", [n for n, _ in denied] or [0]),
                              ffi.new("int[]", [e for _, e in denied] or [0]), len(denied),
                              flag_array, len(flags), int(deny_datagram))
    if bpf == ffi.NULL:
        raise AegisError("cannot build the seccomp filter")
    return ffi.gc(bpf, lib.aegis_bpf_free)


def _cstrings(items: Sequence[str]) -> tuple[object, list[object]]:
    keep = [ffi.new("char[]", os.fsencode(s)) for s in items]
    return ffi.new("char *[]", [*keep, ffi.NULL]), keep


# How the session's processes are held together (csrc/spawn_linux.h AEGIS_CONTAIN_*).
CONTAINMENT_NAMES = {0: "none", 1: "pid namespace", 2: "pid namespace in a user namespace"}


def containment() -> int:
    """The strongest containment this process can create: a PID namespace as root,
    one owned by a new user namespace otherwise, when unprivileged user namespaces
    are allowed; else none (the agent's daemons could then outlive a killed Aegis)."""
    if os.geteuid() == 0:
        return lib.AEGIS_CONTAIN_PIDNS
    if lib.aegis_probe_userns(UNPRIVILEGED_ID, UNPRIVILEGED_ID) > 0:
        return lib.AEGIS_CONTAIN_USERNS_PIDNS
    return lib.AEGIS_CONTAIN_NONE


def children_of(pid: int) -> list[int]:
    """Direct children of process ``pid`` (the session init: the agent, then its orphans)."""
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                kids.extend(int(x) for x in fh.read().split())
    except OSError:
        pass
    return kids


class _Signals:
    """SIGINT/SIGTERM/SIGHUP to aegis while the agent runs: remembered, acted on by the loop."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous = {s: signal.signal(s, self._note) for s in self.SIGNALS}

    def _note(self, signum: int, frame: object) -> None:
        self.received.append(signum)

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def _terminal_shares_signals(pid: int) -> bool:
    """True when a terminal Ctrl-C already reached the agent (same foreground process group)."""
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp() == os.getpgid(pid)
    except OSError:
        return False


class _Session:
    """One running session: the loop that drains events and watches the agent."""

    def __init__(self, ledger: Ledger, observer: Observer | None, session_id: str, principal: str) -> None:
        self.ledger, self.observer = ledger, observer
        self.session_id, self.principal = session_id, principal
        self.root_pid = 0
        self.init_pid = 0
        self.lifeline = -1
        self.ended = False
        self.counts = {"events": 0, "denied": 0, "dropped": 0}
        # for the completeness nets at session end: what the observer already explains
        self.denials: list[Event] = []
        self.mutated: set[str] = set()
        self.wake = WakeLatency()

    def note(self, action: str, resource: str, **details: object) -> None:
        self.ledger.append([Event(action=action, resource=resource, decision="info",
                                  session_id=self.session_id, principal=self.principal, pid=os.getpid(),
                                  source="aegis", details=details)])

    def flush(self) -> None:
        if self.observer is None:
            return
        while True:
            # the root's exit is recorded from waitpid, with its status or signal
            batch = self.observer.drain_encoded(DRAIN_BATCH, skip_exit_of=self.root_pid)
            if batch.segments:
                self.ledger.append_encoded(batch.segments)
                self.counts["events"] += batch.count
                denials = [e for e in batch.notable if e.decision == "deny"]
                self.counts["denied"] += len(denials)
                self.denials.extend(denials)
                self.mutated.update(e.resource for e in batch.notable if e.action in MUTATING_ACTIONS)
            dropped = self.observer.take_dropped()
            if dropped:
                self.counts["dropped"] += dropped
                self.ledger.append([Event(action="Drop", resource=self.observer.name, decision="info",
                                          session_id=self.session_id, principal=self.principal,
                                          source=self.observer.name, details={"count": dropped},
                                          reason="observation ring full")])
            if batch.taken < DRAIN_BATCH:
                return

    def wait_root(self, pid: int, signals: _Signals) -> int:
        """Drain until the root process exits; returns its wait status (sent by the session init)."""
        poller = select.poll()
        poller.register(self.lifeline, select.POLLIN)
        kill_at: float | None = None
        handled = 0
        if self.observer is not None and self.observer.name == "seccomp":
            self.wake.begin(time.monotonic())
        while not poller.poll(DRAIN_INTERVAL_S * 1000):
            self.flush()
            if self.observer is not None:
                self.wake.update(self.observer.handoffs(), time.monotonic())
            for signum in signals.received[handled:]:
                handled += 1
                if signum == signal.SIGINT and _terminal_shares_signals(pid):
                    continue  # the agent got the same Ctrl-C and decides for itself
                os.kill(pid, signal.SIGTERM if signum == signal.SIGHUP else signum)
                kill_at = kill_at or time.monotonic() + INTERRUPT_GRACE_S
            if kill_at is not None and time.monotonic() >= kill_at:
                os.kill(pid, signal.SIGKILL)
        self.end_wake_latency()
        message = os.read(self.lifeline, 4)
        if len(message) != 4:
            raise AegisError("the session init ended before the agent (killed from outside?)")
        return struct.unpack("i", message)[0]

    def end_wake_latency(self) -> None:
        """Drop the low wake-up latency request (see aegis.sandbox.wake_latency); its time is counted."""
        self.wake.release(time.monotonic())
        if self.wake.held_s:
            self.counts["low_latency_ms"] = round(self.wake.held_s * 1000)

    def end_init(self) -> None:
        """Hang up on the session init and reap it: with a PID namespace, whatever is
        still running in the session is killed by the kernel as the init exits."""
        self.end_wake_latency()
        if self.lifeline >= 0:
            os.close(self.lifeline)
            self.lifeline = -1
        if self.init_pid:
            os.waitpid(self.init_pid, 0)
            self.init_pid = 0

    def end_stragglers(self) -> tuple[list[int], list[int]]:
        """End every process of the session still alive after the root exited (daemons).
        Returns the processes ended and those that would not die before the deadline."""
        ended: list[int] = []
        start = time.monotonic()
        pause = 0.001  # the usual wait is the observer's last read, a millisecond or two: look again soon
        while True:
            self.flush()
            kids = children_of(self.init_pid)
            if not kids and (self.observer is None or self.observer.finished()):
                return ended, []
            if time.monotonic() - start >= STRAGGLER_DEADLINE_S:
                return ended, kids
            sig = signal.SIGTERM if time.monotonic() - start < STRAGGLER_GRACE_S else signal.SIGKILL
            for kid in kids:
                if kid not in ended:
                    ended.append(kid)
                try:
                    os.kill(kid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(pause)  # the init reaps them
            pause = min(pause * 2, DRAIN_INTERVAL_S)


def _residual_decider(policy: SessionPolicy, principal: str, session_id: str):  # noqa: ANN202 (ResidualDecider)
    """cedarpy for what the table leaves open; the engine is built on the first such
    request (from the policy texts the session started with), so start-up never pays for it."""
    engines: list[object] = []

    def decide(action: Action, path: str, pid: int, exe: str) -> tuple[bool, str | None, Sequence[str]]:
        if not engines:
            from aegis.policy.engine import PolicyEngine

            engines.append(PolicyEngine.from_sources(policy.sources, principal))
        d = engines[0].authorize(action, path, {"pid": pid, "executable": exe, "session": session_id})
        return d.allowed, (d.policy_ids[0] if d.policy_ids else None), d.errors
    return decide


def load_table(policy: SessionPolicy) -> object:
    """The C decision table (``struct aegis_dtable *``, freed when collected)."""
    raw = lib.aegis_dtable_load(policy.table_blob, len(policy.table_blob))
    if raw == ffi.NULL:
        raise AegisError("the compiled decision table was rejected by the C loader")
    return ffi.gc(raw, lib.aegis_dtable_free)


def snapshot_roots(policy: SessionPolicy) -> list[str]:
    """The snapshot net's roots besides the project: directories the kernel lets the
    agent write below, except the whole filesystem and shared scratch space (walking
    and hashing those at every session start and end would cost more than the session)."""
    return [p for p, access in policy.landlock_rules
            if access & LANDLOCK_WRITES and os.path.isdir(p)
            and p not in SCRATCH_DIRS and not any(p == d or p.startswith(d + "/") for d in SYSTEM_DIRS)]


def _completeness_nets(config: Config, policy: SessionPolicy, session_id: str,
                       snapshot: bool) -> tuple[DenialHarvester, SnapshotNet | None]:
    """Started before the agent: the Landlock denial harvester and the snapshot net
    (the snapshot first: if walking fails, no harvester thread is left running)."""
    snap = SnapshotNet.for_config(config, extra_roots=snapshot_roots(policy)) \
        if snapshot and config.snapshot_enabled else None
    return DenialHarvester.start(session_id), snap


def run_session(config: Config, command: Sequence[str], *, mode: str = "run",
                ring_capacity: int = RING_CAPACITY, ring_wait_ms: int = RING_WAIT_MS,
                open_on_behalf: bool = True, snapshot: bool = True, observer_mode: str | None = None,
                env: Mapping[str, str] | None = None,
                on_spawn: Callable[[str, int], None] | None = None) -> SessionResult:
    """Run ``command`` under ``config``'s policies; returns when every process of it has ended.

    ``env`` is the agent's environment (default: this process's). ``on_spawn(session_id,
    pid)`` is called as soon as the agent process exists (aegis.api reports both early).

    ``ring_capacity`` / ``ring_wait_ms`` size the observation ring and how long a full
    ring may delay the agent before a record is dropped (and counted). ``open_on_behalf``
    (the default) makes allowed opens race-free; turning it off exists to measure and
    demonstrate what it protects against. ``snapshot=False`` skips the snapshot net
    (`--no-snapshot`); the config's ``snapshot.enabled`` can also turn it off. ``observer_mode``
    (`--observer`) overrides the config's ``observer.mode``."""

    exe = resolve_command(command)
    policy = session_policy(config, landlock_abi())
    table = load_table(policy)
    mechanism = select_observer(observer_mode or config.observer)
    net_rules = parse_allowed_network(config.allowed_network)
    net = network_mode(policy, config.allowed_network)
    hidden = hidden_directories(config, os.getcwd())
    spec = seccomp_spec()
    if mechanism == "fanotify":
        check_fanotify_session(config, policy, hidden)
        spec = dataclasses.replace(spec, notified=[n for n in spec.notified if n in SUPERVISED_BESIDE_FANOTIFY])
    bpf = build_filter(spec, notify=mechanism != "inotify", deny_datagram=net != NETWORK_OPEN)

    contained = containment()
    ledger = open_ledger(config)
    policy_hash = ledger.record_policy_snapshot(policy.files)
    session_id = ledger.begin_session(
        command=list(command), cwd=os.getcwd(), policy_hash=policy_hash, observer=mechanism,
        config=config.name,
        details={"mode": mode, "landlock_abi": policy.landlock_abi, "network": net,
                 "not_enforced_by_kernel": policy.not_enforced_by_kernel, "pid_attribution": mechanism != "inotify",
                 "containment": CONTAINMENT_NAMES[contained]})
    argv, _keep_argv = _cstrings(command)
    envp, _keep_env = _cstrings([f"{k}={v}" for k, v in (os.environ if env is None else env).items()])
    listener, control, lifeline = ffi.new("int *", -1), ffi.new("int *", -1), ffi.new("int *", -1)
    in_cgroup = ffi.new("int *", 0)
    signals = _Signals()
    observer: Observer | None = None
    cgroup: SessionCgroup | None = None
    session = _Session(ledger, None, session_id, config.name)
    ruleset_fd = -1
    harvester: DenialHarvester | None = None
    try:
        harvester, snap = _completeness_nets(config, policy, session_id, snapshot)
        ruleset_fd = build_ruleset(policy, net, [r.port for r in net_rules if r.port])
        c_hidden, _keep_hidden = _cstrings(hidden)
        if mechanism == "fanotify":
            from aegis.observer.fanotify import SessionCgroup

            cgroup = SessionCgroup(session_id)  # the agent is born in it: no migration to wait for
        cgroup_fd = cgroup.open_directory() if cgroup is not None else -1
        try:
            init = lib.aegis_spawn(os.fsencode(exe), argv, envp, os.fsencode(os.getcwd()), ruleset_fd, cgroup_fd,
                                   bpf, contained, c_hidden, len(hidden), listener, control, lifeline, in_cgroup)
        finally:
            if cgroup_fd >= 0:
                os.close(cgroup_fd)
        if init < 0:
            raise AegisError(f"cannot start {command[0]}: {errno_name(init)} while setting up the sandbox")
        session.init_pid, session.lifeline = init, lifeline[0]
        agent = children_of(init)  # the agent, waiting for its release: the init's only child
        if not agent:
            raise AegisError(f"cannot start {command[0]}: the sandboxed process ended before its release")
        pid = session.root_pid = agent[0]
        harvester.attach(pid)
        if on_spawn is not None:
            on_spawn(session_id, pid)
        try:
            if mechanism in ("seccomp", "fanotify"):
                observer = SeccompObserver(
                    listener[0], session_id=session_id, principal=config.name, policy_ids=policy.policy_ids,
                    table=table, residual=_residual_decider(policy, config.name, session_id),
                    protected_paths=protected_paths(config), net_rules=net_rules, ring_capacity=ring_capacity,
                    ring_wait_ms=ring_wait_ms, open_on_behalf=open_on_behalf)
            if mechanism == "fanotify":
                from aegis.observer.fanotify import FanotifyObserver
                from aegis.observer.pair import ObserverPair

                recorder = FanotifyObserver(session_id=session_id, principal=config.name, cgroup=cgroup)
                observer = ObserverPair(recorder, observer)
                # while it waits before exec; moved into the cgroup on kernels that could not start it there
                recorder.attach(pid, in_cgroup=bool(in_cgroup[0]))
            elif mechanism == "inotify":
                from aegis.observer.inotify import InotifyObserver

                observer = InotifyObserver(config.project_dir, session_id=session_id, principal=config.name)
        except BaseException:
            session.end_init()
            raise
        session.observer = observer
        exec_error = lib.aegis_spawn_release(control[0])
        status = session.wait_root(pid, signals)
        session.flush()
        code = os.waitstatus_to_exitcode(status)
        sig = -code if code < 0 else None
        exit_code = 128 + sig if sig else code
        ended, surviving = session.end_stragglers()
        session.end_init()
        session.flush()
        ledger.append([Event(action="ProcessExit", resource=exe, decision="info", session_id=session_id,
                             principal=config.name, pid=pid, ppid=os.getpid(), executable=exe,
                             source="waitpid",
                             details={"exit_code": None if sig else code, "signal": sig,
                                      "exec_error": errno_name(exec_error) if exec_error else None})])
        if ended:
            session.note("ObserverNote", "session end", ended_processes=ended,
                         reason="still running after the agent exited; ended with the session")
        if surviving:
            session.note("ObserverNote", "session end", surviving_processes=surviving,
                         reason="would not die at session end (uninterruptible?); still under the filter, "
                                "whose notified syscalls now fail")
        interrupted = bool(signals.received) or sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        state = "interrupted" if interrupted else "finished"
        if observer is not None:
            observer.stop()
            session.flush()
            session.counts.update(observer.stats())
        if snap is not None:
            ledger.append(snap.finish(session.mutated, session_id=session_id))
        ledger.append(harvester.stop(recorded=session.denials))
        harvester = None
        ledger.end_session(session_id, exit_code=exit_code, signal=sig, state=state, counts=session.counts)
        session.ended = True
        if exec_error:
            denied = exec_error == -errno.EACCES
            raise AegisError(f"cannot run {command[0]}: {os.strerror(-exec_error)}"
                             + (" (denied by policy; see `aegis audit query`)" if denied else ""),
                             exit_code=126 if denied else 127)
        return SessionResult(session_id, exit_code, sig, state, mechanism, dict(session.counts))
    except BaseException:
        session.end_init()
        if observer is not None:
            observer.stop()
            session.flush()
        if cgroup is not None:
            cgroup.remove()  # the observer's once it exists (then already removed); before that, ours
        if harvester is not None and harvester.available:
            harvester.stop()  # stops its reader thread; the session is being abandoned
        if not session.ended:
            ledger.end_session(session_id, exit_code=None, signal=None, state="interrupted",
                               counts=session.counts)
        raise
    finally:
        signals.restore()
        for fd in (listener[0], ruleset_fd):
            if fd >= 0:
                os.close(fd)
        ledger.close()
