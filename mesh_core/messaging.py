"""Sending: to a session, a workspace or everyone (one copy each), and replying in a
thread, under the rules of docs/contract.md §4 (size, rate, no self-messages). Reading
and taking the inbox live in `mailbox`.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

from .clock import iso
from .errors import (
    InvalidArgument,
    MessageNotFound,
    NoBroadcastRecipients,
    SelfMessage,
    SessionNotFound,
    UnknownRecipient,
)
from .models import Message
from .rows import latest, row_id, status_text, text, to_message
from .rules import (
    BROADCAST,
    RateLimit,
    is_flooded,
    validate_content,
    validate_message_id,
    validate_priority,
)
from .sessions import current_session, pick_recipient, reap_dead, session_row
from .store import Store


def send(
    store: Store,
    sender_session_id: str,
    target: str,
    content: str,
    priority: str = "normal",
    new_thread: bool = False,
) -> list[Message]:
    """Send `content` to a session id or workspace name, or with `*` one copy to every
    active session but the sender. Returns every copy, each sent under every rule."""
    content = validate_content(content, store.config.max_content_bytes)
    priority = validate_priority(priority)
    if not isinstance(target, str):
        raise UnknownRecipient(str(target))
    target = target.strip()

    def body(conn: sqlite3.Connection) -> list[Message]:
        if target == BROADCAST:
            sender = session_row(conn, sender_session_id)
            recipients = conn.execute(
                "SELECT * FROM agent_sessions WHERE status = 'active' AND session_id != ? "
                "ORDER BY agent_name",
                (sender_session_id,),
            ).fetchall()
            if not recipients:
                raise NoBroadcastRecipients()
        else:
            reap_dead(conn, store, target)  # mail must not go to a session nobody runs
            sender, recipient = _resolve(conn, store, sender_session_id, target)
            recipients = [recipient]
        return [
            _insert(store, conn, sender, r, content, priority, None, new_thread) for r in recipients
        ]

    return store.write(body)


def reply(
    store: Store, sender_session_id: str, message_id: int, content: str, priority: str = "normal"
) -> Message:
    """Reply in the thread of `message_id`, to the other party of that message."""
    message_id = validate_message_id(message_id)
    content = validate_content(content, store.config.max_content_bytes)
    priority = validate_priority(priority)

    def body(conn: sqlite3.Connection) -> Message:
        sender = session_row(conn, sender_session_id)
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
        recipient = current_session(conn, store, other)
        root = row_id(original["original_message_id"]) or original["message_id"]
        return _insert(store, conn, sender, recipient, content, priority, root, False)

    return store.write(body)


def _resolve(
    conn: sqlite3.Connection, store: Store, sender_id: str, target: str
) -> tuple[sqlite3.Row, sqlite3.Row]:
    """The sender's row, and the recipient: a session id exactly, else a workspace name
    (exact, then any case), one of its active sessions (`pick_recipient`), else its most
    recently seen stopped one. One query reads both."""
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
    return sender, pick_recipient(active, store) if active else latest(candidates)


RATE_LIMIT_SQL = "SELECT key, value FROM mesh_meta WHERE key IN ('rate_limit', 'rate_window')"


def rate_limit(conn: sqlite3.Connection) -> RateLimit:
    """The mesh's rate limit, as its file holds it (the contract's 10 in 60 s if unset)."""
    found = {row[0]: row[1] for row in conn.execute(RATE_LIMIT_SQL)}
    return RateLimit.parse(found.get("rate_limit"), found.get("rate_window"))


def read_rate_limit(store: Store) -> RateLimit:
    found = {row[0]: row[1] for row in store.read(RATE_LIMIT_SQL)}
    return RateLimit.parse(found.get("rate_limit"), found.get("rate_window"))


def set_rate_limit(store: Store, limit: int, window: float) -> RateLimit:
    wanted = RateLimit.parse(limit, window)
    if (wanted.limit, wanted.window) != (limit, window):
        raise InvalidArgument(
            f"a rate limit is a whole number of messages above 0 in a window of seconds "
            f"above 0 (got {limit!r} in {window!r})"
        )

    def body(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO mesh_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [("rate_limit", str(limit)), ("rate_window", repr(float(window)))],
        )

    store.write(body)
    return wanted


def _recent_sends(
    conn: sqlite3.Connection,
    sender: sqlite3.Row,
    recipient: sqlite3.Row,
    since: str,
    limit: int,
) -> list[str]:
    """When the sender's workspace last sent to the recipient's, newest first, since
    `since`, at most `limit`: every session of either workspace counts (a new session
    does not start a new count). A session without a name counts on its own."""
    by_recipient = (
        "r.agent_name = :r_name COLLATE NOCASE AND r.agent_name = :r_name"  # the index, exact
        if recipient["agent_name"]
        else "r.session_id = :r_id"
    )
    by_sender = "s.agent_name = :s_name" if sender["agent_name"] else "s.session_id = :s_id"
    # From each session of the recipient's workspace, that session's messages of the
    # window (idx_messages_recipient): a workspace's old sessions cost one seek each.
    rows = conn.execute(
        "SELECT m.created_at FROM agent_sessions r "
        "JOIN agent_messages m INDEXED BY idx_messages_recipient "
        "  ON m.recipient_session_id = r.session_id AND m.created_at >= :since "
        "JOIN agent_sessions s ON s.session_id = m.sender_session_id "
        f"WHERE {by_recipient} AND {by_sender} "
        "ORDER BY m.created_at DESC LIMIT :limit",
        {
            "r_name": recipient["agent_name"],
            "s_name": sender["agent_name"],
            "r_id": recipient["session_id"],
            "s_id": sender["session_id"],
            "since": since,
            "limit": limit,
        },
    ).fetchall()
    # Another client's created_at may be a BLOB or a number: compared as (escaped) text.
    return [at for at in (text(row[0]) or "" for row in rows) if at > since]


def _insert(
    store: Store,
    conn: sqlite3.Connection,
    sender: sqlite3.Row,
    recipient: sqlite3.Row,
    content: str,
    priority: str,
    root: int | None,
    new_thread: bool,
) -> Message:
    """Store one message after the per-message rules: no self-message, the rate limit,
    auto-threading, expiry for a stopped recipient, the queue-depth warning."""
    cfg = store.config
    sender_id, recipient_id = sender["session_id"], recipient["session_id"]
    recipient_name = recipient["agent_name"] or recipient_id
    if sender_id == recipient_id:
        raise SelfMessage(recipient_name)
    now_dt = store.now_dt()
    now = iso(now_dt)

    # The rate limit: the mesh's numbers, counted per workspace pair (every session of
    # the sender's workspace to every session of the recipient's).
    limits = rate_limit(conn)
    window_start = iso(limits.since(now_dt))
    recent = _recent_sends(conn, sender, recipient, window_start, limits.limit)
    limits.check(recent, now_dt, recipient_name)

    # Auto-threading reads this session pair's newest message each way (idx_messages_pair).
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
            "since": thread_since,
            "limit": 1,
        },
    ).fetchall()

    # Another client's created_at may be a BLOB or a number: compared as (escaped) text.
    pair = [(r, text(r["created_at"]) or "") for r in pair]

    # Auto-thread: join the pair's thread if they spoke within the window (the newest
    # message either way; on a tie, the sender's own).
    if root is None and not new_thread:
        newest = max(
            (r for r, at in pair if at >= thread_since),
            key=lambda r: text(r["created_at"]) or "",
            default=None,
        )
        if newest is not None:
            root = row_id(newest["original_message_id"]) or int(newest["message_id"])

    # A recipient not active (stopped, or another client's own status such as 'idle'):
    # the message waits 24 h for it (or its successor), as for a stopped one.
    expires = None
    if recipient["status"] != "active":
        expires = iso(now_dt + timedelta(seconds=cfg.expire_after))

    # Every column is known here but the id: lastrowid is cheaper than RETURNING *.
    message_id = conn.execute(
        """
        INSERT INTO agent_messages (sender_session_id, recipient_session_id, content,
            original_message_id, priority, created_at, read, read_at, expires_at)
        VALUES (?, ?, ?, ?, ?, ?, 0, NULL, ?)
        """,
        (sender_id, recipient_id, content, root, priority, now, expires),
    ).lastrowid
    row: dict[str, Any] = {
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
    # Queue depth: count no further than the threshold needs.
    depth = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM agent_messages WHERE recipient_session_id = ? "
        "AND read = 0 LIMIT ?)",
        (recipient_id, cfg.flood_threshold + 1),
    ).fetchone()[0]
    if is_flooded(depth, cfg):
        warnings.append(
            f"{recipient_name} has more than {cfg.flood_threshold} unread messages; "
            "it may be stuck or busy: expect a slow answer"
        )
    if expires:
        state = (
            "stopped"
            if recipient["status"] == "stopped"
            else f"not active (its status is {status_text(recipient['status'])!r})"
        )
        warnings.append(
            f"{recipient_name} is {state}: the message waits until {expires} for it "
            "(or for a new session of that workspace)"
        )
    known = {sender_id: sender["agent_name"], recipient_id: recipient["agent_name"]}
    return to_message(row, known, tuple(warnings))
