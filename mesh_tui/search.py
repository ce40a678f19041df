"""Full-text search over message text, in mesh-tui's own index file.

The mesh database is shared with other clients, so nothing is added to it: no trigger,
no virtual table (another client's SQLite may lack FTS5, and its inserts must never
depend on it). Instead the TUI copies message text, by increasing message_id, into an
FTS5 trigram index in a file of its own, and catches up from the last id it indexed.
The copy runs inside SQLite (the mesh attached read-only to the index's connection, one
statement per batch), so a batch costs the same few Python calls however many messages
it holds, and the thread doing it leaves the interpreter lock free while SQLite works:
the app's event loop keeps answering keys during the first build of a big mesh.
After each clean-up of the mesh (its `last_cleanup` stamp moved) `prune` drops what the
clean-up purged: a purged message's text must not match any more, and its stored copy is
overwritten (secure_delete; FTS5 drops its trigrams from the index when it next merges).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from mesh_core.mesh import Mesh

MIN_QUERY = 3  # trigram search needs three characters
BATCH = 20_000
BUSY_TIMEOUT_MS = 5_000

# A message's thread and text as the rest of the mesh reads them (mesh_core.rows): a
# parent id that is not a positive integer makes the message its own thread, and text
# of any other type another client stored is searched as its text form.
_THREAD = (
    "CASE WHEN typeof(original_message_id) = 'integer' AND original_message_id > 0 "
    "THEN original_message_id ELSE message_id END"
)
_TEXT = "CASE WHEN content IS NULL THEN '' ELSE CAST(content AS TEXT) END"


class SearchIndex:
    """The index for one mesh database; `path` None keeps it in memory (tests)."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(path) if path else ":memory:",
            check_same_thread=False,
            isolation_level=None,
            uri=True,  # lets ATTACH open the mesh read-only by a file: URI
        )
        if path is not None:
            path.chmod(0o600)  # message text: the person's eyes only
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA secure_delete = ON")
        self._db.executescript(
            "CREATE VIRTUAL TABLE IF NOT EXISTS body USING fts5("
            "  content, thread_id UNINDEXED, tokenize='trigram');"
            "CREATE TABLE IF NOT EXISTS progress (db TEXT PRIMARY KEY, last_id INTEGER);"
            "CREATE TABLE IF NOT EXISTS pruned (db TEXT PRIMARY KEY, cleanup TEXT);"
        )
        self._attached: tuple[str, int, int] | None = None  # (path, device, inode)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def interrupt(self) -> None:
        """Stop a batch in progress (the app is leaving); safe from any thread."""
        try:
            self._db.interrupt()
        except sqlite3.ProgrammingError:
            pass  # already closed

    def _attach(self, mesh: Mesh) -> None:
        """Under the lock: the mesh file attached read-only as `mesh`, again if the file
        at its path was replaced (an attached file stays the one first opened)."""
        path = str(mesh.path)
        try:
            found = os.stat(path)
        except OSError as exc:
            raise sqlite3.OperationalError(f"unable to open the mesh: {exc}") from exc
        key = (path, found.st_dev, found.st_ino)
        if self._attached == key:
            return
        if self._attached is not None:
            self._db.execute("DETACH DATABASE mesh")
            self._attached = None
        uri = Path(os.path.abspath(path)).as_uri() + "?mode=ro"
        self._db.execute("ATTACH DATABASE ? AS mesh", (uri,))
        self._attached = key

    def indexed_up_to(self, mesh: Mesh) -> int:
        with self._lock:
            return self._last_id(mesh)

    def _last_id(self, mesh: Mesh) -> int:
        row = self._db.execute(
            "SELECT last_id FROM progress WHERE db = ?", (str(mesh.path),)
        ).fetchone()
        return int(row[0]) if row else 0

    def newest(self, mesh: Mesh) -> int:
        """The mesh's newest message id (how far a build has to go)."""
        with self._lock:
            self._attach(mesh)
            return self._newest()

    def _newest(self) -> int:
        row = self._db.execute("SELECT max(message_id) FROM mesh.agent_messages").fetchone()
        return int(row[0]) if row and isinstance(row[0], int) else 0

    def catch_up(self, mesh: Mesh, batch: int = BATCH) -> int:
        """Index up to `batch` messages newer than the last indexed; returns how many
        (0: up to date). A database whose ids went backwards (replaced) starts over.
        The same five statements whatever the batch size."""
        with self._lock:
            self._attach(mesh)
            last = self._last_id(mesh)
            if self._newest() < last:
                self._db.execute("DELETE FROM body")
                last = 0
            count, top = self._db.execute(
                "SELECT count(*), max(message_id) FROM (SELECT message_id "
                "FROM mesh.agent_messages WHERE message_id > ? ORDER BY message_id LIMIT ?)",
                (last, batch),
            ).fetchone()
            if not count:
                return 0
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO body (rowid, content, thread_id) "
                    f"SELECT message_id, {_TEXT}, {_THREAD} FROM mesh.agent_messages "
                    "WHERE message_id > ? AND message_id <= ?",
                    (last, top),
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO progress (db, last_id) VALUES (?, ?)",
                    (str(mesh.path), top),
                )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # an interrupt may have ended it already
                    self._db.execute("ROLLBACK")
                raise
            return int(count)

    def prune(self, mesh: Mesh, batch: int = BATCH) -> int:
        """Drop the indexed messages the mesh no longer has; returns how many. Does the
        walk only once per clean-up of the mesh (nothing else deletes messages), a
        range of `batch` indexed messages per statement, inside SQLite."""
        with self._lock:
            self._attach(mesh)
            row = self._db.execute(
                "SELECT value FROM mesh.mesh_meta WHERE key = 'last_cleanup'"
            ).fetchone()
            cleanup = str(row[0]) if row and row[0] is not None else None
            done = self._db.execute(
                "SELECT cleanup FROM pruned WHERE db = ?", (str(mesh.path),)
            ).fetchone()
        if cleanup is None or (done is not None and done[0] == cleanup):
            return 0
        removed, after = 0, 0
        while True:
            with self._lock:
                self._attach(mesh)
                (top,) = self._db.execute(
                    "SELECT max(rowid) FROM (SELECT rowid FROM body WHERE rowid > ? "
                    "ORDER BY rowid LIMIT ?)",
                    (after, batch),
                ).fetchone()
                if top is None:
                    break
                removed += self._db.execute(
                    "DELETE FROM body WHERE rowid > ? AND rowid <= ? AND rowid NOT IN "
                    "(SELECT message_id FROM mesh.agent_messages "
                    " WHERE message_id > ? AND message_id <= ?)",
                    (after, top, after, top),
                ).rowcount
            after = top
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
                if not isinstance(thread_id, int):
                    continue  # an index an older mesh-tui wrote kept another client's value
                found[thread_id] = None
                if len(found) >= limit:
                    break
            cursor.close()
        return list(found)
