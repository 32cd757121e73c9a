"""The Landlock ruleset for a compiled policy: a sound over-approximation.

Landlock only grants rights below directories or on files, with no exceptions and
no globs, so each permit's matcher is widened to the set of path anchors that
contains every path it can match (``"/w/*.py"`` -> everything below ``/w``) and
forbids are ignored unless they forbid an action outright. The result never denies
what Cedar allows; what it lets through beyond the policy (forbid exceptions,
glob shapes) is decided by the supervisor from the decision table.

Where a right is checked matters: reading, writing, truncating and executing are
checked on the file itself (a rule on it or an ancestor), creating and removing
on the parent directory. The kernel also checks rights Cedar never sees (an
``O_RDWR`` open needs read, ``execve`` reads the ELF interpreter), so those are
granted too (``notes`` says where). ``for_abi`` masks rights the running kernel
lacks and says what was dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from aegis.actions import Action

if TYPE_CHECKING:  # the compiler imports cedarpy; `aegis run` needs only this module's constants
    from aegis.policy.compiler import Matcher, Rule

# uapi linux/landlock.h filesystem rights
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13       # ABI 2
FS_TRUNCATE = 1 << 14    # ABI 3
FS_IOCTL_DEV = 1 << 15   # ABI 5
NET_BIND_TCP = 1 << 0    # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

FS_NAMES = {FS_EXECUTE: "execute", FS_WRITE_FILE: "write_file", FS_READ_FILE: "read_file",
            FS_READ_DIR: "read_dir", FS_REMOVE_DIR: "remove_dir", FS_REMOVE_FILE: "remove_file",
            FS_MAKE_CHAR: "make_char", FS_MAKE_DIR: "make_dir", FS_MAKE_REG: "make_reg",
            FS_MAKE_SOCK: "make_sock", FS_MAKE_FIFO: "make_fifo", FS_MAKE_BLOCK: "make_block",
            FS_MAKE_SYM: "make_sym", FS_REFER: "refer", FS_TRUNCATE: "truncate", FS_IOCTL_DEV: "ioctl_dev"}

ABI_FS = {1: (1 << 13) - 1}
ABI_FS[2] = ABI_FS[1] | FS_REFER
ABI_FS[3] = ABI_FS[4] = ABI_FS[2] | FS_TRUNCATE
ABI_FS[5] = ABI_FS[6] = ABI_FS[7] = ABI_FS[3] | FS_IOCTL_DEV
MAX_ABI = 7

FS_MAKE_FILES = FS_MAKE_REG | FS_MAKE_SYM | FS_MAKE_FIFO | FS_MAKE_SOCK | FS_MAKE_CHAR | FS_MAKE_BLOCK
READS = FS_READ_FILE | FS_READ_DIR
# Per action: (rights checked on the path itself, rights checked on its parent directory).
# Reads: opening a directory O_RDONLY needs read_dir and a file read_file, whichever
# name the observer gives the open, so both read actions get both.
# FileWrite: O_RDWR also needs read_file; a rename onto an existing file needs
# remove_file in the target's directory.
ACTION_RIGHTS: dict[Action, tuple[int, int]] = {
    Action.FileRead: (READS, 0),
    Action.DirList: (READS, 0),
    Action.FileWrite: (FS_WRITE_FILE | FS_TRUNCATE | FS_READ_FILE, FS_MAKE_FILES | FS_REMOVE_FILE),
    Action.FileDelete: (0, FS_REMOVE_FILE | FS_REMOVE_DIR),
    Action.DirCreate: (0, FS_MAKE_DIR),
}
# Rights this compiler restricts; refer and ioctl_dev stay unhandled (Cedar has no
# action for them), execute is handled only when no ProcessSpawn is permitted.
HANDLED_FS = (READS | FS_WRITE_FILE | FS_TRUNCATE | FS_MAKE_FILES | FS_MAKE_DIR
              | FS_REMOVE_FILE | FS_REMOVE_DIR)
# Where the kernel itself opens ELF interpreters (read_file is checked on them).
EXEC_SUPPORT_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin")


@dataclass(frozen=True, order=True)
class Anchor:
    """A set of paths: ``path`` itself (``exact``), or what lies strictly below it
    (``below``), or both (``tree``)."""

    path: str
    kind: str  # "exact" | "below" | "tree"

    def covers(self, other: Anchor) -> bool:
        same = other.path == self.path
        under = _under(other.path, self.path)
        if self.kind == "tree":
            return same or under
        if self.kind == "below":
            return under or (same and other.kind == "below")
        return same and other.kind == "exact"


EVERYTHING = (Anchor("/", "tree"),)


def _under(child: str, parent: str) -> bool:
    return child != "/" if parent == "/" else child.startswith(parent + "/")


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _normalise(anchors: list[Anchor]) -> tuple[Anchor, ...]:
    out: list[Anchor] = []
    for a in sorted(set(anchors), key=lambda x: (len(x.path), x.kind != "tree", x.path)):
        if not any(b.covers(a) for b in out):
            out.append(a)
    return tuple(sorted(out))


def anchors(m: Matcher) -> tuple[Anchor, ...]:
    """Anchors covering every canonical path ``m`` can match (residual = anything)."""
    from aegis.policy.compiler import And, Const, Or, PathEq, PathLike

    if isinstance(m, Const):
        return EVERYTHING if m.value else ()
    if isinstance(m, PathEq):
        return (Anchor(m.path, "exact"),) if m.path.startswith("/") else ()
    if isinstance(m, PathLike):
        literal = m.segments[0]
        if len(m.segments) == 1:
            return (Anchor(literal, "exact"),) if literal.startswith("/") else ()
        if not literal.startswith("/"):
            return EVERYTHING
        return (Anchor(literal[:literal.rindex("/")] or "/", "below"),)
    if isinstance(m, Or):
        return _normalise([*anchors(m.left), *anchors(m.right)])
    if isinstance(m, And):
        left, right = anchors(m.left), anchors(m.right)
        both = [b if a.covers(b) else a for a in left for b in right if a.covers(b) or b.covers(a)]
        return _normalise(both)
    return EVERYTHING  # Not, Residual: no useful bound


def ports(m: Matcher) -> frozenset[int] | None:
    """TCP ports a NetConnect matcher (on ``"host:port"``) can allow; None = any."""
    from aegis.policy.compiler import And, Const, Or, PathEq, PathLike, PortEq

    if isinstance(m, Const):
        return None if m.value else frozenset()
    if isinstance(m, PortEq):
        return frozenset({m.port})
    if isinstance(m, (PathEq, PathLike)):
        last = m.path if isinstance(m, PathEq) else m.segments[-1]
        host, sep, port = last.rpartition(":")
        exact = isinstance(m, PathEq) or len(m.segments) == 1
        if sep and port.isdigit() and int(port) <= 65535 and (host or not exact):
            return frozenset({int(port)})
        return frozenset() if exact else None
    if isinstance(m, Or):
        left, right = ports(m.left), ports(m.right)
        return None if left is None or right is None else left | right
    if isinstance(m, And):
        left, right = ports(m.left), ports(m.right)
        return right if left is None else left if right is None else left & right
    return None


def _exact(m: Matcher, whole_directories: bool) -> bool:
    """True when ``anchors(m)`` is exactly the set of paths ``m`` matches. With
    ``whole_directories``, single files are not exact either: rights checked on the
    parent directory (creating, removing) then reach its other entries too."""
    from aegis.policy.compiler import Const, Or, PathEq, PathLike

    if isinstance(m, Const):
        return True
    if isinstance(m, PathEq):
        return m.path.startswith("/") and not whole_directories
    if isinstance(m, PathLike):
        if len(m.segments) == 1:
            return m.segments[0].startswith("/") and not whole_directories
        return len(m.segments) == 2 and m.segments[0].startswith("/") and m.segments[0].endswith("/") \
            and m.segments[1] == ""
    if isinstance(m, Or):
        return _exact(m.left, whole_directories) and _exact(m.right, whole_directories)
    return False


def looser_actions(rules: dict[Action, list[Rule]]) -> list[str]:
    """File actions for which the Landlock ruleset allows more than the policy: each
    permit must bound exactly what it matches, no forbid may carve inside a permitted
    region, reads must cover the write regions (which get read_file), and execution
    must be permitted everywhere or nowhere (the kernel does not restrict it)."""
    from aegis.policy.compiler import TRUE

    looser = []
    for action, (_, on_parent) in ACTION_RIGHTS.items():
        mine = rules.get(action, [])
        region = permitted_region(mine)
        if region and (any(r.effect == "forbid" and r.matcher != TRUE for r in mine)
                       or not all(_exact(r.matcher, bool(on_parent)) for r in mine if r.effect == "permit")):
            looser.append(action.name)
    reads = permitted_region(rules.get(Action.FileRead, []))
    writes = permitted_region(rules.get(Action.FileWrite, []))
    if Action.FileRead.name not in looser and not all(any(r.covers(w) for r in reads) for w in writes):
        looser.append(Action.FileRead.name)
    spawn = rules.get(Action.ProcessSpawn, [])
    region = permitted_region(spawn)
    if region and (region != EVERYTHING or any(r.effect == "forbid" and r.matcher != TRUE for r in spawn)):
        looser.append(Action.ProcessSpawn.name)
    return looser


def permitted_region(rules: list[Rule]) -> tuple[Anchor, ...]:
    """Anchors covering every path some permit can allow (empty if a forbid is unconditional)."""
    from aegis.policy.compiler import TRUE

    if any(r.effect == "forbid" and r.matcher == TRUE for r in rules):
        return ()
    return _normalise([a for r in rules if r.effect == "permit" for a in anchors(r.matcher)])


@dataclass(frozen=True)
class LandlockSpec:
    """What to hand to ``landlock_create_ruleset`` / ``landlock_add_rule``.

    ``rules`` are ``(path, access)``; a path that does not exist when the ruleset is
    built is granted at its nearest existing ancestor (``aegis_landlock_add_path``),
    which only widens. ``notes`` explains each place the kernel is looser than the
    policy; ``dropped`` (after ``for_abi``) what this kernel cannot enforce.
    """

    handled_fs: int
    rules: list[tuple[str, int]]
    handled_net: int = 0
    net_ports: list[tuple[int, int]] = field(default_factory=list)
    scoped: int = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    abi: int = MAX_ABI
    notes: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    looser: list[str] = field(default_factory=list)  # file actions the kernel allows beyond the policy

    def for_abi(self, abi: int) -> LandlockSpec:
        """This spec restricted to what Landlock ABI ``abi`` can express."""
        if abi < 1:
            return replace(self, handled_fs=0, rules=[], handled_net=0, net_ports=[], scoped=0, abi=0,
                           dropped=[*self.dropped, "Landlock unavailable: no kernel file or network rules"])
        mask = ABI_FS[min(abi, MAX_ABI)]
        dropped = list(self.dropped)
        lost = self.handled_fs & ~mask
        if lost:
            dropped.append(f"ABI {abi} lacks fs rights: {', '.join(rights_names(lost))} (supervisor only)")
        if abi == 1:
            dropped.append("ABI 1 always denies cross-directory rename and link (stricter than the policy)")
        handled_net, net_ports = self.handled_net, self.net_ports
        if abi < 4 and handled_net:
            dropped.append(f"ABI {abi} lacks TCP rules: NetConnect is enforced by the supervisor only")
            handled_net, net_ports = 0, []
        scoped = self.scoped
        if abi < 6 and scoped:
            dropped.append(f"ABI {abi} lacks scopes: signals and abstract unix sockets are not confined")
            scoped = 0
        handled_fs = self.handled_fs & mask
        rules = [(p, a & mask) for p, a in self.rules if a & mask]
        # A right granted at the root is granted everywhere: leaving it unhandled is the
        # same ruleset, and spares every access the walk up to the root that a handled
        # right costs (a sixth of `grep -r`'s kernel time under a permit-all policy).
        # Unless nothing would be left to handle: then there would be no domain at all.
        everywhere = dict(rules).get("/", 0)
        if handled_fs & ~everywhere or handled_net or scoped:
            handled_fs &= ~everywhere
            rules = [(p, a & ~everywhere) for p, a in rules if a & ~everywhere]
        return replace(self, handled_fs=handled_fs, rules=rules, handled_net=handled_net,
                       net_ports=net_ports, scoped=scoped, abi=abi, dropped=dropped)

    def kernel_view(self, action: Action) -> list[str]:
        """What the kernel enforces for ``action``, one line per rule or fact."""
        free = ["not restricted by the kernel"]
        if action is Action.NetConnect:
            if not self.handled_net:
                return free
            allowed = [f"TCP connect allowed to port {p}" for p, _ in self.net_ports]
            return allowed or ["every TCP connect denied"]
        if action is Action.ProcessSpawn:
            return ["execute denied everywhere"] if self.handled_fs & FS_EXECUTE else free
        on_self, on_parent = ACTION_RIGHTS.get(action, (0, 0))
        rights = (on_self | on_parent) & self.handled_fs
        if action is Action.FileWrite:
            rights &= ~FS_READ_FILE  # granted for O_RDWR, shown under FileRead
        if not rights:
            return free
        lines = [f"{p} (and below): {','.join(rights_names(a & rights))}"
                 for p, a in self.rules if a & rights]
        return lines or [f"{','.join(rights_names(rights))} denied everywhere"]

    def to_json(self) -> dict[str, object]:
        return {"abi": self.abi, "handled_fs": rights_names(self.handled_fs),
                "rules": [{"path": p, "access": rights_names(a)} for p, a in self.rules],
                "handled_net": self.handled_net, "net_ports": [list(x) for x in self.net_ports],
                "scoped": self.scoped, "notes": self.notes, "dropped": self.dropped, "looser": self.looser}


def rights_names(mask: int) -> list[str]:
    return [name for bit, name in FS_NAMES.items() if mask & bit]


def landlock_spec(rules: dict[Action, list[Rule]]) -> LandlockSpec:
    """The ruleset for a compiled policy (ABI 7 rights; mask with ``for_abi``)."""
    from aegis.policy.compiler import TRUE

    grants: dict[str, int] = {}
    notes: list[str] = []

    def grant(region: tuple[Anchor, ...], on_self: int, on_parent: int) -> None:
        for a in region:
            if on_self:
                grants[a.path] = grants.get(a.path, 0) | on_self
            if on_parent:
                where = a.path if a.kind == "below" else _parent(a.path)
                grants[where] = grants.get(where, 0) | on_parent

    for action, (on_self, on_parent) in ACTION_RIGHTS.items():
        region = permitted_region(rules.get(action, []))
        grant(region, on_self, on_parent)
        if any(r.effect == "forbid" and r.matcher != TRUE for r in rules.get(action, [])) and region:
            notes.append(f"{action.name}: forbids inside permitted trees are enforced by the supervisor")
    if permitted_region(rules.get(Action.FileWrite, [])):
        notes.append("FileWrite: write regions also get read_file (an O_RDWR open needs it); "
                     "FileRead there is enforced by the supervisor")
    handled = HANDLED_FS
    spawn = permitted_region(rules.get(Action.ProcessSpawn, []))
    if spawn:
        # execve reads the executable and the ELF interpreter with read_file; the
        # interpreter (and a script's #! interpreter) is opened by the kernel, unseen by Cedar.
        grant(spawn, FS_READ_FILE, 0)
        grant(tuple(Anchor(d, "tree") for d in EXEC_SUPPORT_DIRS if os.path.isdir(d)), FS_READ_FILE, 0)
        notes.append("ProcessSpawn: execute is not restricted by the kernel (interpreters need it too); "
                     "the supervisor enforces execve; executables and system library dirs get read_file")
    else:
        handled |= FS_EXECUTE
    net = _net_ports(rules.get(Action.NetConnect, []))
    handled_net = 0 if net is None else NET_CONNECT_TCP
    if net is None:
        notes.append("NetConnect: not expressible as TCP ports; enforced by the supervisor")
    merged = _prune({p: a & handled for p, a in grants.items() if a & handled})
    return LandlockSpec(handled_fs=handled, rules=merged, handled_net=handled_net,
                        net_ports=[(p, NET_CONNECT_TCP) for p in sorted(net or ())], notes=notes,
                        looser=looser_actions(rules))


def _prune(grants: dict[str, int]) -> list[tuple[str, int]]:
    """Rules sorted by path, minus rights an ancestor's rule already grants (Landlock
    accumulates rights down the hierarchy)."""
    out = []
    for path, access in sorted(grants.items()):
        inherited = 0
        for other, other_access in grants.items():
            if _under(path, other):
                inherited |= other_access
        if access & ~inherited:
            out.append((path, access & ~inherited))
    return out


def _net_ports(rules: list[Rule]) -> frozenset[int] | None:
    from aegis.policy.compiler import TRUE

    if any(r.effect == "forbid" and r.matcher == TRUE for r in rules):
        return frozenset()
    out: frozenset[int] = frozenset()
    for r in rules:
        if r.effect == "permit":
            found = ports(r.matcher)
            if found is None:
                return None
            out |= found
    return out


def restrict_self(spec: LandlockSpec, flags: int = 0) -> None:
    """Apply ``spec`` to the calling process, irreversibly (sets no_new_privs).

    For a freshly forked child or a test helper process; the spawner applies the
    same ruleset through ``aegis_landlock_build_ruleset`` before exec.
    """
    from aegis.native import errno_name, ffi, lib

    paths = [ffi.new("char[]", p.encode("utf-8", "surrogateescape")) for p, _ in spec.rules]
    fd = lib.aegis_landlock_build_ruleset(
        spec.handled_fs, spec.handled_net, spec.scoped,
        ffi.new("const char *[]", paths), ffi.new("uint64_t[]", [a for _, a in spec.rules]), len(paths),
        ffi.new("uint64_t[]", [p for p, _ in spec.net_ports]),
        ffi.new("uint64_t[]", [a for _, a in spec.net_ports]), len(spec.net_ports))
    if fd < 0:
        raise OSError(-fd, f"landlock ruleset: {errno_name(fd)}")
    try:
        rc = lib.aegis_landlock_enforce(fd, flags)
    finally:
        os.close(fd)
    if rc < 0:
        raise OSError(-rc, f"landlock_restrict_self: {errno_name(rc)}")

