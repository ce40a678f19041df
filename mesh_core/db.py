"""Opening the shared database: probing it, pragmas, schema, migrations, locks (the
file's own safety is in `files`).

A file that is not ours (not SQLite, another app's tables, a newer schema, corrupt) is
refused *before* anything writes to it, so it is left byte-for-byte as it was.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from pathlib import Path
from typing import NoReturn

from . import files
from .config import MeshConfig
from .errors import (
    CorruptDatabase,
    DatabaseBusy,
    DatabasePermission,
    DatabaseUnusable,
    NewerSchema,
    NotAMeshDatabase,
)

SQLITE_MAGIC = b"SQLite format 3\x00"
DECODE_TEXT = functools.partial(str, encoding="utf-8", errors="backslashreplace")
SCHEMA_VERSION = 1
MESH_TABLES = frozenset({"agent_sessions", "agent_messages"})
# Tables this project may add beside the original two; anything else means "not ours".
OWN_TABLES = MESH_TABLES | {"mesh_meta", "sqlite_sequence", "sqlite_stat1", "sqlite_stat4"}

# The original Node.js extension's tables, column for column (docs/contract.md §2.5).
SEED_TABLES = """
CREATE TABLE IF NOT EXISTS agent_sessions (
  session_id TEXT PRIMARY KEY,
  agent_name TEXT,
  agent_description TEXT,
  cwd TEXT,
  repo TEXT,
  status TEXT DEFAULT 'active',
  registered_at TEXT NOT NULL,
  last_heartbeat TEXT NOT NULL,
  metadata TEXT
);
CREATE TABLE IF NOT EXISTS agent_messages (
  message_id INTEGER PRIMARY KEY AUTOINCREMENT,
  sender_session_id TEXT NOT NULL,
  recipient_session_id TEXT NOT NULL,
  content TEXT NOT NULL,
  original_message_id INTEGER,
  priority TEXT DEFAULT 'normal',
  created_at TEXT NOT NULL,
  read INTEGER DEFAULT 0,
  read_at TEXT,
  expires_at TEXT
);
"""

# Each index serves one hot query (see the query-plan test in tests/test_db.py):
SCHEMA_V1 = (
    SEED_TABLES
    + """
-- inbox poll, unread counts, queue depth: only unread rows, per recipient, in time order.
-- `read` is a key column (always 0 here) so that the planner, which has no statistics,
-- sees two equality columns and prefers this index to idx_messages_recipient, which would
-- walk a recipient's whole history (a poll would grow with the mesh).
CREATE INDEX IF NOT EXISTS idx_messages_unread
  ON agent_messages(recipient_session_id, read, created_at) WHERE read = 0;
-- thread fetch: all replies of a root
CREATE INDEX IF NOT EXISTS idx_messages_thread ON agent_messages(original_message_id);
-- rate-limit count and auto-thread lookup: messages of one (sender, recipient) pair by time
CREATE INDEX IF NOT EXISTS idx_messages_pair
  ON agent_messages(sender_session_id, recipient_session_id, created_at);
-- activity per recipient (roster sparkline) and per-agent thread lists
CREATE INDEX IF NOT EXISTS idx_messages_recipient
  ON agent_messages(recipient_session_id, created_at);
-- clean-up: purge of read messages, expiry of unread ones
CREATE INDEX IF NOT EXISTS idx_messages_read_at ON agent_messages(read_at) WHERE read = 1;
CREATE INDEX IF NOT EXISTS idx_messages_expires
  ON agent_messages(expires_at) WHERE expires_at IS NOT NULL;
-- recipient lookup by workspace name (exact, then case-insensitive)
CREATE INDEX IF NOT EXISTS idx_sessions_name ON agent_sessions(agent_name COLLATE NOCASE);
-- roster and the stale -> stopped sweep
CREATE INDEX IF NOT EXISTS idx_sessions_status ON agent_sessions(status, last_heartbeat);
-- small key/value table: last clean-up time, so all participants share "once a minute"
CREATE TABLE IF NOT EXISTS mesh_meta (key TEXT PRIMARY KEY, value TEXT);
"""
)

MIGRATIONS: dict[int, str] = {1: SCHEMA_V1}


def _probe(path: Path) -> int:
    """Check, read-only, that `path` is a mesh database we can use; return its version.

    Only SQLite opens the file while it may be usable: closing any other descriptor of it
    would drop every POSIX lock this process's connections hold on it, and the next
    process to close would then take itself for the last one and delete the live WAL."""
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    if shm.exists():
        return _check_version(path, *_read_schema(path, f"{path.resolve().as_uri()}?mode=ro"))
    if not wal.exists() or wal.stat().st_size == 0:
        # Nothing is mid-transaction: read the file as it is. A plain read-only open of
        # a WAL-mode file would leave a new -shm beside a file we may then refuse.
        return _check_version(
            path, *_read_schema(path, f"{path.resolve().as_uri()}?mode=ro&immutable=1")
        )
    # A -wal without its -shm (a copy, or a crash): its commits count, but SQLite cannot
    # read them read-only without creating the -shm. Read a private copy instead. No
    # connection of this process holds the file (it would have a -shm), so the copy's
    # descriptors drop no lock of ours. (A rare case: its modules load only here.)
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="agent-mesh-probe-") as scratch:
        copy = Path(scratch) / "probe.db"
        try:
            shutil.copyfile(path, copy)
            shutil.copyfile(wal, f"{copy}-wal")
        except OSError as exc:
            raise DatabasePermission(path, f"cannot read it ({exc.strerror})") from exc
        return _check_version(path, *_read_schema(path, f"{copy.as_uri()}?mode=ro"))


def _read_schema(path: Path, uri: str) -> tuple[int, set[str]]:
    """(user_version, table names) of the database at `uri`, opened read-only."""
    try:
        probe = sqlite3.connect(uri, uri=True, timeout=5.0)
        try:
            version = int(probe.execute("PRAGMA user_version").fetchone()[0])
            tables = {
                row[0]
                for row in probe.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        finally:
            probe.close()
    except sqlite3.DatabaseError as exc:
        _refuse_unreadable(path, exc)
    return version, tables


def _check_version(path: Path, version: int, tables: set[str]) -> int:
    """Refuse a newer schema or another application's tables; return the version."""
    if version > SCHEMA_VERSION:
        raise NewerSchema(
            path,
            f"its schema version {version} is newer than this agent-mesh knows "
            f"({SCHEMA_VERSION}); upgrade agent-mesh",
        )
    foreign = tables - OWN_TABLES
    if foreign or (version > 0 and not MESH_TABLES <= tables):
        raise NotAMeshDatabase(
            path,
            "it belongs to another application (tables: "
            + ", ".join(sorted(tables)[:8])
            + "); use another --db path",
        )
    return version


