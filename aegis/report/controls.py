"""Which report figures evidence which compliance controls.

Each control names the report sections that evidence it and says, in one
sentence, how. The text is written for an auditor reading the report, so it
describes what the figures show, not how Aegis works inside.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Control:
    framework: str
    control: str
    title: str
    sections: tuple[str, ...]  # keys of the report sections that evidence it
    how: str


CONTROLS: tuple[Control, ...] = (
    Control(
        "SOC 2",
        "CC6.1",
        "Logical access security",
        ("actions", "policies_in_force", "policy_changes"),
        "Every file, process, network and tool action was decided by the Cedar policies listed, "
        "default-deny; allow/deny counts per action class show the policy in effect.",
    ),
    Control(
        "SOC 2",
        "CC6.6",
        "Boundary protection against external threats",
        ("network",),
        "Outbound network connections are listed per destination with their decisions.",
    ),
    Control(
        "SOC 2",
        "CC6.7",
        "Restriction of data movement",
        ("top_denied", "network", "tool_calls"),
        "Writes, connections and tool calls outside policy were denied; the top denied resources "
        "show what was stopped.",
    ),
    Control(
        "SOC 2",
        "CC6.8",
        "Prevention of unauthorised software",
        ("processes", "forbid_hits"),
        "Every program executed is listed with its count; spawns outside policy appear as denials.",
    ),
    Control(
        "SOC 2",
        "CC7.2",
        "Monitoring for anomalies",
        ("forbid_hits", "evaluation_errors", "drops", "sessions"),
        "Forbid-policy hits, evaluation errors (counted as denials) and observer drops are reported "
        "per session.",
    ),
    Control(
        "SOC 2",
        "CC8.1",
        "Change management",
        ("policy_changes",),
        "Every policy change in the period is recorded with its content hash in the hash chain.",
    ),
    Control(
        "NIST SP 800-53",
        "AU-2",
        "Event logging",
        ("actions", "totals"),
        "File reads, writes, deletes, directory operations, process spawn/exit, network connections "
        "and tool calls are the logged event types.",
    ),
    Control(
        "NIST SP 800-53",
        "AU-3",
        "Content of audit records",
        ("forbid_hits",),
        "Each record holds time, session, principal, pid, executable, action, resource, decision, "
        "determining policy ids and errors.",
    ),
    Control(
        "NIST SP 800-53",
        "AU-9(3)",
        "Cryptographic protection of audit information",
        ("integrity",),
        "Entries are SHA-256 hash-chained and covered by Ed25519-signed checkpoints; the verify "
        "result is shown.",
    ),
    Control(
        "NIST SP 800-53",
        "AU-10",
        "Non-repudiation",
        ("integrity", "agents"),
        "Signed checkpoints bind the entries, each attributed to a principal and process, to the "
        "config's signing key.",
    ),
    Control(
        "NIST SP 800-53",
        "AU-12",
        "Audit record generation",
        ("totals", "drops", "sessions"),
        "Records are generated for every observed action of every session; any loss is recorded as "
        "a drop with counts.",
    ),
    Control(
        "EU AI Act",
        "Art. 12",
        "Record-keeping (automatic logging)",
        ("sessions", "totals", "integrity"),
        "Events of the AI system's operation were logged automatically over its sessions, with "
        "timestamps, in a tamper-evident ledger.",
    ),
)
