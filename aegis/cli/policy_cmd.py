"""``aegis policy``: validate, list, generate."""

from __future__ import annotations

from pathlib import Path

import click

from aegis.cli.output import echo_json, echo_table
from aegis.config import load_config
from aegis.errors import AegisError
from aegis.policy.engine import PolicyEngine, PolicyError
from aegis.policy.templates import TEMPLATES, render_template


@click.group()
def policy() -> None:
    """Validate, list and generate Cedar policies."""


@policy.command()
@click.option("--path", "files", required=True, multiple=True,
              type=click.Path(exists=True, dir_okay=True, path_type=Path),
              help="Policy file (or directory of *.cedar files); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def validate(files: tuple[Path, ...], as_json: bool) -> int:
    """Validate policies strictly against the Aegis schema.

    Prints every problem with its file, line and policy id; exits 1 on any.
    """
    expanded: list[Path] = []
    for f in files:
        expanded.extend(sorted(f.glob("*.cedar")) if f.is_dir() else [f])
    try:
        engine = PolicyEngine.from_files(expanded)
    except PolicyError as exc:
        if as_json:
            echo_json({"valid": False, "problems": [vars(p) for p in exc.problems]})
        else:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
        return 1
    if as_json:
        echo_json({"valid": True, "policies": [vars(p) for p in engine.policies]})
    else:
        click.echo(f"valid: {len(engine.policies)} policies")
    return 0


@policy.command("list")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the policies as JSON.")
def list_policies(name: str, as_json: bool) -> None:
    """List the active policies of config NAME with their ids."""
    config = load_config(name)
    engine = PolicyEngine.from_files(config.policy_files(), config.name)
    if as_json:
        echo_json([vars(p) for p in engine.policies])
        return
    echo_table(["ID", "EFFECT", "FILE", "LINE"], [(p.id, p.effect, p.file, p.line) for p in engine.policies])


@policy.command()
@click.option("--template", "-t", required=True, type=click.Choice(TEMPLATES), help="Built-in template.")
@click.option("--dir", "project_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Project directory to fill in (default: current directory).")
def generate(template: str, project_dir: Path | None) -> None:
    """Print a built-in policy template, filled in for this user and project."""
    click.echo(render_template(template, (project_dir or Path.cwd()).absolute()), nl=False)


@policy.command()
@click.argument("name", required=False)
@click.option("--path", "files", multiple=True, type=click.Path(exists=True, dir_okay=True, path_type=Path),
              help="Explain these policy files (or directories of *.cedar) instead of config NAME; "
                   "repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def explain(name: str | None, files: tuple[Path, ...], as_json: bool) -> None:
    """Show how the policies of config NAME (or --path files) are enforced.

    For each action: what the kernel enforces (Landlock on this machine's ABI),
    what the supervisor decides from the compiled table, and what stays residual
    (decided by cedarpy at run time), then the policies outside the compiled
    fragment and why.
    """
    from aegis.policy.compiler import explain as explain_policy
    from aegis.sandbox.capabilities import landlock_abi

    if bool(name) == bool(files):
        raise AegisError("give either a config NAME or --path FILE, not both or neither")
    if files:
        expanded = [p for f in files for p in (sorted(f.glob("*.cedar")) if f.is_dir() else [f])]
        engine = PolicyEngine.from_files(expanded)
    else:
        config = load_config(name)
        engine = PolicyEngine.from_files(config.policy_files(), config.name)
    report = explain_policy(engine, landlock_abi())
    if as_json:
        echo_json(report)
        return
    for action, parts in report["actions"].items():
        click.echo(action)
        click.echo("  kernel:     " + "\n              ".join(parts["kernel"]))
        table = [f"{r['effect']} {r['policy']}: {r['condition']}" for r in parts["supervisor"]]
        table = table or ["(no policy)"]
        click.echo("  supervisor: " + "\n              ".join(table))
        if parts["residual"]:
            residual = [f"{r['effect']} {r['policy']}: {', '.join(r['outside_fragment'])}"
                        for r in parts["residual"]]
            click.echo("  residual:   " + "\n              ".join(residual))
    landlock = report["landlock"]
    click.echo(f"\nLandlock ABI {landlock['abi']}:")
    for line in landlock["notes"] + landlock["dropped"]:
        click.echo(f"  - {line}")
    if landlock["looser"]:
        click.echo(f"  - the kernel allows more than the policy for {', '.join(landlock['looser'])}: the "
                   "supervisor narrows those (so `--observer fanotify`, which leaves files to the kernel, is refused)")
    else:
        click.echo("  - the kernel enforces every file action exactly (`--observer fanotify` can be used)")
    if report["uncompiled"]:
        click.echo("\nNot compiled (decided by cedarpy at run time):")
        for entry in report["uncompiled"]:
            click.echo(f"  {entry['policy']} ({', '.join(entry['actions'])}): {'; '.join(entry['why'])}")
