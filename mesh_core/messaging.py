"""Messages: send (to a session, a workspace or everyone), reply, take the inbox, read a
thread, wait for a reply. See docs/contract.md §4.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from .clock import iso
from .errors import (
    MessageNotFound,
    NoBroadcastRecipients,
    SelfMessage,
    SessionNotFound,
    UnknownRecipient,
)
from .models import Message
from .rows import delivery_order, latest, row_id, text, time_order, to_message
from .rules import (
    BROADCAST,
    PRIORITY_RANK_SQL,
    check_rate_limit,
    is_flooded,
    validate_content,
    validate_message_id,
    validate_priority,
    validate_timeout,
)
from .sessions import current_session, names, pick_recipient, reap_dead, session_row
from .store import EXPIRES_SQL, Store


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

    # One read of idx_messages_pair serves both the rate limit and auto-threading: this
    # pair's newest messages since the earlier window start, up to `rate_limit` outgoing
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

    # Another client's created_at may be a BLOB or a number: compared as (escaped) text.
    pair = [(r, text(r["created_at"]) or "") for r in pair]
    recent = [at for r, at in pair if r["outgoing"] and at > window_start]
    check_rate_limit(recent, now_dt, cfg, recipient_name)

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

    # A stopped recipient: the message waits 24 h for it (or its successor).
    expires = None
    if recipient["status"] == "stopped":
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
        warnings.append(
            f"{recipient_name} is stopped: the message waits until {expires} for it "
            "(or for a new session of that workspace)"
        )
    known = {sender_id: sender["agent_name"], recipient_id: recipient["agent_name"]}
    return to_message(row, known, tuple(warnings))


# -- reading ----------------------------------------------------------------------------


def inbox(store: Store, session_id: str) -> list[Message]:
    """Take this session's unread, unexpired messages, marking exactly those read.

    One UPDATE … RETURNING: two pollers of one inbox never both get a message."""
    now = store.now()

    def body(conn: sqlite3.Connection) -> list[Message]:
        rows = conn.execute(
            "UPDATE agent_messages SET read = 1, read_at = ? "
            "WHERE recipient_session_id = ? AND read = 0 "
            f"AND (expires_at IS NULL OR {EXPIRES_SQL} > ?) RETURNING *",
            (now, session_id, now),
        ).fetchall()
        rows.sort(key=delivery_order)
        # Built before COMMIT: if this fails, nothing is marked read and lost.
        return messages(store, rows)

    return store.write(body)


@dataclass(frozen=True)
class Take:
    """What one take handed over, rendered; how many unread messages still wait; and the
    messages set aside unread because they could not be rendered (a note each)."""

    messages: tuple[Message, ...]
    rendered: tuple[str, ...]
    more: int
    set_aside: tuple[str, ...] = ()

    def more_note(self, how: str) -> str | None:
        """`12 more messages wait: <how>`, or None when nothing waits."""
        if not self.more:
            return None
        noun = "message waits" if self.more == 1 else "messages wait"
        return f"{self.more} more {noun}: {how}"


def take(
    store: Store,
    session_id: str,
    render: Callable[[Message], str],
    max_count: int | None = None,
    max_bytes: int | None = None,
) -> Take:
    """Take this session's unread messages in delivery order, at most `max_count` of them
    and about `max_bytes` of rendered text (at least one), marking read exactly those.

    `render` runs inside the write transaction, before COMMIT: a message is marked read
    only once its whole text exists. One that cannot be built or rendered (another
    client's odd row) stays unread and is named in `set_aside`; the rest are delivered."""
    cfg = store.config
    count_cap = max(1, cfg.take_max_messages if max_count is None else max_count)
    byte_cap = cfg.take_max_bytes if max_bytes is None else max_bytes
    now = store.now()
    waiting_sql = (
        "FROM agent_messages WHERE recipient_session_id = ? AND read = 0 "
        f"AND (expires_at IS NULL OR {EXPIRES_SQL} > ?)"
    )

    def body(conn: sqlite3.Connection) -> Take:
        rows = conn.execute(
            f"SELECT * {waiting_sql} ORDER BY {PRIORITY_RANK_SQL}, created_at, message_id LIMIT ?",
            (session_id, now, count_cap + 50),
        ).fetchall()
        rows.sort(key=_safe_delivery_order)
        try:
            known = names(store, {r["sender_session_id"] for r in rows} | {session_id})
        except Exception:  # noqa: BLE001 - an odd id column: render without names
            known = {}
        taken: list[Message] = []
        texts: list[str] = []
        aside: list[str] = []
        size = 0
        for row in rows:
            if len(taken) >= count_cap:
                break
            try:
                # As it will be once delivered: read now (the caller renders that).
                message = replace(to_message(row, known), read=True, read_at=now)
                text = render(message)
                length = len(text.encode("utf-8", "surrogatepass"))
            except Exception as exc:  # noqa: BLE001 - one bad row must not cost the rest
                aside.append(_aside_note(row, exc))
                continue
            if taken and size + length > byte_cap:
                break
            taken.append(message)
            texts.append(text)
            size += length
        if taken:
            ids = [m.message_id for m in taken]
            conn.execute(
                f"UPDATE agent_messages SET read = 1, read_at = ? "
                f"WHERE message_id IN ({','.join('?' * len(ids))})",
                (now, *ids),
            )
        left = conn.execute(f"SELECT count(*) {waiting_sql}", (session_id, now)).fetchone()[0]
        return Take(tuple(taken), tuple(texts), int(left) - len(aside), tuple(aside))

    return store.write(body)


def _safe_delivery_order(row: sqlite3.Row) -> tuple[int, float, int]:
    try:
        return delivery_order(row)
    except Exception:  # noqa: BLE001 - an odd row sorts last, it is set aside later
        return (9, 0.0, 0)


def _aside_note(row: sqlite3.Row, exc: Exception) -> str:
    try:
        ident = f"#{int(row['message_id'])}"
    except Exception:  # noqa: BLE001 - any odd id: say so
        ident = "(no id)"
    return (
        f"message {ident} could not be shown ({type(exc).__name__}); it stays unread: "
        f"look at it with `mesh show {ident.lstrip('#')}`"
    )


def mark_read(store: Store, session_id: str, message_ids: Iterable[int]) -> list[int]:
    """Mark these messages to `session_id` read (a host acknowledged a push of them);
    returns those that are now read. Others' messages are left alone."""
    ids = [i for i in message_ids if isinstance(i, int) and not isinstance(i, bool)]
    if not ids:
        return []
    now = store.now()
    marks = ",".join("?" * len(ids))

    def body(conn: sqlite3.Connection) -> list[int]:
        conn.execute(
            f"UPDATE agent_messages SET read = 1, read_at = ? WHERE read = 0 "
            f"AND recipient_session_id = ? AND message_id IN ({marks})",
            (now, session_id, *ids),
        )
        rows = conn.execute(
            f"SELECT message_id FROM agent_messages WHERE read = 1 "
            f"AND recipient_session_id = ? AND message_id IN ({marks})",
            (session_id, *ids),
        ).fetchall()
        return sorted(int(r[0]) for r in rows)

    return store.write(body)


def peek_inbox(store: Store, session_id: str, limit: int = 100) -> list[Message]:
    """This session's unread messages in delivery order, marking nothing read."""
    rows = store.read(
        f"SELECT * FROM agent_messages WHERE recipient_session_id = ? AND read = 0 "
        f"AND (expires_at IS NULL OR {EXPIRES_SQL} > ?) ORDER BY {PRIORITY_RANK_SQL}, "
        "created_at, message_id LIMIT ?",
        (session_id, store.now(), limit),
    )
    return messages(store, sorted(rows, key=delivery_order))


def get(store: Store, message_id: int) -> Message:
    message_id = validate_message_id(message_id)
    rows = store.read("SELECT * FROM agent_messages WHERE message_id = ?", (message_id,))
    if not rows:
        raise MessageNotFound(message_id)
    return messages(store, rows)[0]


def thread(store: Store, message_id: int) -> list[Message]:
    """The whole thread holding `message_id`, root first. Marks nothing read."""
    root = get(store, message_id).thread_id
    return thread_tail(store, root, limit=None)


def thread_tail(store: Store, thread_id: int, limit: int | None) -> list[Message]:
    """The newest `limit` messages (all, for None) of thread `thread_id`, oldest first,
    through the thread index. Marks nothing read."""
    rows = store.read(
        "SELECT * FROM (SELECT * FROM agent_messages WHERE message_id = ? "
        "OR original_message_id = ? ORDER BY message_id DESC LIMIT ?)",
        (thread_id, thread_id, -1 if limit is None else limit),
    )
    return messages(store, sorted(rows, key=time_order))


def take_reply(store: Store, session_id: str, message_id: int) -> Message | None:
    """The first reply from the party asked (any session of the workspace `message_id`
    was sent to) reaching `session_id` in that thread, if any, marked read (it is
    delivered here). Others' messages in the thread stay unread in the inbox. Finds the
    reply even if another poller of this session already took it."""
    asked = get(store, message_id)
    root = asked.thread_id
    now = store.now()

    def body(conn: sqlite3.Connection) -> Message | None:
        row = conn.execute(
            "SELECT m.* FROM agent_messages m JOIN agent_sessions s "
            "ON s.session_id = m.sender_session_id "
            "WHERE m.original_message_id = ? AND m.recipient_session_id = ? "
            "AND m.message_id > ? AND (m.sender_session_id = ? OR s.agent_name = "
            "(SELECT agent_name FROM agent_sessions WHERE session_id = ?)) "
            "ORDER BY m.message_id LIMIT 1",
            (root, session_id, message_id, asked.recipient_session_id, asked.recipient_session_id),
        ).fetchone()
        if row is not None and not row["read"]:
            row = conn.execute(
                "UPDATE agent_messages SET read = 1, read_at = ? WHERE message_id = ? RETURNING *",
                (now, row["message_id"]),
            ).fetchone()
        # Built before COMMIT: if this fails, nothing is marked read and lost.
        return messages(store, [row])[0] if row is not None else None

    return store.write(body)


def wait_for_reply(
    store: Store,
    session_id: str,
    message_id: int,
    timeout: float = 60.0,
    should_stop: Callable[[], bool] | None = None,
) -> Message | None:
    """Block until a reply to `message_id` reaches `session_id` (None on time-out).

    Sleeps between cheap `data_version` checks: it wakes soon after the reply's commit
    and costs next to nothing while waiting."""
    timeout = validate_timeout(timeout)
    deadline = time.monotonic() + timeout
    last_version: int | None = None
    last_full = 0.0
    while True:
        version = store.data_version()
        now = time.monotonic()
        if version != last_version or now - last_full >= 1.0:
            found = take_reply(store, session_id, message_id)
            if found is not None:
                return found
            last_version, last_full = version, now
        if now >= deadline or (should_stop is not None and should_stop()):
            return None
        time.sleep(min(store.config.watch_interval, max(0.0, deadline - now)))


def messages(store: Store, rows: Iterable[sqlite3.Row]) -> list[Message]:
    """Rows as Messages, with both parties' names looked up in one query."""
    rows = list(rows)
    ids = {r["sender_session_id"] for r in rows} | {r["recipient_session_id"] for r in rows}
    if not rows:
        return []
    known = names(store, ids)
    return [to_message(r, known) for r in rows]
