"""One end-to-end run of the installed `aegis` through the whole lifecycle, on real files.

Each stage uses what the previous stage left behind, as a user would.
"""

from __future__ import annotations

import json
from pathlib import Path


def test_lifecycle(run_aegis, aegis_home, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("hello\n")

    # setup: checklist + home
    setup = run_aegis("setup", "--json")
    assert json.loads(setup.stdout)["enforcement_possible"] is True, setup.stdout
    assert aegis_home.is_dir()

    # init + policy: a config whose policies validate and list
    assert run_aegis("init", "proj", "--dir", str(project), "--policy", "workspace-write").returncode == 0
    listed = json.loads(run_aegis("policy", "list", "proj", "--json").stdout)
    assert "forbid-secrets" in [p["id"] for p in listed]
    policy_file = Path(listed[0]["file"])
    assert run_aegis("policy", "validate", "--path", str(aegis_home / "proj" / "policies" / policy_file))\
        .stdout.startswith("valid:")
    generated = run_aegis("policy", "generate", "--template", "allow-read-only")
    assert "read-everything" in generated.stdout
