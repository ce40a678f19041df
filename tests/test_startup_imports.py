"""Short commands load only what they use: a `mesh send` pays for no rich, no
subprocess (no git call), no participant loop or file watch; `mesh agents` loads rich
to render, and registering a new workspace may read its identity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mesh_core import Mesh

PROBE = """
import json, sys
from mesh_cli.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""
NEVER_ON_A_SEND = ("rich", "subprocess", "mesh_core.participant", "mesh_core.watch", "watchdog")


def loaded(db: Path, *argv: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "--db", str(db), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"AGENT_MESH_NAME": "importer", "PATH": "/usr/bin:/bin"},
    )
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["code"] == 0, done.stderr
    return set(report["modules"])


def test_a_send_loads_no_rich_no_subprocess_no_participant(tmp_path: Path) -> None:
    db = tmp_path / "mesh.db"
    with Mesh(db) as mesh:
        mesh.register("rx", cwd="/")
        mesh.register("importer", cwd="/")  # the sender's workspace exists (stopped next)
        mesh.deregister(mesh.session_for("importer").agent.session_id)
    modules = loaded(db, "send", "rx", "hello")
    for name in NEVER_ON_A_SEND:
        assert not {m for m in modules if m == name or m.startswith(name + ".")}, name


def test_a_rendering_command_loads_rich(tmp_path: Path) -> None:
    db = tmp_path / "mesh.db"
    with Mesh(db) as mesh:
        mesh.register("rx", cwd="/")
    assert "rich.table" in loaded(db, "status")
