"""wait_for_reply wakes on the file-system watch (mesh_core/watch.py), as participants do:
a reply committed by another process is taken although every timer is set far longer
than the wait, and the timer alone still finds it where the folder cannot be watched."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mesh_core import Mesh, MeshConfig, Participant

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


class _EventBeforeCommit:
    """A watch whose one event comes just before the commit it announces is visible: the
    race of SQLite's last -wal write (the event) and its -shm wal-index update (no event).
    `fire()` raises the event; no later write raises another."""

    def __init__(self, db_path: Path, wake: Callable[[], None]) -> None:
        self._wake = wake
        self.events = 0
        self.active = False
        _EventBeforeCommit.made.append(self)

    made: ClassVar[list[_EventBeforeCommit]] = []

    def start(self) -> bool:
        self.active = True
        return True

    def close(self) -> None:
        self.active = False

    def fire(self) -> None:
        self.events += 1
        self._wake()


def _commit_just_after_the_next_look(
    store: Any, monkeypatch: pytest.MonkeyPatch, commit: Callable[[], object]
) -> dict[str, bool]:
    """Once armed, the reader's next data_version read returns what it saw, then the
    commit lands (from another connection): the reader saw the file just before it."""
    real = store.data_version
    armed = {"on": False}

    def data_version() -> int:
        version = real()
        if armed["on"]:
            armed["on"] = False
            commit()
        return int(version)

    monkeypatch.setattr(store, "data_version", data_version)
    return armed


def test_an_event_just_before_its_commit_is_visible_is_looked_at_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Woken by the commit's last -wal write, the wait reads data_version a moment before
    the commit shows: it looks again shortly, not at the (minute-long) safety check."""
    import mesh_core.watch

    _EventBeforeCommit.made.clear()
    monkeypatch.setattr(mesh_core.watch, "CommitWatch", _EventBeforeCommit)
    db = tmp_path / "mesh.db"
    mesh, asker, question, answerer = _ask(db, SLOW)
    other = Mesh(db)
    armed = _commit_just_after_the_next_look(
        mesh.store, monkeypatch, lambda: other.reply(answerer, question, "the answer")
    )
    result: list[object] = []
    waiter = threading.Thread(
        target=lambda: result.append(mesh.wait_for_reply(asker, question, timeout=40)),
        daemon=True,
    )
    waiter.start()
    deadline = time.monotonic() + 10
    while not (_EventBeforeCommit.made and _EventBeforeCommit.made[0].active):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)  # the wait has looked once and sleeps until an event
    armed["on"] = True
    _EventBeforeCommit.made[0].fire()
    waiter.join(timeout=20)  # not a speed bound: the wait's own deadline is 40 s
    found = bool(result) and result[0] is not None
    if not waiter.is_alive():
        other.close()
        mesh.close()
    assert found, "the reply was left for the safety check (or the wait's deadline)"


def test_a_participant_looks_again_after_an_event_its_commit_did_not_yet_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race for the participant loop: the message lands without waiting for the
    safety check."""
    import mesh_core.participant

    _EventBeforeCommit.made.clear()
    monkeypatch.setattr(mesh_core.participant, "CommitWatch", _EventBeforeCommit)
    monkeypatch.setattr(mesh_core.participant, "FILE_CHECK_SECONDS", 60.0)  # no other wake
    db = tmp_path / "mesh.db"
    config = MeshConfig(
        watch_interval=60.0, watch_safety_interval=60.0, heartbeat_interval=60.0, poll_interval=60.0
    )
    mesh = Mesh(db, config=config)
    other = Mesh(db)
    sender = other.register("sender", cwd="/").session_id
    got = threading.Event()
    participant = Participant(mesh, "reader", cwd="/", on_message=lambda m: got.set())
    participant.start()
    armed = _commit_just_after_the_next_look(
        mesh, monkeypatch, lambda: other.send(sender, "reader", "hello")
    )
    try:
        deadline = time.monotonic() + 10
        while not (_EventBeforeCommit.made and _EventBeforeCommit.made[0].active):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.2)  # the loop has looked once and sleeps until an event
        armed["on"] = True
        _EventBeforeCommit.made[0].fire()
        assert got.wait(20), "the message was left for the safety check"
    finally:
        participant.stop()
        other.close()
        mesh.close()
