"""docs/contract.md §2: pragmas, permissions, schema version, migration, refusal of files that are
not ours (untouched), and query plans that seek an index for every hot query."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from seedfile import SEED_SQL, write_seed_file

from mesh_core import FixedClock, Mesh, db
from mesh_core.db import SCHEMA_VERSION
from mesh_core.errors import (
    CorruptDatabase,
    DatabaseUnusable,
    NewerSchema,
    NotAMeshDatabase,
)


def pragmas(conn: sqlite3.Connection) -> dict[str, object]:
    return {
        name: conn.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
    }


EXPECTED_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 5000,
    "synchronous": 1,
    "foreign_keys": 0,
}


def test_every_connection_gets_the_pragmas(mesh: Mesh) -> None:
    seen = [pragmas(mesh.connection())]

    def other_thread() -> None:
        seen.append(pragmas(mesh.connection()))

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join(30)
    assert len(seen) == 2
    for found in seen:
        assert found == EXPECTED_PRAGMAS


def test_schema_version_is_recorded(mesh: Mesh) -> None:
    assert mesh.connection().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert SCHEMA_VERSION >= 1


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The loosest umask a user can have: the mesh must not rely on it."""
    previous = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(previous)


def test_folder_0700_and_file_0600_even_with_umask_zero(db_path: Path, open_umask: None) -> None:
    assert not db_path.parent.exists()
    with Mesh(db_path) as mesh:
        alice = mesh.register("alice", cwd=db_path.parent)
        bob = mesh.register("bob", cwd=db_path.parent)
        mesh.send(alice.session_id, "bob", "private")  # the -wal file now exists
        assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
        for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
            assert path.exists()
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert mesh.inbox(bob.session_id)


def test_an_existing_file_readable_by_others_is_tightened(db_path: Path) -> None:
    db_path.parent.mkdir(mode=0o700)
    sqlite3.connect(db_path).close()
    os.chmod(db_path, 0o644)
    Mesh(db_path).close()
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_seed_file_v0_is_migrated_in_place_and_its_rows_read(db_path: Path) -> None:
    write_seed_file(
        db_path,
        sessions=[
            {
                "session_id": "s-alice",
                "agent_name": "alice",
                "registered_at": "2026-11-23T13:59:50.000Z",
                "last_heartbeat": "2026-11-23T13:59:50.000Z",
            },
            {
                "session_id": "s-bob",
                "agent_name": "bob",
                "metadata": '{"kind": "agent"}',
                "registered_at": "2026-11-23T13:59:55.000Z",
                "last_heartbeat": "2026-11-23T13:59:55.000Z",
            },
        ],
        messages=[
            {
                "sender_session_id": "s-alice",
                "recipient_session_id": "s-bob",
                "content": "from the seed",
                "created_at": "2026-11-23T13:59:56.000Z",
            }
        ],
    )
    assert _user_version(db_path) == 0

    with Mesh(db_path, clock=FixedClock("2026-11-23T14:00:00.000Z")) as mesh:
        assert _user_version(db_path) == SCHEMA_VERSION
        names = {
            r[0]
            for r in mesh.connection().execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_%'"
            )
        }
        assert {
            "idx_messages_unread",
            "idx_messages_thread",
            "idx_messages_pair",
            "idx_sessions_name",
        } <= names
        assert sorted(a.agent_name for a in mesh.agents("active")) == ["alice", "bob"]
        got = mesh.inbox("s-bob")
        assert [(m.content, m.sender_name, m.priority, m.original_message_id) for m in got] == [
            ("from the seed", "alice", "normal", None)
        ]
        # And the migrated file takes new rows under every rule.
        reply = mesh.reply("s-bob", got[0].message_id, "hello seed")
        assert reply.original_message_id == got[0].message_id


def _user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        return version
    finally:
        conn.close()


# -- files that are not ours: refused, untouched --------------------------------------


