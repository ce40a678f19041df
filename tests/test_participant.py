"""The participant loop (contract §3.3): registers before start() returns, delivers messages sent
from other processes, heartbeats, marks itself stopped on stop() and on SIGTERM, and
survives its callbacks' bugs. Real time here (the loop runs on a thread); every wait is
a generous deadline on a condition, never a fixed sleep that a test then trusts."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from seedfile import plain_rows

from mesh_core import Mesh, MeshConfig, Message, Participant

FAST = MeshConfig(heartbeat_interval=0.2, poll_interval=60.0, watch_interval=0.02)
DEADLINE = 20.0


def wait_until(condition: Callable[[], object], timeout: float = DEADLINE) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.02)


def stored(db_path: Path, session_id: str) -> sqlite3.Row:
    rows = plain_rows(db_path, "SELECT * FROM agent_sessions WHERE session_id = ?", (session_id,))
    assert rows, f"session {session_id} is not in the file"
    return rows[0]


@pytest.fixture
def live_mesh(db_path: Path) -> Iterator[Mesh]:
    handle = Mesh(db_path, config=FAST)
    yield handle
    handle.close()


@pytest.fixture
def participants() -> Iterator[list[Participant]]:
    started: list[Participant] = []
    yield started
    for participant in started:
        participant.stop()


def test_start_registers_before_it_returns(
    live_mesh: Mesh, db_path: Path, participants: list[Participant], tmp_path: Path
) -> None:
    participant = Participant(live_mesh, "watcher", cwd=str(tmp_path))
    participants.append(participant)
    agent = participant.start()
    row = stored(db_path, agent.session_id)  # another connection sees it at once
    assert row is not None and row["status"] == "active" and row["agent_name"] == "watcher"
    assert participant._thread is not None and participant._thread.is_alive()


SEND_FROM_ANOTHER_PROCESS = """
import sys
from mesh_core import Mesh
mesh = Mesh(sys.argv[1])
me = mesh.register("outsider", cwd="/")
print(mesh.send(me.session_id, sys.argv[2], sys.argv[3]).message_id)
"""


def test_message_from_another_process_reaches_on_message(
    live_mesh: Mesh, db_path: Path, participants: list[Participant], tmp_path: Path
) -> None:
    got: list[Message] = []
    arrived = threading.Event()

    def on_message(message: Message) -> None:
        got.append(message)
        arrived.set()

    participant = Participant(live_mesh, "listener", cwd=str(tmp_path), on_message=on_message)
    participants.append(participant)
    participant.start()
    time.sleep(0.1)  # let the first (start-up) poll pass: the next one must be the watch's
    out = subprocess.run(
        [sys.executable, "-c", SEND_FROM_ANOTHER_PROCESS, str(db_path), "listener", "ping"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # poll_interval is 60 s: only the data_version watch can deliver it in time.
    assert arrived.wait(DEADLINE), "no delivery within the deadline"
    assert [(m.message_id, m.content, m.sender_name) for m in got] == [
        (int(out.stdout), "ping", "outsider")
    ]
    assert got[0].read


def test_waiting_mail_is_delivered_at_start(
    live_mesh: Mesh, participants: list[Participant], tmp_path: Path
) -> None:
    sender = live_mesh.register("sender", cwd=tmp_path)
    old = live_mesh.register("restarting", cwd=tmp_path)
    live_mesh.deregister(old.session_id)
    waiting = live_mesh.send(sender.session_id, "restarting", "while you were away")
    got: list[Message] = []
    participant = Participant(live_mesh, "restarting", cwd=str(tmp_path), on_message=got.append)
    participants.append(participant)
    participant.start()
    wait_until(lambda: got)
    assert [m.message_id for m in got] == [waiting.message_id]


def test_heartbeats_move_last_heartbeat(
    live_mesh: Mesh, db_path: Path, participants: list[Participant], tmp_path: Path
) -> None:
    participant = Participant(live_mesh, "beater", cwd=str(tmp_path))
    participants.append(participant)
    agent = participant.start()
    first = stored(db_path, agent.session_id)["last_heartbeat"]
    wait_until(lambda: stored(db_path, agent.session_id)["last_heartbeat"] > first)


def test_stop_marks_the_session_stopped(live_mesh: Mesh, db_path: Path, tmp_path: Path) -> None:
    participant = Participant(live_mesh, "leaver", cwd=str(tmp_path))
    agent = participant.start()
    participant.stop()
    assert stored(db_path, agent.session_id)["status"] == "stopped"
    assert participant._thread is not None and not participant._thread.is_alive()


RUN_UNTIL_SIGTERM = """
import sys, time
from mesh_core import Mesh, MeshConfig, Participant
mesh = Mesh(sys.argv[1], config=MeshConfig(heartbeat_interval=0.2, watch_interval=0.02))
participant = Participant(mesh, "terminated", cwd="/")
participant.install_signal_handlers()
print(participant.start().session_id, flush=True)
while True:
    time.sleep(0.05)
