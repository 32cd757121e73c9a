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

    # run: enforcing; a read is allowed and recorded, a write is denied and the file is unchanged
    read = run_aegis("run", "--config", "proj", "--", "cat", str(project / "notes.txt"), cwd=project)
    assert read.returncode == 0 and read.stdout == "hello\n", read.stderr
    outside = project / "readonly.txt"
    outside.write_text("untouched\n")
    write = run_aegis("run", "--config", "ro", "--policy", "allow-read-only", "--", "sh", "-c",
                      f"echo pwned > {outside}", cwd=project)
    assert write.returncode != 0
    assert outside.read_text() == "untouched\n"
    inside = run_aegis("run", "--config", "proj", "--", "sh", "-c", f"echo ok > {project / 'out.txt'}", cwd=project)
    assert inside.returncode == 0 and (project / "out.txt").read_text() == "ok\n", inside.stderr

    # wrap: observe-only, sessions accumulate under the same name
    for _ in range(2):
        assert run_aegis("wrap", "--name", "obs", "--", "ls", str(project), cwd=project).returncode == 0
    sessions = json.loads(run_aegis("audit", "sessions", "obs", "--json").stdout)
    assert len(sessions) == 2

    # audit: query, verify, export
    denied = json.loads(run_aegis("audit", "query", "ro", "--decision", "deny", "--json").stdout)
    assert any(e["action"] == "FileWrite" and e["resource"] == str(outside) for e in denied), denied
    reads = json.loads(run_aegis("audit", "query", "proj", "--action", "FileRead", "--json").stdout)
    assert any(e["resource"] == str(project / "notes.txt") and e["decision"] == "allow" for e in reads)
    verify = run_aegis("audit", "verify", "proj")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    exported = run_aegis("audit", "export", "proj", "--format", "jsonl").stdout.splitlines()
    total = len(json.loads(run_aegis("audit", "query", "proj", "--json").stdout))
    assert len(exported) == total > 0
    cef = run_aegis("audit", "export", "proj", "--format", "cef").stdout.splitlines()
    assert len(cef) == total and all(line.startswith("CEF:0|") for line in cef)

    # report and status
    report = json.loads(run_aegis("report", "proj", "--format", "json").stdout)
    assert report
    status = run_aegis("status", "proj", "--json")
    assert status.returncode == 0, status.stdout + status.stderr

    # tampering with the ledger file is detected
    import sqlite3

    db = sqlite3.connect(aegis_home / "proj" / "ledger.db")
    table = db.execute("select name from sqlite_master where type='table' and name like '%entr%'").fetchone()[0]
    columns = [row[1] for row in db.execute(f"pragma table_info({table})")]
    blob = next(c for c in ("record", "data", "canonical") if c in columns)
    db.execute(f"update {table} set {blob} = replace({blob}, 'notes.txt', 'notez.txt')")
    db.commit()
    db.close()
    tampered = run_aegis("audit", "verify", "proj")
    assert tampered.returncode == 1