def _newer_rollback(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(SEED_SQL)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()


def _newer_wal(path: Path) -> None:
    """A mesh file in WAL mode that a later agent-mesh has upgraded."""
    Mesh(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()


def _not_sqlite(path: Path) -> None:
    path.write_text("# my notes\nnot a database at all\n" * 50)


def _corrupt(path: Path) -> None:
    """A real SQLite header followed by garbage pages."""
    conn = sqlite3.connect(path)
    conn.executescript(SEED_SQL)
    conn.executemany(
        "INSERT INTO agent_sessions VALUES (?, ?, '', '', '', 'active', ?, ?, '')",
        [(f"s{i}", f"n{i}", "t", "t") for i in range(200)],
    )
    conn.commit()
    conn.close()
    data = bytearray(path.read_bytes())
    data[100:] = bytes((i * 37 + 11) % 256 for i in range(len(data) - 100))
    path.write_bytes(bytes(data))


def _foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE bookmarks (id INTEGER PRIMARY KEY, url TEXT);"
        "INSERT INTO bookmarks (url) VALUES ('https://example.org');"
    )
    conn.commit()
    conn.close()


def _foreign_with_ours(path: Path) -> None:
    """Another app that happens to have tables of the same names, and its own."""
    conn = sqlite3.connect(path)
    conn.executescript(SEED_SQL + "CREATE TABLE invoices (id INTEGER PRIMARY KEY);")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (_newer_rollback, NewerSchema),
        (_newer_wal, NewerSchema),
        (_not_sqlite, NotAMeshDatabase),
        (_corrupt, CorruptDatabase),
        (_foreign, NotAMeshDatabase),
        (_foreign_with_ours, NotAMeshDatabase),
    ],
    ids=[
        "newer-schema",
        "newer-schema-wal",
        "not-sqlite",
        "corrupt",
        "foreign-app",
        "foreign-app-same-tables",
    ],
)
def test_unusable_files_are_refused_and_left_untouched(
    db_path: Path, make: Callable[[Path], None], error: type[Exception]
) -> None:
    db_path.parent.mkdir(mode=0o700)
    make(db_path)
    os.chmod(db_path, 0o644)
    before = db_path.read_bytes()
    siblings_before = sorted(p.name for p in db_path.parent.iterdir())
    with pytest.raises(error) as info:
        Mesh(db_path)
    assert isinstance(info.value, DatabaseUnusable) and info.value.exit_code == 3
    assert str(db_path) in str(info.value)
    assert db_path.read_bytes() == before
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o644
    assert sorted(p.name for p in db_path.parent.iterdir()) == siblings_before


def test_refusal_messages_say_what_to_do(db_path: Path) -> None:
    db_path.parent.mkdir(mode=0o700)
    _newer_rollback(db_path)
    with pytest.raises(NewerSchema, match="upgrade agent-mesh"):
        Mesh(db_path)
    _not_sqlite(db_path)
    with pytest.raises(NotAMeshDatabase, match="--db"):
        Mesh(db_path)


# -- query plans ----------------------------------------------------------------------

# Each hot query, recognised by a fragment of its SQL, and the index it must seek. All of
# them must have been seen, so a rewrite of one is planned here too instead of slipping
# past. An inbox poll on idx_messages_recipient would be a seek that still walks the
# recipient's whole history, hence the named index and not just "some index".
HOT_QUERIES = {
    "inbox poll": (r"SET read = 1, .* WHERE recipient_session_id", "idx_messages_unread"),
    "unread counts": (r"GROUP BY recipient_session_id", "idx_messages_unread"),
    # in the pair read of a send: is there a threshold-th unread message before it
    "queue depth": (r"read = 0 LIMIT 1 OFFSET 50 - 1\)", "idx_messages_unread"),
    "thread fetch": (r"OR original_message_id = ", "idx_messages_thread"),
    # the workspace pair's sends: from each session of the recipient's workspace
    "rate-limit count": (r"INDEXED BY idx_messages_recipient", "idx_messages_recipient"),
    # ... or, for a sender whose workspace is itself alone, per recipient session's pair
    "rate-limit count, one-session sender": (r"INDEXED BY idx_messages_pair", "idx_messages_pair"),
    # the session pair's newest message each way
    "auto-thread lookup": (r"SELECT 1 AS kind", "idx_messages_pair"),
    "name lookup": (r"agent_name = .* COLLATE NOCASE", "idx_sessions_name"),
    "purge read": (r"DELETE FROM agent_messages WHERE read = 1", "idx_messages_read_at"),
    "delete expired": (r"DELETE FROM agent_messages WHERE expires_at", "idx_messages_expires"),
}


