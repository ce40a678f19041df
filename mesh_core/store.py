"""The store: this process's connections to one mesh file, and its read/write API.

`db.py` opens a file (refusing anything that is not a mesh, setting the pragmas, migrating);
this module keeps one connection per thread on top of it (closed when that thread ends, so
a process whose work runs on short-lived worker threads keeps its fds flat), runs every write as one short
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
import weakref
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
IN_CHUNK = 500  # values per `IN (...)` list of a read_in


# Connections of ended threads kept open for the next new thread. Closing one instead would
# not free its fd: SQLite keeps the fd of a closed connection open while another connection
# of this process holds a lock on the file (every WAL connection holds one), so only reuse
# keeps a process that runs its work on short-lived threads at a flat fd count.
IDLE_CONNECTIONS = 4
# How sqlite3 says a TEXT value is not UTF-8 (Store.read then reads it again, escaped).
_UNDECODABLE = "Could not decode to UTF-8"


class _Slot:
    """A thread's connection, kept in the store's thread-local data. Python drops that
    data when the thread ends; a finalizer on the slot then hands the connection back."""

    __slots__ = ("__weakref__", "conn", "generation")

    def __init__(self, conn: sqlite3.Connection, generation: int) -> None:
        self.conn, self.generation = conn, generation


class Store:
    """One mesh file, its settings and its clock. Thread-safe: each thread has its own
    connection while it runs (a transaction must stay on one thread); when the thread
    ends, the connection goes to a small pool for the next thread, or is closed."""

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
        # Every open connection, in use or idle, by id: close() closes them all.
        self._connections: dict[int, sqlite3.Connection] = {}
        self._idle: list[tuple[sqlite3.Connection, int]] = []  # (connection, generation)
        self._lock = threading.Lock()
        self._closed = False
        # Bumped by reconnect(): a thread whose connection is older opens a fresh one.
        self._generation = 0
        self._file_id: tuple[int, int] | None = None
        self._opened = False  # after the first open, a missing file is never recreated
        # Workspace names of the sessions this process has read, kept when a session is
        # forgotten (its row deleted), so its messages still show its name (sessions.names).
        self.names_seen: dict[str, str] = {}
        self.connection()  # open now: a bad database is reported at once

    # -- connections --------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (or taken from the pool) on first use."""
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is not None and slot.generation != self._generation:
            self._forget(slot)  # reconnect() was called: this one may hold a replaced file
            slot = None
        if slot is None:
            return self._open()
        return slot.conn

    def _open(self) -> sqlite3.Connection:
        if self._closed:
            raise InvalidArgument("this Mesh is closed")
        expected, generation = self._file_id, self._generation
        if expected is not None and file_id(self.path) != expected:
            # Never recreate, nor half-join, a file pulled away from the other threads:
            # the participant loop notices and calls reconnect().
            raise database_gone(self.path)
        conn = self._reuse(generation)
        if conn is None:
            try:
                # Once this store has a file, a new thread joins that file or nothing: it
                # must never create a fresh one where it was deleted.
                conn = db.connect(self.path, self.config, create=not self._opened)
            except FileNotFoundError as exc:  # it vanished while being opened
                raise database_gone(self.path) from exc
            if expected is not None and file_id(self.path) != expected:
                conn.close()
                raise database_gone(self.path)
            with self._lock:
                self._opened = True
                self._connections[id(conn)] = conn
                if self._file_id is None:
                    self._file_id = file_id(self.path)
        slot = _Slot(conn, generation)
        self._local.slot = slot
        weakref.finalize(slot, _give_back, weakref.ref(self), conn, generation)
        return conn

    def _reuse(self, generation: int) -> sqlite3.Connection | None:
        with self._lock:
            while self._idle:
                conn, made = self._idle.pop()
                if made == generation:
                    return conn
                self._connections.pop(id(conn), None)
                _close_quietly(conn)
        return None

    def _give_back(self, conn: sqlite3.Connection, generation: int) -> None:
        """A thread that held `conn` ended: pool it, or close it if the pool is full,
        the store is closed or reconnected, or the thread left a transaction open."""
        with self._lock:
            if id(conn) not in self._connections:
                return  # already closed by close() or reconnect()
            keep = (
                not self._closed
                and generation == self._generation
                and len(self._idle) < IDLE_CONNECTIONS
                and not conn.in_transaction
            )
            if keep:
                self._idle.append((conn, generation))
                return
            self._connections.pop(id(conn), None)
        _close_quietly(conn)

    def _forget(self, slot: _Slot) -> None:
        """Close this thread's connection now (its finalizer then finds it gone)."""
        with self._lock:
            self._connections.pop(id(slot.conn), None)
        _close_quietly(slot.conn)
        self._local.slot = None

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
            idle, self._idle = self._idle, []
            for conn, _made in idle:
                self._connections.pop(id(conn), None)
        for conn, _made in idle:
            _close_quietly(conn)
        slot = getattr(self._local, "slot", None)
        if slot is not None:
            self._forget(slot)
        self.connection()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, {}
            self._idle = []
        for conn in connections.values():
            _close_quietly(conn)
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
        """All rows of one query on this thread's connection, errors as the mesh's.

        Fetched with Python's own UTF-8 decoder (the escaping `text_factory` costs a
        Python call per value, most of a roster read); a value that is not UTF-8 fails
        that fetch, and the query is read again with the escaping one."""
        try:
            conn = self.connection()
            try:
                conn.text_factory = str
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if not str(exc).startswith(_UNDECODABLE):
                    raise
            finally:
                conn.text_factory = db.DECODE_TEXT
            return conn.execute(sql, params).fetchall()
        except (UnicodeEncodeError, sqlite3.Error) as exc:
            if _is_bad_argument(exc):
                raise _bad_argument(exc) from exc
            if isinstance(exc, sqlite3.DatabaseError):
                raise self.unusable(exc) from exc
            raise

    def read_in(
        self, sql: str, values: Sequence[Any], before: Sequence[Any] = ()
    ) -> list[sqlite3.Row]:
        """`sql` with `{marks}` standing for the placeholders of `values`, read in
        chunks of IN_CHUNK (SQLite caps a statement's parameters); `before` are the
        parameters ahead of the list."""
        rows: list[sqlite3.Row] = []
        for start in range(0, len(values), IN_CHUNK):
            chunk = values[start : start + IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows += self.read(sql.format(marks=marks), (*before, *chunk))
        return rows

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


def _give_back(store_ref: weakref.ref[Store], conn: sqlite3.Connection, generation: int) -> None:
    """The finalizer of a thread's slot: its thread ended (or the store went away)."""
    store = store_ref()
    if store is not None:
        store._give_back(conn, generation)
    else:
        _close_quietly(conn)


def _close_quietly(conn: sqlite3.Connection) -> None:
    try:
        conn.close()
    except sqlite3.Error:
        pass


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
