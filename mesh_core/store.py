"""The store: this process's connections to one mesh file, and its read/write API.

`db.py` opens a file (refusing anything that is not a mesh, setting the pragmas, migrating);
this module keeps one connection per thread on top of it, runs every write as one short
`BEGIN IMMEDIATE` transaction retried while another process holds the write lock (so
"database is locked" never reaches a user), and turns SQLite's errors into the mesh's.
Everything above it (sessions, messaging, maintenance, views) reads and writes through
`Store.read` and `Store.write`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from . import db, files
from .clock import SYSTEM_CLOCK, Clock, iso
from .config import DEFAULT_CONFIG, MeshConfig, resolve_db_path
from .errors import (
    CorruptDatabase,
    DatabaseBusy,
    DatabasePermission,
    DatabaseUnusable,
    InvalidArgument,
)

T = TypeVar("T")
Params = Sequence[Any] | dict[str, Any]


class Store:
    """One mesh file, its settings and its clock. Thread-safe: each thread gets its own
    connection (sqlite3 connections must stay on one thread)."""

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        config: MeshConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.path: Path = resolve_db_path(db_path)
        self.config = config or DEFAULT_CONFIG
        self.clock = clock or SYSTEM_CLOCK
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        # Bumped by reconnect(): a thread whose connection is older opens a fresh one.
        self._generation = 0
        self._file_id: tuple[int, int] | None = None
        self._opened = False  # after the first open, a missing file is never recreated
        self.connection()  # open now: a bad database is reported at once

    # -- connections --------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.generation != self._generation:
            self._forget(conn)  # reconnect() was called: this one may hold a replaced file
            conn = None
        if conn is None:
            conn = self._open()
        return conn

    def _open(self) -> sqlite3.Connection:
        if self._closed:
            raise InvalidArgument("this Mesh is closed")
        expected, generation = self._file_id, self._generation
        if expected is not None and file_id(self.path) != expected:
            # Never recreate, nor half-join, a file pulled away from the other threads:
            # the participant loop notices and calls reconnect().
            raise database_gone(self.path)
        try:
            # Once this store has a file, a new thread joins that file or nothing: it
            # must never create a fresh one where it was deleted.
            conn = db.connect(self.path, self.config, create=not self._opened)
        except FileNotFoundError as exc:  # it vanished while being opened
            raise database_gone(self.path) from exc
        if expected is not None and file_id(self.path) != expected:
            conn.close()
            raise database_gone(self.path)
        self._local.conn, self._local.generation = conn, generation
        with self._lock:
            self._opened = True
            self._connections.append(conn)
            if self._file_id is None:
                self._file_id = file_id(self.path)
        return conn

    def _forget(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        try:
            conn.close()
        except sqlite3.Error:
            pass
        self._local.conn = None

    def file_changed(self) -> bool:
        """True when the path no longer names the file our connections hold open: it was
        deleted, moved away or replaced. SQLite would go on writing into the old inode,
        unseen by every other process, so a long-running participant checks this."""
        return self._file_id is not None and file_id(self.path) != self._file_id

    def reconnect(self) -> None:
        """Drop every connection; each thread opens the path afresh on its next call
        (refused, untouched, like any open, if what is there now is not a mesh)."""
        with self._lock:
            self._generation += 1
            self._file_id = None
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._forget(conn)
        self.connection()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    # -- reading and writing ------------------------------------------------------------

    def write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run `body` in one write transaction, retrying while the lock is contended.
        Whatever `body` returns is built before COMMIT: if building fails, it rolls back."""
        conn = self.connection()
        deadline = time.monotonic() + self.config.write_retry
        delay = 0.005
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if db.is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.2)
                    continue
                raise self.unusable(exc) from exc
            try:
                result = body(conn)
                conn.execute("COMMIT")
                return result
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if (
                    isinstance(exc, sqlite3.OperationalError)
                    and db.is_busy(exc)
                    and time.monotonic() < deadline
                ):
                    time.sleep(delay)
                    continue
                if _is_bad_argument(exc):
                    raise _bad_argument(exc) from exc
                if isinstance(exc, sqlite3.DatabaseError):
                    raise self.unusable(exc) from exc
                raise

    def read(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """All rows of one query on this thread's connection, errors as the mesh's."""
        try:
            return self.connection().execute(sql, params).fetchall()
        except (UnicodeEncodeError, sqlite3.Error) as exc:
            if _is_bad_argument(exc):
                raise _bad_argument(exc) from exc
            if isinstance(exc, sqlite3.DatabaseError):
                raise self.unusable(exc) from exc
            raise

    def read_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = self.read(sql, params)
        return rows[0] if rows else None

    def unusable(self, exc: sqlite3.Error) -> DatabaseUnusable | DatabaseBusy:
        """The mesh's error for SQLite's: busy past the retry budget is exit 1 ("try
        again"), every other failure of the file exit 3."""
        if db.is_busy(exc):
            return DatabaseBusy(self.path, db.lock_holder(self.path))
        text = str(exc).lower()
        if "readonly" in text or "permission" in text or "unable to open" in text:
            return DatabasePermission(self.path, f"{exc}; {files.permission_hint(self.path)}")
        if "full" in text:
            return DatabaseUnusable(self.path, f"{exc}; free some disk space")
        return CorruptDatabase(self.path, f"{exc}")

    def data_version(self) -> int:
        """Changes whenever another connection commits: the cheap "anything new?" check."""
        return int(self.connection().execute("PRAGMA data_version").fetchone()[0])

    # -- time ---------------------------------------------------------------------------

    def now_dt(self) -> datetime:
        return self.clock.now()

    def now(self) -> str:
        return iso(self.clock.now())

    def ago(self, seconds: float) -> str:
        return iso(self.clock.now() - timedelta(seconds=seconds))

    def later(self, seconds: float) -> str:
        return iso(self.clock.now() + timedelta(seconds=seconds))


def canon_sql(column: str) -> str:
    """SQL for `column` in our timestamp form. Text order is time order only in that form,
    and other clients write other ISO-8601 forms ('2026-11-23 14:03:07', '+02:00');
    text SQLite cannot parse is compared as it is."""
    return f"coalesce(strftime('%Y-%m-%dT%H:%M:%fZ', {column}), {column})"


EXPIRES_SQL = canon_sql("expires_at")
# How much later than the instant it names another form's text can sort (a +14:00
# offset, no seconds): widening an index range by this keeps every such row in it.
TEXT_LEAD_SECONDS = 15 * 3600.0


def _is_bad_argument(exc: BaseException) -> bool:
    return isinstance(exc, UnicodeEncodeError) or (
        isinstance(exc, sqlite3.ProgrammingError) and "binding" in str(exc).lower()
    )


def _bad_argument(exc: BaseException) -> InvalidArgument:
    """A value SQLite cannot store (an undecodable byte, a list…) is the caller's
    mistake, not a broken database: say so, with exit code 1, not 3."""
    if isinstance(exc, UnicodeEncodeError):
        return InvalidArgument(
            "a name or id is not valid UTF-8 text (it holds an undecodable byte); "
            "re-encode it as UTF-8"
        )
    return InvalidArgument(f"a value of the wrong type was given ({exc})")


def database_gone(path: Path) -> DatabaseUnusable:
    return DatabaseUnusable(
        path,
        "the file was deleted, moved or replaced while in use; waiting for a mesh "
        "database to be there again (any mesh command creates a new one)",
    )


def file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, None if nothing is there."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino)
