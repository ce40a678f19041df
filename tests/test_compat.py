"""docs/contract.md §2.5: a client that knows only the original columns shares the file.

Its rows (timestamps in any ISO-8601 form) are read correctly by Mesh, and the rows Mesh
writes mean to plain SQL what they meant to the original Node.js extension."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from seedfile import write_seed_file

from mesh_core import FixedClock, Mesh
from mesh_core.models import Status

NOW = "2026-11-23T14:00:00.000Z"
TO_ISO_STRING = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
Row = dict[str, object]
OpenSeed = Callable[..., Mesh]


def session(sid: str, name: str, heartbeat: str, status: str = "active") -> dict[str, object]:
    return {
        "session_id": sid,
        "agent_name": name,
        "status": status,
        "registered_at": "2026-11-23 09:00:00",
        "last_heartbeat": heartbeat,
    }


def message(mid: int, sender: str, recipient: str, created: str, **extra: object) -> Row:
    return {
        "message_id": mid,
        "sender_session_id": sender,
        "recipient_session_id": recipient,
        "content": f"m{mid}",
        "created_at": created,
        **extra,
    }


@pytest.fixture
def seeded(db_path: Path, clock: FixedClock) -> Iterator[OpenSeed]:
    """Open a seed file written by plain sqlite3 after calling `write_seed_file`."""
    handles: list[Mesh] = []

    def open_seed(sessions: Iterable[Row] = (), messages: Iterable[Row] = ()) -> Mesh:
        write_seed_file(db_path, sessions, messages)
        handles.append(Mesh(db_path, clock=clock))
        return handles[-1]

    yield open_seed
    for handle in handles:
        handle.close()


def test_heartbeats_in_other_iso_forms_give_the_right_status(seeded: OpenSeed) -> None:
    mesh = seeded(
        sessions=[
            session("s1", "space-form", "2026-11-23 13:59:55"),
            session("s2", "utc-offset", "2026-11-23T13:59:55+00:00"),
            session("s3", "east-offset", "2026-11-23T15:59:55+02:00"),
            session("s4", "west-offset", "2026-11-23T07:59:55-06:00"),
            session("s5", "micro-z", "2026-11-23T13:59:55.123456Z"),
            session("s6", "old-space-form", "2026-11-23 13:59:00"),
            session("s7", "left", "2026-11-23 13:59:58", status="stopped"),
        ]
    )
    status = {a.agent_name: a.status for a in mesh.agents("all")}
    assert status == {
        "space-form": Status.ACTIVE,
        "utc-offset": Status.ACTIVE,
        "east-offset": Status.ACTIVE,
        "west-offset": Status.ACTIVE,
        "micro-z": Status.ACTIVE,
        "old-space-form": Status.STALE,
        "left": Status.STOPPED,
    }


def test_cleanup_stops_by_real_age_whatever_the_form(seeded: OpenSeed, clock: FixedClock) -> None:
    mesh = seeded(
        sessions=[
            session("s1", "recent-space", "2026-11-23 13:59:55"),
            session("s2", "recent-west", "2026-11-23T07:59:55-06:00"),
            session("s3", "silent-space", "2026-11-23 13:49:59"),
            session("s4", "silent-east", "2026-11-23T15:49:59+02:00"),
        ]
    )
    report = mesh.cleanup()
    status = {a.agent_name: a.status for a in mesh.agents("all")}
    assert status == {
        "recent-space": Status.ACTIVE,
        "recent-west": Status.ACTIVE,
        "silent-space": Status.STOPPED,
        "silent-east": Status.STOPPED,
    }
    assert report.stopped_sessions == 2


def test_inbox_orders_by_real_time_across_forms(seeded: OpenSeed) -> None:
    mesh = seeded(
        sessions=[session("a", "alice", NOW), session("b", "bob", NOW)],
        messages=[
            message(1, "a", "b", "2026-11-23 13:59:58"),  # third
            message(2, "a", "b", "2026-11-23T13:59:57.000Z"),  # second
            message(3, "a", "b", "2026-11-23T15:59:56+02:00"),  # first
            message(4, "a", "b", "2026-11-23T13:59:59Z", priority="urgent"),
            message(5, "a", "b", "2026-11-23T13:59:50.000Z", read=1, read_at="2026-11-23 13:59:51"),
        ],
    )
    got = mesh.inbox("b")
    assert [m.message_id for m in got] == [4, 3, 2, 1]
    assert all(TO_ISO_STRING.match(m.created_at) for m in got)
    assert got[-1].created_at == "2026-11-23T13:59:58.000Z"


def test_thread_orders_by_real_time_across_forms(seeded: OpenSeed) -> None:
    mesh = seeded(
        sessions=[session("a", "alice", NOW), session("b", "bob", NOW)],
        messages=[
            message(1, "a", "b", "2026-11-23T13:50:00.000Z"),
            message(2, "b", "a", "2026-11-23 13:51:00", original_message_id=1),
            message(3, "a", "b", "2026-11-23T13:50:30.000Z", original_message_id=1),
        ],
    )
    assert [m.message_id for m in mesh.thread(2)] == [1, 3, 2]


def test_expiry_in_other_forms_is_read_by_real_time(seeded: OpenSeed, clock: FixedClock) -> None:
    mesh = seeded(
        sessions=[session("a", "alice", NOW), session("b", "bob", NOW)],
        messages=[
            message(1, "a", "b", "2026-11-23T13:00:00.000Z", expires_at="2026-11-23 20:00:00"),
            message(
                2, "a", "b", "2026-11-23T13:00:00.000Z", expires_at="2026-11-23T15:00:00+02:00"
            ),  # 13:00 UTC: expired
        ],
    )
    mesh.heartbeat("b")
    report = mesh.cleanup()
    assert report.expired_unread == 1
    assert [m.message_id for m in mesh.inbox("b")] == [1]


def test_purge_counts_24_hours_from_real_read_time(seeded: OpenSeed, clock: FixedClock) -> None:
    mesh = seeded(
        sessions=[session("a", "alice", NOW), session("b", "bob", NOW)],
        messages=[
            message(1, "a", "b", "2026-11-22 12:00:00", read=1, read_at="2026-11-22 14:30:00"),
            message(
                2, "a", "b", "2026-11-22 12:00:00", read=1, read_at="2026-11-22T15:30:00+02:00"
            ),  # 13:30 UTC: over 24 h ago
            message(3, "a", "b", "2026-11-22 12:00:00", read=1, read_at="2026-11-22 13:59:59"),
        ],
    )
    assert mesh.cleanup().purged_read == 2
    remaining = sqlite3.connect(mesh.path).execute("SELECT message_id FROM agent_messages")
    assert [r[0] for r in remaining] == [1]


def test_seed_rows_with_nulls_and_defaults_are_read(seeded: OpenSeed) -> None:
    mesh = seeded(
        sessions=[
            {"session_id": "a", "registered_at": NOW, "last_heartbeat": NOW},
            session("b", "bob", NOW) | {"metadata": "not json"},
        ],
        messages=[message(1, "a", "b", "2026-11-23T13:59:00.000Z", priority=None)],
    )
    agents = {a.session_id: a for a in mesh.agents("all")}
    assert agents["a"].agent_name == "a" and agents["a"].status is Status.ACTIVE
    assert agents["b"].metadata == {}
    got = mesh.inbox("b")
    assert [(m.priority, m.sender_session_id) for m in got] == [("normal", "a")]
    # A nameless session of the original extension can still be written to, by its id.
    assert mesh.send("b", "a", "hello").recipient_session_id == "a"


def test_rows_mesh_writes_read_by_plain_sql_with_the_seeds_meaning(
    mesh: Mesh, clock: FixedClock, db_path: Path
) -> None:
    alice = mesh.register("alice", cwd=db_path.parent)
    bob = mesh.register("bob", cwd=db_path.parent)
    root = mesh.send(alice.session_id, "bob", "root", priority="high")
    clock.advance(1)
    r1 = mesh.reply(bob.session_id, root.message_id, "r1")
    clock.advance(1)
    r2 = mesh.reply(alice.session_id, r1.message_id, "r2")
    mesh.inbox(bob.session_id)
    mesh.deregister(alice.session_id)

    plain = sqlite3.connect(db_path)  # no row factory, no Mesh: what it sees
    rows = plain.execute(
        "SELECT message_id, sender_session_id, recipient_session_id, content, "
        "original_message_id, priority, created_at, read, read_at, expires_at "
        "FROM agent_messages ORDER BY created_at"
    ).fetchall()
    assert [(r[0], r[4], r[5], r[7]) for r in rows] == [
        (root.message_id, None, "high", 1),
        (r1.message_id, root.message_id, "normal", 0),
        (r2.message_id, root.message_id, "normal", 1),
    ]
    assert [type(r[7]) for r in rows] == [int] * 3
    for row in rows:
        assert TO_ISO_STRING.match(row[6])
        assert row[8] is None or TO_ISO_STRING.match(row[8])
    assert rows[1][9] is not None and TO_ISO_STRING.match(rows[1][9])  # alice stopped
    sessions = dict(plain.execute("SELECT agent_name, status FROM agent_sessions"))
    assert sessions == {"alice": "stopped", "bob": "active"}
    for registered, beat in plain.execute(
        "SELECT registered_at, last_heartbeat FROM agent_sessions"
    ):
        assert TO_ISO_STRING.match(registered) and TO_ISO_STRING.match(beat)
    plain.close()


def test_a_seed_client_writes_into_a_mesh_file(
    mesh: Mesh, clock: FixedClock, db_path: Path
) -> None:
    bob = mesh.register("bob", cwd=db_path.parent)
    plain = sqlite3.connect(db_path)
    plain.execute(
        "INSERT INTO agent_sessions (session_id, agent_name, registered_at, last_heartbeat) "
        "VALUES ('node-1', 'node-ext', ?, ?)",
        (NOW, NOW),
    )
    plain.execute(
        "INSERT INTO agent_messages (sender_session_id, recipient_session_id, content, "
        "created_at) VALUES ('node-1', ?, 'from node', ?)",
        (bob.session_id, NOW),
    )
    plain.commit()
    plain.close()
    got = mesh.inbox(bob.session_id)
    assert [(m.content, m.sender_name, m.read) for m in got] == [("from node", "node-ext", True)]
    answer = mesh.reply(bob.session_id, got[0].message_id, "hi node")
    assert answer.recipient_session_id == "node-1"
