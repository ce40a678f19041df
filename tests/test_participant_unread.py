"""A participant that leaves mail unread (mark_read=False, for mesh-tui): each new
message reaches on_message once, and stays unread in the file until the client marks it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from seedfile import plain_rows

from mesh_core import Mesh, MeshConfig, Message, Participant, iso
from mesh_core.participant import PEEK_LIMIT, Arrivals

FAST = MeshConfig(heartbeat_interval=0.2, poll_interval=0.05, watch_interval=0.02)
DEADLINE = 20.0

SEND = """
import sys
from mesh_core import Mesh
mesh = Mesh(sys.argv[1])
me = mesh.register("outsider", cwd="/")
for text in sys.argv[3:]:
    print(mesh.send(me.session_id, sys.argv[2], text).message_id)
"""


def send_from_another_process(db: Path, to: str, *texts: str) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", SEND, str(db), to, *texts],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [int(line) for line in out.stdout.split()]


def unread_ids(db: Path, session_id: str) -> list[int]:
    rows = plain_rows(
        db,
        "SELECT message_id FROM agent_messages WHERE recipient_session_id = ? AND read = 0 "
        "ORDER BY message_id",
        (session_id,),
    )
    return [int(r["message_id"]) for r in rows]


def test_each_message_is_handed_on_once_and_left_unread(db_path: Path, tmp_path: Path) -> None:
    got: list[int] = []
    lock = threading.Lock()

    def on_message(message: Message) -> None:
        with lock:
            got.append(message.message_id)

    mesh = Mesh(db_path, config=FAST)
    participant = Participant(
        mesh, "person", kind="human", cwd=str(tmp_path), on_message=on_message, mark_read=False
    )
    me = participant.start().session_id
    try:
        first = send_from_another_process(db_path, "person", "one", "two")
        end = time.monotonic() + DEADLINE
        while sorted(got) != first:
            assert time.monotonic() < end, f"handed on: {got[:10]}"
            time.sleep(0.02)
        for _ in range(5):  # many more polls: nothing is handed on twice
            participant.poll_now()
            time.sleep(0.1)
        assert sorted(got) == first
        assert unread_ids(db_path, me) == first  # nothing marked read
        with Mesh(db_path) as other:
            other.mark_read(me, first[:1])
        later = send_from_another_process(db_path, "person", "three")
        end = time.monotonic() + DEADLINE
        while len(got) < 3:
            assert time.monotonic() < end, f"handed on: {got[:10]}"
            time.sleep(0.02)
        time.sleep(0.3)
        assert sorted(got) == first + later
        assert unread_ids(db_path, me) == first[1:] + later
    finally:
        participant.stop()
        mesh.close()


def test_a_new_message_is_handed_on_however_many_wait_unread(db_path: Path, tmp_path: Path) -> None:
    """Thousands unread (never shown to the person): a poll reads only what is new, and
    a new message is handed on, even one that sorts after all the waiting ones."""
    got: list[int] = []
    mesh = Mesh(db_path, config=FAST)
    participant = Participant(
        mesh,
        "person",
        kind="human",
        cwd=str(tmp_path),
        on_message=lambda m: got.append(m.message_id),
        mark_read=False,
    )
    me = participant.start(loop=False).session_id
    # as another client would have left them (more than the rate limit lets one send)
    conn = sqlite3.connect(db_path)
    with conn:
        conn.executemany(
            "INSERT INTO agent_messages (sender_session_id, recipient_session_id, content, "
            "priority, created_at, read) VALUES ('someone', ?, ?, 'normal', ?, 0)",
            [(me, f"old {i}", iso(mesh.clock.now())) for i in range(PEEK_LIMIT + 100)],
        )
    conn.close()
    waiting = unread_ids(db_path, me)
    participant.start_loop()
    try:
        end = time.monotonic() + DEADLINE
        while len(got) < PEEK_LIMIT:
            assert time.monotonic() < end, f"handed on: {len(got)}"
            time.sleep(0.02)
        time.sleep(0.3)
        assert sorted(got) == waiting[-PEEK_LIMIT:]  # the first look: the newest only
        later = send_from_another_process(db_path, "person", "new, normal priority")
        end = time.monotonic() + DEADLINE
        while later[0] not in got:
            assert time.monotonic() < end, "the new message was never handed on"
            time.sleep(0.02)
        time.sleep(0.3)
        assert got.count(later[0]) == 1 and len(got) == PEEK_LIMIT + 1
        assert unread_ids(db_path, me) == waiting + later  # nothing marked read
    finally:
        participant.stop()
        mesh.close()


def test_mail_moved_here_by_a_hand_over_is_handed_on_once(db_path: Path, tmp_path: Path) -> None:
    """The person's other session (an earlier terminal) had two unread messages; it
    stops after this one has seen newer mail, so those two reach this session with
    older ids than the newest it saw: they are handed on once, as moved."""
    got: list[tuple[str, int]] = []
    lock = threading.Lock()

    def on_arrivals(found: Arrivals) -> None:
        with lock:
            got.extend((found.kind, m.message_id) for m in found.messages)

    other = Mesh(db_path, config=FAST)
    sender = other.register("outsider", cwd="/").session_id
    earlier = other.register("person", kind="human", cwd=str(tmp_path)).session_id
    left = [other.send(sender, earlier, f"for the earlier run {i}").message_id for i in (1, 2)]
    mesh = Mesh(db_path, config=FAST)
    participant = Participant(
        mesh, "person", kind="human", cwd=str(tmp_path), on_arrivals=on_arrivals, mark_read=False
    )
    me = participant.start().session_id
    try:
        newer = other.send(sender, me, "to this run").message_id  # new, or the first look's
        end = time.monotonic() + DEADLINE
        while newer not in [i for _, i in got]:
            assert time.monotonic() < end, f"handed on: {got}"
            time.sleep(0.02)
        other.deregister(earlier)  # its unread mail moves to the live session: this one
        assert unread_ids(db_path, me) == [*left, newer]
        end = time.monotonic() + DEADLINE
        while len(got) < 3:
            assert time.monotonic() < end, f"the moved mail was never handed on: {got}"
            time.sleep(0.02)
        for _ in range(5):  # more polls, and a change of the workspace: nothing twice
            participant.poll_now()
            time.sleep(0.1)
        other.register("person", kind="human", cwd=str(tmp_path))
        time.sleep(0.3)
        assert sorted(i for _, i in got) == [*left, newer]
        assert [k for k, i in got if i in left] == ["moved", "moved"]
        assert unread_ids(db_path, me) == [*left, newer]  # nothing marked read
    finally:
        participant.stop()
        mesh.close()
        other.close()
