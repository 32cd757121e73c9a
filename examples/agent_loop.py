"""A minimal Python agent loop embedding Aegis.

The "model" here is a fixed script of tool calls, so the example runs anywhere
(CI runs it from tests/test_api.py). For each call the loop:

1. asks ``Policy.authorize("ToolCall", tool, {"input": ...})`` before doing anything,
2. records the decision (with its policy ids) in the config's ledger, in a session
   of its own,
3. runs allowed shell tools through ``Sandbox``, where the kernel enforces the same
   policies on every file, process and connection the command touches.

Usage: python examples/agent_loop.py [--config NAME] [--workdir DIR]
(creates config NAME with the workspace-write template when it does not exist).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import aegis

# (tool, input) pairs a model might produce.
SCRIPT: list[tuple[str, dict[str, str]]] = [
    ("Bash", {"command": "echo 'hello from the agent' > notes.txt && wc -c notes.txt"}),
    ("Bash", {"command": "cat notes.txt"}),
    ("Bash", {"command": "rm -rf /"}),                            # forbidden by the policy: never runs
    ("Bash", {"command": "echo sneaky > /etc/agent-was-here"}),   # allowed as a tool call, denied by the kernel
    ("WebFetch", {"url": "http://169.254.169.254/latest/meta-data/"}),  # cloud metadata: forbidden
]


def run_tool(sandbox: aegis.Sandbox, workdir: Path, tool: str, tool_input: dict[str, str]) -> str:
    """Carry out one allowed tool call; shell commands run inside the sandbox."""
    if tool != "Bash":
        return f"(tool {tool} is not implemented by this example)"
    with sandbox.run(["sh", "-c", tool_input["command"]], cwd=workdir, stdin=subprocess.DEVNULL,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        output, _ = proc.communicate(timeout=60)
        denied = [e.resource for e in proc.events(follow=False) if e.decision == "deny"]
    note = f" [denied by the sandbox: {', '.join(denied)}]" if denied else ""
    return f"exit {proc.returncode}: {output.strip()}{note}"


def agent_loop(config_name: str, workdir: Path) -> int:
    """Run the script; returns how many tool calls the policy refused."""
    try:
        config = aegis.load_config(config_name)
    except aegis.AegisError:
        config = aegis.create_config(config_name, template="workspace-write", project_dir=workdir)
    policy = aegis.Policy.load(config)
    refused = 0
    with aegis.Ledger.open(config) as ledger, aegis.Sandbox(config) as sandbox:
        session = ledger.begin_session([sys.argv[0], "agent-loop"], cwd=str(workdir))
        for tool, tool_input in SCRIPT:
            decision = policy.authorize("ToolCall", tool, {"input": tool_input, "session": session})
            ledger.record("ToolCall", tool, decision, session_id=session, source="agent-loop",
                          details={"input": tool_input})
            if not decision.allowed:
                refused += 1
                print(f"{tool} {tool_input}: refused by {', '.join(decision.policy_ids) or 'default deny'}")
                continue
            print(f"{tool} {tool_input}: {run_tool(sandbox, workdir, tool, tool_input)}")
        ledger.end_session(session, exit_code=0)
        print(f"ledger {ledger.path}: {ledger.size()} entries, verified: {ledger.verify().ok}")
    return refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="agent-loop-example", help="Aegis config to use (created if missing).")
    parser.add_argument("--workdir", type=Path, default=Path.cwd(), help="The agent's project directory.")
    args = parser.parse_args()
    agent_loop(args.config, args.workdir.resolve())


if __name__ == "__main__":
    main()
