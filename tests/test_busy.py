"""A write lock held past the retry budget is "busy" (exit 1, try again), not "unusable".

The lock is held by a real process (a plain `sqlite3` connection in BEGIN IMMEDIATE, as
a `sqlite3` shell left open would), on a real file.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mesh_core import Mesh
from mesh_core.config import MeshConfig
from mesh_core.errors import DatabaseBusy
from mesh_core.participant import Participant

HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""

FAST = MeshConfig(busy_timeout_ms=50, write_retry=0.3, watch_interval=0.02, heartbeat_interval=0.05)


@pytest.fixture
def holder(db_path: Path) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    """Start a process holding the write lock once the mesh exists; release on exit."""
    Mesh(db_path).close()
    procs: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.communicate("", timeout=10)


def test_a_lock_held_past_the_budget_is_busy_exit_1_with_the_pid(
    db_path: Path, holder: Callable[[], subprocess.Popen[str]]
) -> None:
    mesh = Mesh(db_path, config=FAST)
    try:
        proc = holder()
        started = time.monotonic()
        with pytest.raises(DatabaseBusy) as info:
            mesh.register("alice", cwd=db_path.parent)
        assert time.monotonic() - started < 5
        assert info.value.exit_code == 1
        text = str(info.value)
        assert text.startswith("database is busy: another process")
        assert f"(pid {proc.pid})" in text and text.endswith("try again")
    finally:
        mesh.close()


def test_opening_while_a_migration_lock_is_held_is_busy(tmp_path: Path) -> None:
    """A fresh file another process is creating: the schema write waits, then says busy."""
    path = tmp_path / "m" / "mesh.db"
    path.parent.mkdir(mode=0o700)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(DatabaseBusy):
            Mesh(path, config=FAST)
    finally:
        proc.communicate("", timeout=10)


def test_the_participant_loop_keeps_retrying_while_busy(
    db_path: Path, holder: Callable[[], subprocess.Popen[str]]
) -> None:
    mesh = Mesh(db_path, config=FAST)
    errors: list[Exception] = []
    seen = threading.Event()

    def on_error(exc: Exception) -> None:
        errors.append(exc)
        seen.set()

    participant = Participant(mesh, "alice", "agent", cwd=str(db_path.parent), on_error=on_error)
    participant.start()
    try:
        proc = holder()
        assert seen.wait(10), "the loop never reported the held lock"
        assert isinstance(errors[0], DatabaseBusy)
        proc.communicate("", timeout=10)
        before = mesh.agent(participant.session_id).last_heartbeat
        deadline = time.monotonic() + 10
        while mesh.agent(participant.session_id).last_heartbeat == before:
            assert time.monotonic() < deadline, "the loop stopped beating after the lock"
            time.sleep(0.05)
        assert participant._thread is not None and participant._thread.is_alive()
    finally:
        participant.stop()
        mesh.close()
