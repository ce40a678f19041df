"""wait_for_reply wakes on the file-system watch (mesh_core/watch.py), as participants do:
a reply committed by another process is taken although every timer is set far longer
than the wait, and the timer alone still finds it where the folder cannot be watched."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mesh_core import Mesh, MeshConfig

# Timers far longer than the wait: only a file event can end it with the reply.
SLOW = MeshConfig(watch_interval=60.0, watch_safety_interval=60.0, heartbeat_interval=60.0)
POLLING = MeshConfig(watch_interval=0.02, watch_safety_interval=0.2, heartbeat_interval=60.0)

REPLY_LATER = """
import sys, time
from mesh_core import Mesh
mesh = Mesh(sys.argv[1])
time.sleep(float(sys.argv[3]))
mesh.reply(sys.argv[2], int(sys.argv[4]), "the answer")
"""


def _ask(db: Path, config: MeshConfig) -> tuple[Mesh, str, int, str]:
    mesh = Mesh(db, config=config)
    asker = mesh.register("asker", cwd="/").session_id
    answerer = mesh.register("answerer", cwd="/").session_id
    question = mesh.send(asker, "answerer", "the question").message_id
    return mesh, asker, question, answerer


def _reply_from_another_process(db: Path, answerer: str, question: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", REPLY_LATER, str(db), answerer, "0.5", str(question)], text=True
    )


def test_a_reply_from_another_process_wakes_the_wait(tmp_path: Path) -> None:
    db = tmp_path / "mesh.db"
    mesh, asker, question, answerer = _ask(db, SLOW)
    replier = _reply_from_another_process(db, answerer, question)
    try:
        started = time.monotonic()
        reply = mesh.wait_for_reply(asker, question, timeout=20)
        waited = time.monotonic() - started
    finally:
        replier.wait(timeout=60)
        mesh.close()
    assert reply is not None and reply.content == "the answer"
    # Not a timing assertion on speed: the timers were a minute, the wait 20 s.
    assert waited < 20


def test_the_wait_still_finds_the_reply_where_nothing_can_be_watched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mesh_core import watch

    monkeypatch.setattr(watch.CommitWatch, "start", lambda self: self._fail("simulated"))
    db = tmp_path / "mesh.db"
    mesh, asker, question, answerer = _ask(db, POLLING)
    replier = _reply_from_another_process(db, answerer, question)
    try:
        reply = mesh.wait_for_reply(asker, question, timeout=20)
    finally:
        replier.wait(timeout=60)
        mesh.close()
    assert reply is not None and reply.content == "the answer"


def test_should_stop_is_asked_while_no_commit_comes(tmp_path: Path) -> None:
    """A cancelled call ends the wait although no commit wakes it and the timers are
    a minute long."""
    db = tmp_path / "mesh.db"
    mesh, asker, question, _ = _ask(db, SLOW)
    asked = []
    started = time.monotonic()

    def stop() -> bool:
        asked.append(time.monotonic())
        return time.monotonic() - started > 1.0

    try:
        reply = mesh.wait_for_reply(asker, question, timeout=30, should_stop=stop)
    finally:
        mesh.close()
    assert reply is None
    assert time.monotonic() - started < 30
    assert len(asked) >= 3
