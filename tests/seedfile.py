"""The original schema, as the original Node.js extension (or a person at the `sqlite3`
shell) creates it: only its columns, no indexes, no user_version. Written here by hand,
not imported from mesh_core, so that a change to the core's schema cannot hide from it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

SEED_SQL = """
CREATE TABLE IF NOT EXISTS agent_sessions (
  session_id TEXT PRIMARY KEY, agent_name TEXT, agent_description TEXT, cwd TEXT,
  repo TEXT, status TEXT DEFAULT 'active', registered_at TEXT NOT NULL,
  last_heartbeat TEXT NOT NULL, metadata TEXT);
CREATE TABLE IF NOT EXISTS agent_messages (
  message_id INTEGER PRIMARY KEY AUTOINCREMENT, sender_session_id TEXT NOT NULL,
  recipient_session_id TEXT NOT NULL, content TEXT NOT NULL, original_message_id INTEGER,
  priority TEXT DEFAULT 'normal', created_at TEXT NOT NULL, read INTEGER DEFAULT 0,
  read_at TEXT, expires_at TEXT);
"""


def write_seed_file(
    path: Path,
    sessions: Iterable[dict[str, object]] = (),
    messages: Iterable[dict[str, object]] = (),
) -> None:
    """Create `path` with plain sqlite3 (rollback journal, user_version 0) and rows given
    as column -> value dicts (columns left out take the original defaults)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.executescript(SEED_SQL)
        for table, rows in (("agent_sessions", sessions), ("agent_messages", messages)):
            for row in rows:
                columns = ", ".join(row)
                marks = ", ".join("?" * len(row))
                conn.execute(
                    f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values())
                )
        conn.commit()
    finally:
        conn.close()


def plain_rows(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
    """Look at the file with plain sqlite3, the way another client would."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
