"""Short commands load only what they use: a `mesh send` pays for no rich, no
subprocess (no git call), no participant loop or file watch; `mesh agents` loads rich
to render, and registering a new workspace may read its identity. A `mesh mcp` is on
the mesh before anything it only needs later (the SDK, Codex's waker) is loaded."""

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
REGISTERED_PROBE = """
import json, sys
from mesh_cli.cli import build_parser
from mesh_core.mesh import Mesh
from mesh_agents.mcp_server import MeshMCP
args = build_parser().parse_args(sys.argv[1:])
server = MeshMCP(Mesh(args.db), None, cwd=args.db.rsplit("/", 1)[0])
server.participant.start(loop=False)
print(json.dumps(sorted(sys.modules)))
server.participant.stop()
"""
# What the SDK's import loads anyway, after the session is written: on the path to
# registering, each would only delay the moment other participants see the session.
NOT_YET_ON_A_SERVER = (
    *("mcp", "mcp_types", "pydantic", "anyio", "rich"),
    *("subprocess", "tempfile", "socket", "uuid", "platform"),
)


def among(modules: set[str], names: tuple[str, ...]) -> set[str]:
    """The modules that are one of `names` or inside one of them."""
    return {m for m in modules for n in names if m == n or m.startswith(n + ".")}


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
    assert not among(modules, NEVER_ON_A_SEND), sorted(among(modules, NEVER_ON_A_SEND))


def test_a_send_loads_no_shutil_for_a_help_it_does_not_show(tmp_path: Path) -> None:
    """argparse's own formatter imports shutil (and with it zlib, bz2, lzma) at every
    `add_argument`, for the terminal's width; ours asks `os`, and help reads the same."""
    db = tmp_path / "mesh.db"
    with Mesh(db) as mesh:
        mesh.register("rx", cwd="/")
    modules = loaded(db, "send", "rx", "hello")
    assert not among(modules, ("shutil", "zlib", "bz2", "lzma")), sorted(modules)


def test_help_is_as_wide_as_columns_says() -> None:
    """The width still follows $COLUMNS (as shutil's would): lines wrap to it."""
    for columns in (40, 120):
        done = subprocess.run(
            [sys.executable, "-m", "mesh_cli", "send", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env={"COLUMNS": str(columns), "PATH": "/usr/bin:/bin"},
        )
        widest = max(len(line) for line in done.stdout.splitlines())
        assert columns - 20 < widest <= columns - 2, (columns, done.stdout)


def test_a_rendering_command_loads_rich(tmp_path: Path) -> None:
    db = tmp_path / "mesh.db"
    with Mesh(db) as mesh:
        mesh.register("rx", cwd="/")
    assert "rich.table" in loaded(db, "status")


def test_mesh_mcp_is_registered_before_it_loads_what_only_serving_needs(tmp_path: Path) -> None:
    db = tmp_path / "mesh.db"
    done = subprocess.run(
        [sys.executable, "-c", REGISTERED_PROBE, "mcp", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"AGENT_MESH_NAME": "importer", "PATH": "/usr/bin:/bin"},
    )
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    with Mesh(db) as mesh:
        assert [a.agent_name for a in mesh.agents(status="all")] == ["importer"]
    early = among(modules, NOT_YET_ON_A_SERVER)
    assert not early, sorted(early)


# The entry point as the installed `mesh` script runs it. Each collection records whether
# the command line was loading (its module is in sys.modules, and has no `main` until its
# last lines run).
COLLECTOR_PROBE = """
import atexit, gc, json, sys
loading = []
def seen(phase, info):
    if phase == "start":
        cli = sys.modules.get("mesh_cli.cli")
        loading.append(cli is not None and not hasattr(cli, "main"))
gc.callbacks.append(seen)
def report():
    print(json.dumps({"loading": loading, "enabled": gc.isenabled(),
                      "frozen": gc.get_freeze_count()}))
atexit.register(report)
from mesh_cli.entry import main
sys.argv = ["mesh", *sys.argv[1:]]
sys.exit(main())
"""


def test_the_command_line_loads_with_the_collector_paused_then_frozen(tmp_path: Path) -> None:
    """No collection walks the modules while `mesh` loads them (wasted start-up time);
    the collector is back on for the command, and skips what was loaded."""
    db = tmp_path / "mesh.db"
    with Mesh(db) as mesh:
        mesh.register("rx", cwd="/")
    done = subprocess.run(
        [sys.executable, "-c", COLLECTOR_PROBE, "--db", str(db), "agents", "--json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={"AGENT_MESH_NAME": "importer", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert True not in report["loading"], report["loading"]
    assert report["enabled"]
    # the command line's modules and classes: thousands of objects, not a handful
    assert report["frozen"] > 10_000, report["frozen"]


def test_a_new_session_id_is_a_random_uuid4_in_its_usual_text_form() -> None:
    import uuid

    from mesh_core.sessions import new_session_id

    ids = {new_session_id() for _ in range(2000)}
    assert len(ids) == 2000
    for sid in ids:
        parsed = uuid.UUID(sid)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, sid)


def test_this_host_is_the_name_socket_gives() -> None:
    import socket

    from mesh_core.liveness import this_host

    assert this_host() == socket.gethostname()