def _exercise(mesh: Mesh, clock: FixedClock) -> None:
    """Every core operation once, on a database with some rows in it."""
    alice = mesh.register("alice", cwd="/tmp")
    bob = mesh.register("bob", cwd="/tmp")
    for n in range(5):
        first = mesh.send(alice.session_id, "Bob", f"m{n}", new_thread=True)
        mesh.reply(bob.session_id, first.message_id, "ok")
        clock.advance(30)
    mesh.send(bob.session_id, "alice", "follow-up")  # auto-threaded
    mesh.peek_inbox(bob.session_id)
    mesh.inbox(bob.session_id)
    mesh.thread(first.message_id)
    mesh.take_reply(alice.session_id, first.message_id)
    mesh.agents("all")
    mesh.deregister(bob.session_id)
    mesh.register("bob", cwd="/tmp")  # hand-over
    clock.advance(2 * 24 * 3600)
    mesh.cleanup()


def test_hot_queries_seek_an_index(mesh: Mesh, clock: FixedClock, db_path: Path) -> None:
    statements: list[str] = []
    mesh.connection().set_trace_callback(statements.append)
    _exercise(mesh, clock)
    mesh.connection().set_trace_callback(None)

    planner = sqlite3.connect(db_path)
    seen: set[str] = set()
    bad: list[str] = []
    for sql in dict.fromkeys(statements):
        if "agent_" not in sql or not re.match(r"\s*(SELECT|UPDATE|DELETE)", sql, re.IGNORECASE):
            continue
        plan = [row[3] for row in planner.execute(f"EXPLAIN QUERY PLAN {sql}")]
        for label, (pattern, index) in HOT_QUERIES.items():
            if re.search(pattern, sql, re.DOTALL):
                seen.add(label)
                if not any(index in detail for detail in plan):
                    bad.append(f"{label} does not use {index}: {plan}")
        for detail in plan:
            full_scan = re.match(r"SCAN (agent_messages|agent_sessions)\b", detail) and (
                "USING" not in detail
            )
            # The roster reads every session on purpose; messages are never scanned.
            if full_scan and (
                "agent_messages" in detail
                or "agent_name" in sql
                and "GROUP BY agent_name" not in sql
            ):
                bad.append(f"{detail}  <=  {' '.join(sql.split())[:160]}")
    planner.close()
    assert set(HOT_QUERIES) <= seen, f"not exercised: {set(HOT_QUERIES) - seen}"
    assert not bad, "full scans:\n" + "\n".join(bad)


def test_a_folder_or_a_path_below_a_file_is_refused_with_exit_code_3(tmp_path: Path) -> None:
    folder = tmp_path / "meshes"
    folder.mkdir()
    with pytest.raises(NotAMeshDatabase, match="folder") as info:
        Mesh(folder)
    assert info.value.exit_code == 3 and list(folder.iterdir()) == []
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("mine")
    with pytest.raises(DatabaseUnusable) as below_a_file:
        Mesh(not_a_folder / "agent-mesh.db")
    assert below_a_file.value.exit_code == 3 and not_a_folder.read_text() == "mine"


def test_a_failed_migration_leaves_the_seed_file_as_it_was(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_seed_file(
        db_path,
        sessions=[
            {"session_id": "s1", "agent_name": "kept", "registered_at": "t", "last_heartbeat": "t"}
        ],
    )
    # The last statement of the upgrade fails, after the indexes were created.
    monkeypatch.setitem(
        db.MIGRATIONS,
        SCHEMA_VERSION,
        db.MIGRATIONS[SCHEMA_VERSION] + ";\nCREATE TABLE agent_sessions (x)",
    )
    with pytest.raises(DatabaseUnusable, match="already exists") as info:
        Mesh(db_path)
    assert info.value.exit_code == 3
    plain = sqlite3.connect(db_path)
    assert plain.execute("PRAGMA user_version").fetchone()[0] == 0
    assert (
        plain.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE 'idx_%'").fetchone()[0]
        == 0
    )
    assert plain.execute("SELECT agent_name FROM agent_sessions").fetchall() == [("kept",)]
    plain.close()
    monkeypatch.undo()
    with Mesh(db_path) as mesh:  # the next attempt, with a good upgrade, works
        assert [a.agent_name for a in mesh.agents("all")] == ["kept"]
