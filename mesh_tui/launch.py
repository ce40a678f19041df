"""The `mesh-tui` command: its options, and running the app over a database."""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

from mesh_core.errors import DatabaseUnusable, MeshError
from mesh_core.mesh import Mesh
from mesh_tui import driver
from mesh_tui.app import MeshApp
from mesh_tui.notices import NOTIFY_CHOICES
from mesh_tui.search import SearchIndex
from mesh_tui.state import DRAFTS_FILE, Drafts, state_dir


def search_index_for(mesh: Mesh, state: Path) -> SearchIndex | None:
    """The person's index file for this database (None: cannot be opened; search then
    uses an index in memory)."""
    import hashlib

    name = hashlib.sha256(str(mesh.path).encode()).hexdigest()[:16]
    try:
        return SearchIndex(state / "search" / f"{name}.db")
    except (OSError, sqlite3.Error):
        return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mesh-tui",
        description="Watch every agent and thread on the agent mesh, and take part as a person.",
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="mesh database (default: $AGENT_MESH_DB or ~/.agent-mesh/agent-mesh.db)",
    )
    parser.add_argument(
        "--name", help="your name on the mesh (default: $AGENT_MESH_NAME or your login name)"
    )
    parser.add_argument(
        "--interval",
        type=float,
        metavar="SECONDS",
        help="full refresh interval (default: the poll interval, 10 s)",
    )
    parser.add_argument(
        "--demo", action="store_true", help="a fresh temporary database with simulated agents"
    )
    parser.add_argument(
        "--notify",
        choices=NOTIFY_CHOICES,
        default="off",
        help="desktop notification for a high or urgent message to you: osc (OSC 9/777, "
        "shown by iTerm2, WezTerm, Windows Terminal, GNOME Terminal) or notify-send",
    )
    args = parser.parse_args(argv)
    if args.interval is not None and args.interval <= 0:
        parser.error("--interval must be more than 0 seconds")
    if args.demo and args.db:
        parser.error("--demo uses its own temporary database: leave out --db")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="mesh-demo-")) if args.demo else None
    db_path = workdir / "demo.db" if workdir else args.db
    try:
        mesh = Mesh(db_path)
    except DatabaseUnusable as exc:
        print(f"mesh-tui: {exc}", file=sys.stderr)
        return exc.exit_code
    driver.install()
    state = state_dir()
    app = MeshApp(
        mesh,
        name=args.name,
        interval=args.interval,
        demo=args.demo,
        drafts=Drafts(None if args.demo else state / DRAFTS_FILE, str(mesh.path)),
        crash_dir=state,
        desktop_notify=args.notify,
        search=None if args.demo else search_index_for(mesh, state),
    )
    try:
        app.run()
    except MeshError as exc:
        print(f"mesh-tui: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        app.leave()  # already done unless it crashed before unmount
        mesh.close()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    return app.return_code or 0
