"""The mesh: registration, heartbeats, and every messaging rule of SPEC §4.

Each rule lives here once; the CLI, the MCP server and the TUI are thin layers that call
these methods. Every write is one short `BEGIN IMMEDIATE` transaction, retried while
another process holds the write lock, so "database is locked" never reaches a user.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Self, TypeVar

from . import db
from .clock import SYSTEM_CLOCK, Clock, canonical, iso, parse_ts_or_none
from .config import DEFAULT_CONFIG, MeshConfig, resolve_db_path
from .errors import (
    ContentTooLarge,
    CorruptDatabase,
    DatabasePermission,
    DatabaseUnusable,
    EmptyContent,
    InvalidArgument,
    InvalidContent,
    InvalidMessageId,
    InvalidName,
    InvalidPriority,
    MessageNotFound,
    NoBroadcastRecipients,
    RateLimited,
    SelfMessage,
    SessionNotFound,
    UnknownRecipient,
)
from .identity import identify
from .models import PRIORITY_ORDER, Agent, CleanupReport, Message, Status, priority_rank
from .text import has_unsafe

T = TypeVar("T")

BROADCAST = "*"
MAX_NAME_CHARS = 128
STATUS_FILTERS = ("active", "stale", "stopped", "all", "online")
KINDS = ("agent", "human", "cli")
# Retry a write that finds the lock taken for this long before giving up (busy_timeout
# already waits 5 s per attempt; this covers a pathological pile-up of many writers).
WRITE_RETRY_SECONDS = 60.0

_PRIORITY_SQL = "CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'low' THEN 3 ELSE 2 END"


def _canon(column: str) -> str:
    """SQL for `column` in our timestamp form. Text order is time order only in that form,
    and other clients write other ISO-8601 forms ('2026-11-23 14:03:07', '+02:00');
    text SQLite cannot parse is compared as it is."""
    return f"coalesce(strftime('%Y-%m-%dT%H:%M:%fZ', {column}), {column})"


_EXPIRES = _canon("expires_at")
# How much later than the instant it names another form's text can sort (a +14:00
# offset, no seconds): widening an index range by this keeps every such row in it.
TEXT_LEAD_SECONDS = 15 * 3600.0


@dataclass(frozen=True)
class SessionClaim:
    """What `Mesh.session_for` found: the session, and whether it was already active."""

    agent: Agent
    was_active: bool


def validate_priority(priority: object) -> str:
    if isinstance(priority, str) and priority.strip().lower() in PRIORITY_ORDER:
        return priority.strip().lower()
    raise InvalidPriority(priority)


def validate_content(content: object, limit: int) -> str:
    """Not empty after trimming, at most `limit` bytes of UTF-8, no NUL (SPEC §4.3)."""
    if not isinstance(content, str):
        raise InvalidContent(f"content must be text, not {type(content).__name__}")
    if not content.strip():
        raise EmptyContent()
    if "\x00" in content:
        raise InvalidContent("it contains a NUL character; remove it and send again")
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidContent(
            "it is not valid UTF-8 text (lone surrogate); re-encode it as UTF-8"
        ) from exc
    if size > limit:
        raise ContentTooLarge(size, limit)
    return content


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidName(name, "a workspace name cannot be empty")
    cleaned = name.strip()
    if cleaned == BROADCAST:
        raise InvalidName(name, "`*` is reserved for broadcast")
    if len(cleaned) > MAX_NAME_CHARS:
        raise InvalidName(
            cleaned[:40] + "…", f"it is {len(cleaned)} characters; the limit is {MAX_NAME_CHARS}"
        )
    if has_unsafe(cleaned):
        raise InvalidName(
            cleaned, "it contains control, bidi or invisible characters; use plain text"
        )
    return cleaned


def validate_message_id(message_id: object) -> int:
    if isinstance(message_id, bool):
        raise InvalidMessageId(message_id)
    digits = message_id.strip().lstrip("#") if isinstance(message_id, str) else ""
    if digits.isascii() and digits.isdigit():  # not "²" or "٣": str.isdigit takes those
        message_id = int(digits)
    if not isinstance(message_id, int) or message_id <= 0 or message_id > 2**63 - 1:
        raise InvalidMessageId(message_id)
    return message_id


class Mesh:
    """A handle on one mesh database. Thread-safe: each thread gets its own connection."""

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

    # -- connections and transactions -------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections must stay on one thread)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.generation != self._generation:
            self._forget(conn)  # reconnect() was called: this one may hold a replaced file
            conn = None
        if conn is None:
            if self._closed:
                raise InvalidArgument("this Mesh is closed")
            expected, generation = self._file_id, self._generation
            if expected is not None and _file_id(self.path) != expected:
                # Never recreate, nor half-join, a file pulled away from the other
                # threads: the participant loop notices and calls reconnect().
                raise database_gone(self.path)
            try:
                # Once this Mesh has a file, a new thread joins that file or nothing:
                # it must never create a fresh one where it was deleted.
                conn = db.connect(self.path, self.config, create=not self._opened)
            except FileNotFoundError as exc:  # it vanished while being opened
                raise database_gone(self.path) from exc
            if expected is not None and _file_id(self.path) != expected:
                conn.close()
                raise database_gone(self.path)
            self._local.conn, self._local.generation = conn, generation
            with self._lock:
                self._opened = True
                self._connections.append(conn)
                if self._file_id is None:
                    self._file_id = _file_id(self.path)
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
        return self._file_id is not None and _file_id(self.path) != self._file_id

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run `body` in one write transaction, retrying while the lock is contended."""
        conn = self.connection()
        deadline = time.monotonic() + WRITE_RETRY_SECONDS
        delay = 0.005
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.2)
                    continue
                raise self._unusable(exc) from exc
            try:
                result = body(conn)
                conn.execute("COMMIT")
                return result
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if (
                    isinstance(exc, sqlite3.OperationalError)
                    and _is_busy(exc)
                    and time.monotonic() < deadline
                ):
                    time.sleep(delay)
                    continue
                if _is_bad_argument(exc):
                    raise _bad_argument(exc) from exc
                if isinstance(exc, sqlite3.DatabaseError):
                    raise self._unusable(exc) from exc
                raise

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        try:
            return self.connection().execute(sql, params).fetchall()
        except (UnicodeEncodeError, sqlite3.Error) as exc:
            if _is_bad_argument(exc):
                raise _bad_argument(exc) from exc
            if isinstance(exc, sqlite3.DatabaseError):
                raise self._unusable(exc) from exc
            raise

    def _unusable(self, exc: sqlite3.Error) -> DatabaseUnusable:
        text = str(exc).lower()
        if "readonly" in text or "permission" in text or "unable to open" in text:
            return DatabasePermission(self.path, f"{exc}; {db.permission_hint(self.path)}")
        if "full" in text:
            return DatabaseUnusable(self.path, f"{exc}; free some disk space")
        return CorruptDatabase(self.path, f"{exc}")

    def data_version(self) -> int:
        """Changes whenever another connection commits: the cheap "anything new?" check."""
        return int(self.connection().execute("PRAGMA data_version").fetchone()[0])

    def now(self) -> str:
        return iso(self.clock.now())

    def _ago(self, seconds: float) -> str:
        return iso(self.clock.now() - timedelta(seconds=seconds))

    def _later(self, seconds: float) -> str:
        return iso(self.clock.now() + timedelta(seconds=seconds))

    # -- participants -----------------------------------------------------------------

    def register(
        self,
        name: str | None = None,
        kind: str = "agent",
        *,
        client: str | None = None,
        description: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        repo: str | None = None,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Agent:
        """Register (or re-activate) a session; hand it the workspace's waiting mail."""
        if kind not in KINDS:
            raise InvalidArgument(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
        if name is not None and not isinstance(name, str):
            raise InvalidName(name, "a workspace name is text")
        ident = identify(cwd, name)
        agent_name = validate_name(ident.name)
        meta: dict[str, Any] = {
            "kind": kind,
            "client": client or {"human": "mesh-tui", "cli": "mesh-cli"}.get(kind, "mesh-mcp"),
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        meta.update(metadata or {})
        sid = session_id or str(uuid.uuid4())
        desc = description if description is not None else ident.description
        now = self.now()

        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                """
                INSERT INTO agent_sessions (session_id, agent_name, agent_description, cwd,
                    repo, status, registered_at, last_heartbeat, metadata)
                VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?)
                ON CONFLICT(session_id) DO UPDATE SET
                    agent_name = excluded.agent_name,
                    agent_description = excluded.agent_description,
                    cwd = excluded.cwd, repo = excluded.repo, status = 'active',
                    last_heartbeat = excluded.last_heartbeat, metadata = excluded.metadata
                """,
                (sid, agent_name, desc, ident.cwd, repo or ident.repo, now, now, json.dumps(meta)),
            )
            self._adopt_mail(conn, sid, agent_name, now)

        self._write(body)
        return self.agent(sid)

    def _adopt_mail(self, conn: sqlite3.Connection, sid: str, name: str, now: str) -> None:
        """Hand-over (SPEC §4.9): unread, unexpired mail of the workspace's stopped
        sessions moves to `sid`; its own waiting mail stops expiring."""
        conn.execute(
            f"""
            UPDATE agent_messages SET recipient_session_id = ?, expires_at = NULL
            WHERE read = 0 AND (expires_at IS NULL OR {_EXPIRES} > ?)
              AND recipient_session_id IN (
                SELECT session_id FROM agent_sessions
                WHERE agent_name = ? AND status = 'stopped' AND session_id != ?)
            """,
            (sid, now, name, sid),
        )
        conn.execute(
            "UPDATE agent_messages SET expires_at = NULL "
            f"WHERE recipient_session_id = ? AND read = 0 AND {_EXPIRES} > ?",
            (sid, now),
        )

    def heartbeat(self, session_id: str) -> None:
        """Mark `session_id` alive; a stopped session that beats again is active again."""
        now = self.now()

        def body(conn: sqlite3.Connection) -> None:
            updated = conn.execute(
                "UPDATE agent_sessions SET last_heartbeat = ? "
                "WHERE session_id = ? AND status = 'active'",
                (now, session_id),
            ).rowcount
            if updated:
                return
            row = conn.execute(
                "SELECT agent_name FROM agent_sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            if row is None:
                raise SessionNotFound(session_id)
            conn.execute(
                "UPDATE agent_sessions SET last_heartbeat = ?, status = 'active' "
                "WHERE session_id = ?",
                (now, session_id),
            )
            self._adopt_mail(conn, session_id, row["agent_name"], now)

        self._write(body)

    def deregister(self, session_id: str) -> None:
        """A clean exit: stopped at once; its unread mail now expires in 24 h."""
        now = self.now()
        expires = self._later(self.config.expire_after)

        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE agent_sessions SET status = 'stopped', last_heartbeat = ? "
                "WHERE session_id = ?",
                (now, session_id),
            )
            self._expire_unread(conn, [session_id], expires)

        self._write(body)

    @staticmethod
    def _expire_unread(conn: sqlite3.Connection, session_ids: Sequence[str], expires: str) -> None:
        for sid in session_ids:
            conn.execute(
                "UPDATE agent_messages SET expires_at = ? "
                "WHERE recipient_session_id = ? AND read = 0 AND expires_at IS NULL",
                (expires, sid),
            )

    def session_for(
        self,
        name: str,
        kind: str = "cli",
        client: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> SessionClaim:
        """Act as workspace `name` (CLI `--from`): reuse its session, the active one first,
        re-activating a stopped one, or register a new one (working in `cwd`) if it has
        none. A re-activated or new session has just beaten; an active one has not."""
        name = validate_name(name)
        rows = self._sessions_named(name)
        active = [r for r in rows if r["status"] == "active"]
        if active:
            return SessionClaim(self._to_agent(_latest(active)), True)
        if rows:
            sid = _latest(rows)["session_id"]
            self.heartbeat(sid)
            return SessionClaim(self.agent(sid), False)
        return SessionClaim(self.register(name, kind=kind, client=client, cwd=cwd), False)

    def _sessions_named(self, name: str) -> list[sqlite3.Row]:
        rows = self._read(
            "SELECT * FROM agent_sessions WHERE agent_name = ? COLLATE NOCASE", (name,)
        )
        exact = [r for r in rows if r["agent_name"] == name]
        return exact or rows

    def agent(self, session_id: str) -> Agent:
        rows = self._read("SELECT * FROM agent_sessions WHERE session_id = ?", (session_id,))
        if not rows:
            raise SessionNotFound(session_id)
        unread = self._read(
            "SELECT count(*) FROM agent_messages WHERE recipient_session_id = ? AND read = 0",
            (session_id,),
        )[0][0]
        return self._to_agent(rows[0], unread)

    def reported_status(self, stored: str | None, last_heartbeat: str | None) -> Status:
        if stored == "stopped":
            return Status.STOPPED
        seen = parse_ts_or_none(last_heartbeat)
        if seen is None:
            return Status.STALE
        age = (self.clock.now() - seen).total_seconds()
        return Status.ACTIVE if age <= self.config.stale_after else Status.STALE

    def _to_agent(self, row: sqlite3.Row, unread: int = 0) -> Agent:
        meta_raw = row["metadata"]
        try:
            meta = json.loads(meta_raw) if meta_raw else {}
        except (TypeError, ValueError):
            meta = {}
        return Agent(
            session_id=row["session_id"],
            agent_name=row["agent_name"] or row["session_id"],
            agent_description=row["agent_description"],
            cwd=row["cwd"],
            repo=row["repo"],
            status=self.reported_status(row["status"], row["last_heartbeat"]),
            registered_at=canonical(row["registered_at"]),
            last_heartbeat=canonical(row["last_heartbeat"]),
            metadata=meta if isinstance(meta, dict) else {},
            unread=unread,
        )

    def agents(self, status: str = "active") -> list[Agent]:
        """The roster with reported status and unread counts.

        `status`: active | stale | stopped | all | online (active and stale)."""
        if status not in STATUS_FILTERS:
            raise InvalidArgument(
                f"unknown status {status!r}: use one of active, stale, stopped, all"
            )
        if status in ("active", "stale", "online"):
            rows = self._read("SELECT * FROM agent_sessions WHERE status = 'active'")
        elif status == "stopped":
            rows = self._read("SELECT * FROM agent_sessions WHERE status = 'stopped'")
        else:
            rows = self._read("SELECT * FROM agent_sessions")
        unread = self.unread_counts()
        agents = [self._to_agent(row, unread.get(row["session_id"], 0)) for row in rows]
        if status in ("active", "stale", "stopped"):
            agents = [a for a in agents if a.status.value == status]
        order = {Status.ACTIVE: 0, Status.STALE: 1, Status.STOPPED: 2}
        agents.sort(key=lambda a: (order[a.status], a.agent_name.lower(), a.session_id))
        return agents

    def unread_counts(self) -> dict[str, int]:
        """Unread messages per recipient (a scan of the unread-only index)."""
        rows = self._read(
            "SELECT recipient_session_id, count(*) FROM agent_messages "
            "WHERE read = 0 GROUP BY recipient_session_id"
        )
        return {row[0]: row[1] for row in rows}

    # -- sending ------------------------------------------------------------------------

    def _resolve(
        self, conn: sqlite3.Connection, sender_id: str, target: str
    ) -> tuple[sqlite3.Row, sqlite3.Row]:
        """The sender's row, and SPEC §4.1's recipient: a session id exactly, else a
        workspace name (exact, then any case). One query reads both (a send is a few short
        queries and a commit, so each query saved shows in the send rate)."""
        rows = conn.execute(
            "SELECT *, agent_name = :target COLLATE NOCASE AS by_name FROM agent_sessions "
            "WHERE session_id IN (:sender, :target) OR agent_name = :target COLLATE NOCASE",
            {"sender": sender_id, "target": target},
        ).fetchall()
        sender = next((r for r in rows if r["session_id"] == sender_id), None)
        if sender is None:
            raise SessionNotFound(sender_id)
        exact = next((r for r in rows if r["session_id"] == target), None)
        if exact is not None:
            return sender, exact
        named = [r for r in rows if r["by_name"]]
        candidates = [r for r in named if r["agent_name"] == target] or named
        if not candidates:
            known = [
                r[0]
                for r in conn.execute(
                    "SELECT agent_name FROM agent_sessions GROUP BY agent_name "
                    "ORDER BY max(status = 'active') DESC, max(last_heartbeat) DESC LIMIT 30"
                )
                if r[0]
            ]
            raise UnknownRecipient(target, known)
        active = [r for r in candidates if r["status"] == "active"]
        return sender, _latest(active or candidates)

    def _session_row(self, conn: sqlite3.Connection, session_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM agent_sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        if row is None:
            raise SessionNotFound(session_id)
        return row

    def send(
        self,
        sender_session_id: str,
        target: str,
        content: str,
        priority: str = "normal",
        new_thread: bool = False,
    ) -> Message:
        """Send `content` to a session id or workspace name. `*` broadcasts and returns
        the first copy (see `broadcast` for all of them)."""
        if target == BROADCAST:
            return self.broadcast(sender_session_id, content, priority, new_thread)[0]
        content = validate_content(content, self.config.max_content_bytes)
        priority = validate_priority(priority)
        if not isinstance(target, str):
            raise UnknownRecipient(str(target))

        def body(conn: sqlite3.Connection) -> Message:
            sender, recipient = self._resolve(conn, sender_session_id, target.strip())
            return self._insert(conn, sender, recipient, content, priority, None, new_thread)

        return self._write(body)

    def broadcast(
        self,
        sender_session_id: str,
        content: str,
        priority: str = "normal",
        new_thread: bool = False,
    ) -> list[Message]:
        """One copy to every active session but the sender, each under every rule."""
        content = validate_content(content, self.config.max_content_bytes)
        priority = validate_priority(priority)

        def body(conn: sqlite3.Connection) -> list[Message]:
            sender = self._session_row(conn, sender_session_id)
            recipients = conn.execute(
                "SELECT * FROM agent_sessions WHERE status = 'active' AND session_id != ? "
                "ORDER BY agent_name",
                (sender_session_id,),
            ).fetchall()
            if not recipients:
                raise NoBroadcastRecipients()
            return [
                self._insert(conn, sender, r, content, priority, None, new_thread)
                for r in recipients
            ]

        return self._write(body)

    def reply(
        self, sender_session_id: str, message_id: int, content: str, priority: str = "normal"
    ) -> Message:
        """Reply in the thread of `message_id`, to the other party of that message."""
        message_id = validate_message_id(message_id)
        content = validate_content(content, self.config.max_content_bytes)
        priority = validate_priority(priority)

        def body(conn: sqlite3.Connection) -> Message:
            sender = self._session_row(conn, sender_session_id)
            original = conn.execute(
                "SELECT * FROM agent_messages WHERE message_id = ?", (message_id,)
            ).fetchone()
            if original is None:
                raise MessageNotFound(message_id)
            other = (
                original["recipient_session_id"]
                if original["sender_session_id"] == sender_session_id
                else original["sender_session_id"]
            )
            recipient = self._current_session(conn, other)
            root = original["original_message_id"] or original["message_id"]
            return self._insert(conn, sender, recipient, content, priority, root, False)

        return self._write(body)

    def _current_session(self, conn: sqlite3.Connection, session_id: str) -> sqlite3.Row:
        """The session now answering for `session_id`'s workspace: itself if active, else
        the workspace's active session (it restarted), else itself (mail waits)."""
        row = self._session_row(conn, session_id)
        if row["status"] == "active" or not row["agent_name"]:
            return row
        newer = conn.execute(
            "SELECT * FROM agent_sessions WHERE agent_name = ? AND status = 'active'",
            (row["agent_name"],),
        ).fetchall()
        return _latest(newer) if newer else row

    def _insert(
        self,
        conn: sqlite3.Connection,
        sender: sqlite3.Row,
        recipient: sqlite3.Row,
        content: str,
        priority: str,
        root: int | None,
        new_thread: bool,
    ) -> Message:
        cfg = self.config
        sender_id, recipient_id = sender["session_id"], recipient["session_id"]
        recipient_name = recipient["agent_name"] or recipient_id
        if sender_id == recipient_id:
            raise SelfMessage(recipient_name)
        now_dt = self.clock.now()
        now = iso(now_dt)

        # One read of idx_messages_pair serves both §4.5 and §4.6 (a send is a few short
        # queries and a commit, so each query saved shows in the send rate): this pair's
        # newest messages since the earlier window start, up to `rate_limit` outgoing
        # (newest first) and the newest incoming.
        window_start = iso(now_dt - timedelta(seconds=cfg.rate_window))
        thread_since = iso(now_dt - timedelta(seconds=cfg.thread_window))
        pair = conn.execute(
            "SELECT * FROM (SELECT 1 AS outgoing, message_id, original_message_id, created_at"
            "  FROM agent_messages WHERE sender_session_id = :a AND recipient_session_id = :b"
            "  AND created_at >= :since ORDER BY created_at DESC LIMIT :limit) "
            "UNION ALL SELECT * FROM (SELECT 0, message_id, original_message_id, created_at"
            "  FROM agent_messages WHERE sender_session_id = :b AND recipient_session_id = :a"
            "  AND created_at >= :since ORDER BY created_at DESC LIMIT 1)",
            {
                "a": sender_id,
                "b": recipient_id,
                "since": min(window_start, thread_since),
                "limit": max(1, cfg.rate_limit),
            },
        ).fetchall()

        # §4.5 rate limit: the `rate_limit` most recent messages of this pair in the window.
        recent = [r["created_at"] for r in pair if r["outgoing"] and r["created_at"] > window_start]
        if len(recent) >= cfg.rate_limit:
            oldest = parse_ts_or_none(recent[-1]) or now_dt
            retry = (oldest - now_dt).total_seconds() + cfg.rate_window
            raise RateLimited(recipient_name, cfg.rate_limit, cfg.rate_window, retry)

        # §4.6 auto-thread: join the pair's thread if they spoke within the window (the
        # newest message either way; on a tie, the sender's own).
        if root is None and not new_thread:
            latest = max(
                (r for r in pair if r["created_at"] >= thread_since),
                key=lambda r: r["created_at"],
                default=None,
            )
            if latest is not None:
                root = int(latest["original_message_id"] or latest["message_id"])

        # §4.8 a stopped recipient: the message waits 24 h for it (or its successor).
        expires = None
        if recipient["status"] == "stopped":
            expires = iso(now_dt + timedelta(seconds=cfg.expire_after))

        # Every column is known here but the id: lastrowid is much cheaper than RETURNING *
        # (~15 us of a send of ~150 us, measured on this project's 2-core benchmark VM).
        message_id = conn.execute(
            """
            INSERT INTO agent_messages (sender_session_id, recipient_session_id, content,
                original_message_id, priority, created_at, read, read_at, expires_at)
            VALUES (?, ?, ?, ?, ?, ?, 0, NULL, ?)
            """,
            (sender_id, recipient_id, content, root, priority, now, expires),
        ).lastrowid
        row = {
            "message_id": message_id,
            "sender_session_id": sender_id,
            "recipient_session_id": recipient_id,
            "content": content,
            "original_message_id": root,
            "priority": priority,
            "created_at": now,
            "read": 0,
            "read_at": None,
            "expires_at": expires,
        }

        warnings: list[str] = []
        # §4.7 queue depth: count no further than the threshold needs.
        depth = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM agent_messages WHERE recipient_session_id = ? "
            "AND read = 0 LIMIT ?)",
            (recipient_id, cfg.flood_threshold + 1),
        ).fetchone()[0]
        if depth > cfg.flood_threshold:
            warnings.append(
                f"{recipient_name} has more than {cfg.flood_threshold} unread messages; "
                "it may be stuck or busy: expect a slow answer"
            )
        if expires:
            warnings.append(
                f"{recipient_name} is stopped: the message waits until {expires} for it "
                "(or for a new session of that workspace)"
            )
        names = {sender_id: sender["agent_name"], recipient_id: recipient["agent_name"]}
        return _to_message(row, names, tuple(warnings))

    # -- reading ----------------------------------------------------------------------

    def inbox(self, session_id: str) -> list[Message]:
        """Take this session's unread, unexpired messages, marking exactly those read.

        One UPDATE … RETURNING: two pollers of one inbox never both get a message."""
        now = self.now()

        def body(conn: sqlite3.Connection) -> list[Message]:
            rows = conn.execute(
                "UPDATE agent_messages SET read = 1, read_at = ? "
                "WHERE recipient_session_id = ? AND read = 0 "
                f"AND (expires_at IS NULL OR {_EXPIRES} > ?) RETURNING *",
                (now, session_id, now),
            ).fetchall()
            rows.sort(key=_delivery_order)
            # Built before COMMIT: if this fails, nothing is marked read and lost.
            return self._messages(rows)

        return self._write(body)

    def peek_inbox(self, session_id: str, limit: int = 100) -> list[Message]:
        """This session's unread messages in delivery order, marking nothing read."""
        rows = self._read(
            f"SELECT * FROM agent_messages WHERE recipient_session_id = ? AND read = 0 "
            f"AND (expires_at IS NULL OR {_EXPIRES} > ?) ORDER BY {_PRIORITY_SQL}, "
            "created_at, message_id LIMIT ?",
            (session_id, self.now(), limit),
        )
        return self._messages(sorted(rows, key=_delivery_order))

    def get(self, message_id: int) -> Message:
        message_id = validate_message_id(message_id)
        rows = self._read("SELECT * FROM agent_messages WHERE message_id = ?", (message_id,))
        if not rows:
            raise MessageNotFound(message_id)
        return self._messages(rows)[0]

    def thread(self, message_id: int) -> list[Message]:
        """The whole thread holding `message_id`, root first. Marks nothing read."""
        message = self.get(message_id)
        root = message.thread_id
        rows = self._read(
            "SELECT * FROM agent_messages WHERE message_id = ? OR original_message_id = ? "
            "ORDER BY created_at, message_id",
            (root, root),
        )
        return self._messages(sorted(rows, key=_time_order))

    def take_reply(self, session_id: str, message_id: int) -> Message | None:
        """The first message to `session_id` in `message_id`'s thread after it, if any,
        marked read (it is delivered here). Finds it even if another poller of this
        session already took it."""
        message = self.get(message_id)
        root = message.thread_id
        now = self.now()

        def body(conn: sqlite3.Connection) -> Message | None:
            row = conn.execute(
                "SELECT * FROM agent_messages WHERE original_message_id = ? "
                "AND recipient_session_id = ? AND message_id > ? ORDER BY message_id LIMIT 1",
                (root, session_id, message_id),
            ).fetchone()
            if row is not None and not row["read"]:
                row = conn.execute(
                    "UPDATE agent_messages SET read = 1, read_at = ? WHERE message_id = ? "
                    "RETURNING *",
                    (now, row["message_id"]),
                ).fetchone()
            # Built before COMMIT: if this fails, nothing is marked read and lost.
            return self._messages([row])[0] if row is not None else None

        return self._write(body)

    def wait_for_reply(
        self,
        session_id: str,
        message_id: int,
        timeout: float = 60.0,
        should_stop: Callable[[], bool] | None = None,
    ) -> Message | None:
        """Block until a reply to `message_id` reaches `session_id` (None on time-out).

        Sleeps between cheap `data_version` checks: it wakes within a few tens of
        milliseconds of the reply's commit and costs next to nothing while waiting."""
        if not isinstance(timeout, int | float) or not 0 <= timeout < math.inf:
            raise InvalidArgument(f"timeout {timeout!r} must be zero or more seconds")
        deadline = time.monotonic() + timeout
        last_version: int | None = None
        last_full = 0.0
        while True:
            version = self.data_version()
            now = time.monotonic()
            if version != last_version or now - last_full >= 1.0:
                reply = self.take_reply(session_id, message_id)
                if reply is not None:
                    return reply
                last_version, last_full = version, now
            if now >= deadline or (should_stop is not None and should_stop()):
                return None
            time.sleep(min(self.config.watch_interval, max(0.0, deadline - now)))

    def _messages(self, rows: Iterable[sqlite3.Row]) -> list[Message]:
        rows = list(rows)
        ids = {r["sender_session_id"] for r in rows} | {r["recipient_session_id"] for r in rows}
        names = self.names(ids)  # one query for all rows, not one per row
        return [_to_message(r, names) for r in rows]

    def names(self, session_ids: Iterable[str]) -> dict[str, str | None]:
        ids = list(set(session_ids))
        names: dict[str, str | None] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._read(
                f"SELECT session_id, agent_name FROM agent_sessions WHERE session_id IN ({marks})",
                chunk,
            ):
                names[row[0]] = row[1]
        return names

    # -- clean-up and status ----------------------------------------------------------

    def cleanup(self, *, only_if_due: bool = False) -> CleanupReport:
        """Stop silent sessions, purge old read mail, drop expired unread mail (SPEC §4).

        `only_if_due`: skip it if any participant ran it in the last `cleanup_every`
        seconds, checked inside the write transaction so racing callers run it once."""
        cfg = self.config
        now = self.now()
        stop_before = self._ago(cfg.stop_after)
        purge_before = self._ago(cfg.read_retention)
        expires = self._later(cfg.expire_after)
        due_before = self._ago(cfg.cleanup_every)
        # Each test below is an index range wide enough to hold rows of any ISO-8601
        # form, then the exact comparison on real time: nothing goes early.
        stop_range = self._ago(cfg.stop_after - TEXT_LEAD_SECONDS)
        purge_range = self._ago(cfg.read_retention - TEXT_LEAD_SECONDS)
        expiry_range = self._later(TEXT_LEAD_SECONDS)

        def body(conn: sqlite3.Connection) -> CleanupReport:
            if only_if_due and not _cleanup_due(conn, due_before):
                return CleanupReport(ran=False)
            stopped = [
                r[0]
                for r in conn.execute(
                    "UPDATE agent_sessions SET status = 'stopped' WHERE status = 'active' "
                    f"AND last_heartbeat < ? AND {_canon('last_heartbeat')} < ? "
                    "RETURNING session_id",
                    (stop_range, stop_before),
                )
            ]
            self._expire_unread(conn, stopped, expires)
            purged = conn.execute(
                "DELETE FROM agent_messages WHERE read = 1 AND read_at < ? "
                f"AND {_canon('read_at')} < ?",
                (purge_range, purge_before),
            ).rowcount
            expired = conn.execute(
                "DELETE FROM agent_messages WHERE expires_at IS NOT NULL AND expires_at < ? "
                f"AND {_EXPIRES} < ? AND read = 0",
                (expiry_range, now),
            ).rowcount
            conn.execute(
                "INSERT INTO mesh_meta (key, value) VALUES ('last_cleanup', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (now,),
            )
            return CleanupReport(len(stopped), purged, expired)

        return self._write(body)

    def maybe_cleanup(self) -> CleanupReport:
        """Run the clean-up unless any participant ran it in the last minute."""
        if not _cleanup_due(self.connection(), self._ago(self.config.cleanup_every)):
            return CleanupReport(ran=False)  # the common case, without taking the write lock
        return self.cleanup(only_if_due=True)

    def stats(self) -> dict[str, Any]:
        """What `mesh status` shows: where, how big, how many, who needs attention."""
        wal = Path(str(self.path) + "-wal")
        agents = self.agents("all")
        by_status = {s.value: sum(a.status is s for a in agents) for s in Status}
        total, unread = self._read(
            "SELECT count(*), coalesce(sum(read = 0), 0) FROM agent_messages"
        )[0]
        version = self._read("PRAGMA user_version")[0][0]
        last_cleanup = self._read("SELECT value FROM mesh_meta WHERE key = 'last_cleanup'")
        return {
            "db_path": str(self.path),
            "schema_version": version,
            "db_bytes": self.path.stat().st_size if self.path.exists() else 0,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
            "sessions": by_status,
            "messages": total,
            "unread": unread,
            "last_cleanup": last_cleanup[0][0] if last_cleanup else None,
            "stale": [a.agent_name for a in agents if a.status is Status.STALE],
            "flooded": [
                a.agent_name
                for a in agents
                if a.unread > self.config.flood_threshold and a.status is not Status.STOPPED
            ],
        }


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


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, None if nothing is there."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def _cleanup_due(conn: sqlite3.Connection, due_before: str) -> bool:
    """True unless the shared clean-up last ran after `due_before`."""
    row = conn.execute("SELECT value FROM mesh_meta WHERE key = 'last_cleanup'").fetchone()
    return not (row and row[0] and row[0] > due_before)


def _latest(rows: Sequence[sqlite3.Row]) -> sqlite3.Row:
    """The row with the latest heartbeat (parsed: other clients may write other forms)."""
    return max(rows, key=lambda row: _epoch(row["last_heartbeat"]))


def _epoch(text: str | None) -> float:
    """Seconds since 1970 of a timestamp in any ISO-8601 form; 0 if it does not parse."""
    seen = parse_ts_or_none(text)
    return seen.timestamp() if seen else 0.0


def _time_order(row: sqlite3.Row) -> tuple[float, int]:
    return (_epoch(row["created_at"]), row["message_id"])


def _delivery_order(row: sqlite3.Row) -> tuple[int, float, int]:
    """Urgent first, then high, normal, low; oldest first within a priority (SPEC §4)."""
    return (priority_rank(row["priority"]), *_time_order(row))


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _to_message(
    row: sqlite3.Row | dict[str, Any],
    names: dict[str, str | None],
    warnings: tuple[str, ...] = (),
) -> Message:
    return Message(
        message_id=row["message_id"],
        sender_session_id=row["sender_session_id"],
        sender_name=names.get(row["sender_session_id"]),
        recipient_session_id=row["recipient_session_id"],
        recipient_name=names.get(row["recipient_session_id"]),
        content=row["content"],
        original_message_id=row["original_message_id"],
        priority=row["priority"] or "normal",
        created_at=canonical(row["created_at"]),
        read=bool(row["read"]),
        read_at=canonical(row["read_at"]),
        expires_at=canonical(row["expires_at"]),
        warnings=warnings,
    )