"""


def test_sigterm_marks_the_session_stopped(db_path: Path) -> None:
    Mesh(db_path).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_UNTIL_SIGTERM, str(db_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        session_id = proc.stdout.readline().strip()
        assert session_id, proc.stderr.read()
        assert stored(db_path, session_id)["status"] == "active"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM
    assert stored(db_path, session_id)["status"] == "stopped"


SIGTERM_RIGHT_AFTER_COMMIT = """
import os, signal, sys, time
from mesh_core import Mesh, Participant
mesh = Mesh(sys.argv[1])
real_register = mesh.register

def register(**kwargs):
    agent = real_register(**kwargs)  # the row is committed: 'active'
    os.kill(os.getpid(), signal.SIGTERM)  # lands before start() has the agent back
    time.sleep(5)
    return agent

mesh.register = register
participant = Participant(mesh, "interrupted", cwd="/")
participant.install_signal_handlers()
participant.start()
"""


def test_sigterm_between_the_commit_and_start_returning_marks_the_session_stopped(
    db_path: Path,
) -> None:
    """A client that gives up the moment it sees the session (the host suite's mesh mcp
    SIGTERMed right after registering) must not leave it active."""
    Mesh(db_path).close()
    proc = subprocess.run(
        [sys.executable, "-c", SIGTERM_RIGHT_AFTER_COMMIT, str(db_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    rows = plain_rows(db_path, "SELECT status FROM agent_sessions WHERE agent_name = 'interrupted'")
    assert [row["status"] for row in rows] == ["stopped"]


def test_callback_exceptions_do_not_kill_the_loop(
    live_mesh: Mesh, participants: list[Participant], tmp_path: Path
) -> None:
    got: list[str] = []
    changes: list[int] = []

    def on_message(message: Message) -> None:
        got.append(message.content)
        if message.content == "boom":
            raise RuntimeError("a bug in the client's callback")

    def on_change() -> None:
        changes.append(1)
        raise ValueError("a bug in the client's change callback")

    participant = Participant(
        live_mesh, "fragile", cwd=str(tmp_path), on_message=on_message, on_change=on_change
    )
    participants.append(participant)
    agent = participant.start()
    sender = live_mesh.register("sender", cwd=tmp_path)
    live_mesh.send(sender.session_id, "fragile", "boom")
    wait_until(lambda: "boom" in got)
    # Any commit after the loop's first poll is a change: on_change runs (and raises).
    live_mesh.send(sender.session_id, "fragile", "second")
    wait_until(lambda: "second" in got and changes)
    live_mesh.send(sender.session_id, "fragile", "still alive?")
    wait_until(lambda: "still alive?" in got)
    assert participant._thread is not None and participant._thread.is_alive()
    beat = live_mesh.agent(agent.session_id).last_heartbeat
    wait_until(lambda: live_mesh.agent(agent.session_id).last_heartbeat > beat)
