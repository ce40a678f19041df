"""Full-text search over message text, in mesh-tui's own index file.

The mesh database is shared with other clients, so nothing is added to it: no trigger,
no virtual table (another client's SQLite may lack FTS5, and its inserts must never
depend on it). Instead the TUI copies message text, by increasing message_id, into an
FTS5 trigram index in a file of its own, and catches up from the last id it indexed.
After each clean-up of the mesh (its `last_cleanup` stamp moved) `prune` drops what the
clean-up purged: a purged message's text must not match any more, and its stored copy is
overwritten (secure_delete; FTS5 drops its trigrams from the index when it next merges).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from mesh_core.mesh import Mesh

MIN_QUERY = 3  # trigram search needs three characters
BATCH = 20_000


class SearchIndex:
    """The index for one mesh database; `path` None keeps it in memory (tests)."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, isolation_level=None
        )
        if path is not None:
            path.chmod(0o600)  # message text: the person's eyes only
        self._db.execute("PRAGMA secure_delete = ON")
        self._db.executescript(
            "CREATE VIRTUAL TABLE IF NOT EXISTS body USING fts5("
            "  content, thread_id UNINDEXED, tokenize='trigram');"
            "CREATE TABLE IF NOT EXISTS progress (db TEXT PRIMARY KEY, last_id INTEGER);"
            "CREATE TABLE IF NOT EXISTS pruned (db TEXT PRIMARY KEY, cleanup TEXT);"
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def indexed_up_to(self, mesh: Mesh) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT last_id FROM progress WHERE db = ?", (str(mesh.path),)
            ).fetchone()
        return int(row[0]) if row else 0

    def catch_up(self, mesh: Mesh, batch: int = BATCH) -> int:
        """Index up to `batch` messages newer than the last indexed; returns how many
        (0: up to date). A database whose ids went backwards (replaced) starts over."""
        last = self.indexed_up_to(mesh)
        top = mesh.store.read_one("SELECT max(message_id) FROM agent_messages")
        newest = int(top[0]) if top and top[0] is not None else 0
        if newest < last:
            with self._lock:
                self._db.execute("DELETE FROM body")
            last = 0
        rows = mesh.store.read(
            "SELECT message_id, coalesce(original_message_id, message_id), content "
            "FROM agent_messages WHERE message_id > ? ORDER BY message_id LIMIT ?",
            (last, batch),
        )
        if not rows:
            return 0
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO body (rowid, content, thread_id) VALUES (?, ?, ?)",
                [
                    (int(r[0]), r[2] if isinstance(r[2], str) else str(r[2] or ""), r[1])
                    for r in rows
                ],
            )
            self._db.execute(
                "INSERT OR REPLACE INTO progress (db, last_id) VALUES (?, ?)",
                (str(mesh.path), int(rows[-1][0])),
            )
            self._db.execute("COMMIT")
        return len(rows)

    def prune(self, mesh: Mesh, batch: int = BATCH) -> int:
        """Drop the indexed messages the mesh no longer has; returns how many. Does the
        walk only once per clean-up of the mesh (nothing else deletes messages)."""
        row = mesh.store.read_one("SELECT value FROM mesh_meta WHERE key = 'last_cleanup'")
        cleanup = str(row[0]) if row and row[0] is not None else None
        with self._lock:
            done = self._db.execute(
                "SELECT cleanup FROM pruned WHERE db = ?", (str(mesh.path),)
            ).fetchone()
        if cleanup is None or (done is not None and done[0] == cleanup):
            return 0
        removed, after = 0, 0
        while True:
            with self._lock:
                ids = [
                    int(r[0])
                    for r in self._db.execute(
                        "SELECT rowid FROM body WHERE rowid > ? ORDER BY rowid LIMIT ?",
                        (after, batch),
                    )
                ]
            if not ids:
                break
            have = {
                int(r[0])
                for r in mesh.store.read(
                    "SELECT message_id FROM agent_messages WHERE message_id BETWEEN ? AND ?",
                    (ids[0], ids[-1]),
                )
            }
            gone = [(i,) for i in ids if i not in have]
            if gone:
                with self._lock:
                    self._db.executemany("DELETE FROM body WHERE rowid = ?", gone)
                removed += len(gone)
            after = ids[-1]
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO pruned (db, cleanup) VALUES (?, ?)",
                (str(mesh.path), cleanup),
            )
        return removed

    def threads_matching(self, text: str, limit: int = 100) -> list[int]:
        """Thread ids whose messages contain `text` (case-insensitive), newest first."""
        needle = text.strip()
        if len(needle) < MIN_QUERY:
            return []
        phrase = '"' + needle.replace('"', '""') + '"'
        found: dict[int, None] = {}
        with self._lock:
            # newest match first, stopping at `limit` threads: a common phrase must not
            # make the search read every message it occurs in
            cursor = self._db.execute(
                "SELECT thread_id FROM body WHERE body MATCH ? ORDER BY rowid DESC", (phrase,)
            )
            for (thread_id,) in cursor:
                found[int(thread_id)] = None
                if len(found) >= limit:
                    break
            cursor.close()
        return list(found)
