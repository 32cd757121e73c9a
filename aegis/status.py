"""Health of one configuration (`aegis status NAME`), as a list of checked items.

Each item is ``ok``, ``warn`` (worth knowing, nothing broken) or ``fail``. The
checks run in order and later ones are skipped when what they need is missing
(no policies without a config), so every failure names its own cause.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from aegis.config import Config, load_config
from aegis.errors import AegisError
from aegis.observer import auto_choice
from aegis.policy.engine import PolicyEngine, PolicyError
from aegis.report.collect import utc
from aegis.sandbox import capabilities

OK, WARN, FAIL = "ok", "warn", "fail"
# Ledgers up to this size are verified in full by `status` (about 0.4 s); larger ones take
# the fast path from the newest valid checkpoint.
FULL_VERIFY_LIMIT = 200_000


@dataclass(frozen=True)
class StatusItem:
    name: str
    level: str  # ok | warn | fail
    summary: str
    data: dict

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _when(ts_ns: int | None) -> str:
    return utc(ts_ns).strftime("%Y-%m-%d %H:%M:%SZ") if ts_ns else "-"


def check_config(name: str) -> tuple[StatusItem, Config | None]:
    try:
        config = load_config(name)
    except AegisError as exc:
        return StatusItem("config", FAIL, str(exc), {}), None
    return StatusItem(
        "config",
        OK,
        f"{config.file} is valid",
        {
            "file": str(config.file),
            "project_dir": str(config.project_dir),
            "isolation": config.isolation,
            "observer": config.observer,
        },
    ), config


def check_policies(config: Config) -> StatusItem:
    try:
        engine = PolicyEngine.from_files(config.policy_files(), config.name)
    except PolicyError as exc:
        first = exc.problems[0] if exc.problems else str(exc)
        return StatusItem(
            "policies",
            FAIL,
            f"{len(exc.problems)} problem(s); first: {first}",
            {"problems": [str(p) for p in exc.problems]},
        )
    except AegisError as exc:
        return StatusItem("policies", FAIL, str(exc), {})
    ids = [p.id for p in engine.policies]
    if not ids:
        return StatusItem("policies", WARN, "no policies: everything is denied (default-deny)", {"ids": []})
    return StatusItem("policies", OK, f"{len(ids)} valid: {', '.join(ids)}", {"count": len(ids), "ids": ids})


def check_ledger(config: Config) -> tuple[StatusItem, StatusItem]:
    """(integrity item, last-session item)."""
    from aegis.ledger import open_ledger

    if not config.ledger_path.exists():
        return (
            StatusItem(
                "ledger",
                WARN,
                f"no ledger yet at {config.ledger_path} (nothing recorded)",
                {"path": str(config.ledger_path)},
            ),
            StatusItem("last-session", WARN, "no sessions recorded", {}),
        )
    try:
        ledger = open_ledger(config)
    except AegisError as exc:
        return StatusItem("ledger", FAIL, str(exc), {}), StatusItem(
            "last-session", WARN, "ledger unreadable", {}
        )
    try:
        # Up to FULL_VERIFY_LIMIT entries (well under a second) every entry is rehashed; beyond,
        # the fast path checks every checkpoint's signature and position but rehashes only the
        # entries after the newest valid one (`aegis audit verify` is always full).
        full = ledger.size() <= FULL_VERIFY_LIMIT
        result = ledger.verify(since_checkpoint=not full)
        sessions = ledger.sessions()
    finally:
        ledger.close()
    data = {"path": str(config.ledger_path), "scope": "full" if full else "since-checkpoint", **result.to_dict()}
    if result.ok:
        integrity = StatusItem(
            "ledger",
            OK,
            (f"verified (full chain): {result.entries_checked} entries, " if full else
             f"verified since the newest valid checkpoint: {result.entries_checked} entries rehashed, "
             f"{result.trusted_entries} covered by it, ") + f"{result.checkpoints_checked} checkpoints",
            data,
        )
    else:
        integrity = StatusItem(
            "ledger",
            FAIL,
            f"integrity check failed at entry {result.first_bad_seq}: {result.reason}: {result.detail}",
            data,
        )
    if not sessions:
        return integrity, StatusItem("last-session", WARN, "no sessions recorded", {})
    last = max(sessions, key=lambda s: (s.start_ns, s.start_seq))
    outcome = (
        f"exit {last.exit_code}"
        if last.exit_code is not None
        else f"signal {last.signal}"
        if last.signal
        else last.state
    )
    summary = f"{last.id} {last.state} ({outcome}), started {_when(last.start_ns)}: {' '.join(last.command)}"
    level = WARN if last.state == "interrupted" else OK
    return integrity, StatusItem("last-session", level, summary, last.to_dict())


def check_capabilities(config: Config) -> tuple[StatusItem, StatusItem]:
    """(enforcement item, observer item) for this machine and this config's modes."""
    checks = {c.name: c for c in capabilities.probe()}
    missing = [c.name for c in checks.values() if c.required and not c.ok]
    if config.isolation == "none":
        enforcement = StatusItem(
            "enforcement",
            WARN,
            "isolation.mode is 'none': policies are not kernel-enforced",
            {"mode": config.isolation, "missing": missing},
        )
    elif missing:
        enforcement = StatusItem(
            "enforcement",
            FAIL,
            f"kernel enforcement not possible: missing {', '.join(missing)} (see `aegis setup`)",
            {"mode": config.isolation, "missing": missing},
        )
    else:
        enforcement = StatusItem(
            "enforcement",
            OK,
            f"{config.isolation}: possible ({checks['landlock'].value})",
            {"mode": config.isolation, "missing": []},
        )
    seccomp, fanotify = checks["seccomp-user-notif"].ok, checks["fanotify"].ok
    mode = config.observer
    mechanisms = {"seccomp": seccomp, "fanotify": fanotify, "inotify": True}
    available = {**mechanisms, "none": True, "auto": True}[mode]
    chosen = auto_choice(mechanisms.__getitem__) if mode == "auto" else mode
    data = {"mode": mode, "seccomp": seccomp, "fanotify": fanotify}
    if mode == "none":
        observer = StatusItem("observer", WARN, "observer.mode is 'none': actions are not observed", data)
    elif not available:
        observer = StatusItem(
            "observer", FAIL, f"observer {mode!r} is not available on this machine (see `aegis setup`)", data
        )
    else:
        observer = StatusItem(
            "observer", OK, f"{mode}" + (f" (would use {chosen})" if mode == "auto" else ""), data
        )
    return enforcement, observer


def config_status(name: str) -> list[StatusItem]:
    """Every health item of config ``name``, in order."""
    item, config = check_config(name)
    if config is None:
        return [item]
    return [item, check_policies(config), *check_ledger(config), *check_capabilities(config)]


def healthy(items: list[StatusItem]) -> bool:
    return all(i.level != FAIL for i in items)