def _refuse_unreadable(path: Path, exc: sqlite3.DatabaseError) -> NoReturn:
    """Say why SQLite could not read `path`: no permission, not SQLite, or corrupt."""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_MAGIC))
    except PermissionError as perm:
        raise DatabasePermission(path, f"no permission to read it ({perm.strerror})") from exc
    if header != SQLITE_MAGIC:
        raise NotAMeshDatabase(
            path, "not an SQLite database; point --db or AGENT_MESH_DB at a mesh database"
        ) from exc
    raise CorruptDatabase(
        path, f"it cannot be read as SQLite ({exc}); restore it or move it aside"
    ) from exc


# The byte of the -shm file that SQLite's WAL write lock covers (WALINDEX_LOCK_OFFSET).
WAL_WRITE_LOCK_BYTE = 120


def lock_holder(path: Path) -> int | None:
    """The pid holding the WAL write lock on `path`, from Linux's /proc/locks; None
    where that cannot be known (another OS, another pid namespace, no -shm)."""
    try:
        info = os.stat(f"{path}-shm")
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in lines:
        fields = line.split()
        # "1: POSIX  ADVISORY  WRITE 12097 fe:00:2146465 120 120"
        if len(fields) < 8 or fields[3] != "WRITE" or fields[5] != device:
            continue
        try:
            pid, start = int(fields[4]), int(fields[6])
            end = WAL_WRITE_LOCK_BYTE if fields[7] == "EOF" else int(fields[7])
        except ValueError:
            continue
        if start <= WAL_WRITE_LOCK_BYTE <= end and pid > 0:
            return pid
    return None


def is_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked" / "busy": another process holds a lock."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def connect(path: Path, config: MeshConfig, *, create: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) the mesh database with the pragmas of docs/contract.md §2.3.

    With `create=False` a missing file raises FileNotFoundError and is never created,
    not even if it vanishes between the checks and SQLite's own open (`mode=rw`)."""
    files.refuse_non_file(path)
    try:
        existed = path.stat().st_size > 0
    except FileNotFoundError:
        existed = False
    except OSError as exc:  # a parent of it is a file, a loop of links, ...
        raise DatabaseUnusable(path, f"{exc.strerror}; use another --db path") from exc
    if not existed and not create:
        raise FileNotFoundError(str(path))
    if existed:
        version = _probe(path)
    else:
        version = 0
    files.prepare_path(path, create)
    target, uri = (str(path), False) if create else (f"{path.resolve().as_uri()}?mode=rw", True)
    try:
        conn = sqlite3.connect(
            target,
            timeout=config.busy_timeout_ms / 1000,
            isolation_level=None,  # we open every transaction explicitly
            check_same_thread=False,
            uri=uri,
        )
        conn.row_factory = sqlite3.Row
        # Another client may store TEXT that is not UTF-8 (CAST(X'68ff69' AS TEXT)): the
        # default decoder raises on the whole fetch, jamming every row behind it. Show the
        # bad bytes escaped (`h\\xffi`) instead. (Store.read fetches with the default
        # decoder, which is several times faster, and falls back to this one.)
        conn.text_factory = DECODE_TEXT
        conn.execute(f"PRAGMA busy_timeout = {int(config.busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = OFF")
        if version < SCHEMA_VERSION:
            _migrate(conn, config)
    except sqlite3.OperationalError as exc:
        if not create and not path.exists():
            raise FileNotFoundError(str(path)) from exc
        if is_busy(exc):
            raise DatabaseBusy(path, lock_holder(path)) from exc
        text = str(exc).lower()
        if "readonly" in text or "unable to open" in text or "permission" in text:
            raise DatabasePermission(path, f"{exc}; {files.permission_hint(path)}") from exc
        # A schema upgrade that failed was rolled back: say so with the path, not a trace.
        raise DatabaseUnusable(
            path, f"{exc} (opening it at schema version {version}); try again, or move it aside"
        ) from exc
    except sqlite3.DatabaseError as exc:
        raise CorruptDatabase(path, f"{exc}; restore it or move it aside") from exc
    return conn


def _migrate(conn: sqlite3.Connection, config: MeshConfig) -> None:
    """Bring the schema up to SCHEMA_VERSION in one transaction (safe against races).
    A file that holds no rate limit gets this process's (docs/contract.md §4.5): from
    then on it is the mesh's, the same for everyone on the file."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        for target in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target].split(";"):
                if statement.strip():
                    conn.execute(statement)
        if current < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.executemany(
            "INSERT OR IGNORE INTO mesh_meta (key, value) VALUES (?, ?)",
            [("rate_limit", str(config.rate_limit)), ("rate_window", repr(config.rate_window))],
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
