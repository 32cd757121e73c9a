"""``aegis``: the entry point.

The Claude Code hook is dispatched before anything else is imported: it is on the
agent's critical path, and it must fail closed (exit 2) even if importing the CLI
itself fails. Everything else goes through the click application in ``app.py``.
"""

from __future__ import annotations

import sys


def _hook_config(argv: list[str]) -> str | None:
    """The config name of ``hook claude-code --config NAME`` (exactly that form), else None."""
    if argv[:2] != ["hook", "claude-code"]:
        return None
    rest = argv[2:]
    if len(rest) == 2 and rest[0] == "--config" and rest[1] and not rest[1].startswith("-"):
        return rest[1]
    if len(rest) == 1 and rest[0].startswith("--config=") and len(rest[0]) > len("--config="):
        return rest[0][len("--config="):]
    return None


def fail(message: str, code: int = 1) -> None:
    sys.stderr.write(f"aegis: error: {message}\n")
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    hook_config = _hook_config(args)
    if hook_config is not None:
        from aegis.integrations.hook_entry import run_claude_code_hook

        sys.exit(run_claude_code_hook(hook_config))

    import click

    from aegis.cli.app import cli
    from aegis.errors import AegisError

    try:
        result = cli.main(args=args, prog_name="aegis", standalone_mode=False)
    except AegisError as exc:
        fail(str(exc).replace("\n", " "), exc.exit_code)
    except click.exceptions.Abort:
        fail("aborted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except BrokenPipeError:
        sys.stderr.close()  # downstream closed the pipe (e.g. `| head`): not an error
        sys.exit(0)
    sys.exit(result if isinstance(result, int) else 0)
