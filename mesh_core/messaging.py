"""Sending: to a session, a workspace or everyone (one copy each), and replying in a
thread, under the rules of docs/contract.md §4 (size, rate, no self-messages). Reading
and taking the inbox live in `mailbox`.
"""

from __future__ import annotations

import sqlite3

from .clock import iso, span
from .errors import (
    InvalidArgument,
    MessageNotFound,
    NoBroadcastRecipients,
    SelfMessage,
    SessionNotFound,
    UnknownRecipient,
)
from .models import Message
from .rows import latest, row_id, shown, status_text, text
from .rules import (
    BROADCAST,
    RateLimit,
    is_flooded,
    validate_content,
    validate_message_id,
    validate_priority,
)
from .send_sql import (
    BY_NAME,
    COUNTS,
    ID,
    INSERT,
    RATE_LIMIT,
    RATE_WINDOW,
    RECENT,
    RESOLVE,
    RULES,
    SENT,
    STATUS,
    fetch,
)
from .sessions import current_session, pick_recipient, session_row, stop_dead
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
            limits = rate_limit(conn)
        else:
            sender, recipient, limits = _resolve(conn, store, sender_session_id, target)
            recipients = [recipient]
        return [
            _insert(store, conn, sender, r, content, priority, None, new_thread, limits)
            for r in recipients
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
        limits = rate_limit(conn)
        return _insert(store, conn, sender, recipient, content, priority, root, False, limits)

    return store.write(body)


def _resolve(
    conn: sqlite3.Connection, store: Store, sender_id: str, target: str
) -> tuple[sqlite3.Row, sqlite3.Row, RateLimit]:
    """The sender's row, the recipient and the mesh's rate limit. The recipient: a
    session id exactly, else a workspace name (exact, then any case), one of its active
    sessions (`pick_recipient`), else its most recently seen stopped one. Active
    sessions of that name whose process is gone are stopped first (mail must not go to
    a session nobody runs; `reap_dead`'s rule). One query reads the sender, the target,
    the workspace's sessions and the limit for all of that; it is read again only when
    a dead session was just stopped."""
    params = (sender_id, target)
    rows = fetch(conn, RESOLVE, params)
    if stop_dead(conn, store, [r for r in rows if r[BY_NAME] and r[STATUS] == "active"]):
        rows = fetch(conn, RESOLVE, params)
    sender = exact = None
    for row in rows:  # the first of each, columns by position (cheaper than by name)
        if sender is None and row[ID] == sender_id:
            sender = row
        if exact is None and row[ID] == target:
            exact = row
    if sender is None:
        raise SessionNotFound(sender_id)
    limits = RateLimit.parse(sender[RATE_LIMIT], sender[RATE_WINDOW])
    if exact is not None:
        return sender, exact, limits
    named = [r for r in rows if r[BY_NAME]]
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
    return sender, pick_recipient(active, store) if active else latest(candidates), limits


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


def _insert(
    store: Store,
    conn: sqlite3.Connection,
    sender: sqlite3.Row,
    recipient: sqlite3.Row,
    content: str,
    priority: str,
    root: int | None,
    new_thread: bool,
    limits: RateLimit,
) -> Message:
    """Store one message after the per-message rules: no self-message, the rate limit
    (`limits`, the mesh's), auto-threading, expiry for a stopped recipient, the
    queue-depth warning."""
    cfg = store.config
    sender_id, recipient_id = sender["session_id"], recipient["session_id"]
    sender_name, recipient_workspace = sender["agent_name"], recipient["agent_name"]
    recipient_name = recipient_workspace or recipient_id
    if sender_id == recipient_id:
        raise SelfMessage(recipient_name)
    now_dt = store.now_dt()
    now = iso(now_dt)
    window_start = iso(limits.since(now_dt))
    thread_since = iso(now_dt - span(cfg.thread_window))

    # One read for the rules: the session pair's newest message each way in the thread
    # window, the recipient's queue depth (the flood threshold if it has at least that
    # many unread messages, else 0), the workspace pair's sends in the rate window.
    kind = (bool(sender_name), bool(recipient_workspace))
    params = (
        sender_id,
        recipient_id,
        sender_name,
        recipient_workspace,
        thread_since,
        window_start,
        limits.limit,
        max(0, cfg.flood_threshold),
    )
    pair: list[sqlite3.Row] = []
    unread_before = recent = 0
    for row in fetch(conn, RULES[kind], params):
        if row[0] == COUNTS:
            unread_before, recent = row[1], row[2]
        else:
            pair.append(row)

    # The rate limit: the mesh's numbers, counted per workspace pair (every session of
    # the sender's workspace to every session of the recipient's).
    if recent >= limits.limit:
        sent = [row[0] for row in fetch(conn, RECENT[kind], params[:7])]  # newest first
        limits.check(sent, now_dt, recipient_name)

    # Auto-thread: join the pair's thread if they spoke within the window (the newest
    # message either way; on a tie, the sender's own).
    if root is None and not new_thread and pair:
        newest = max(pair, key=_newest)
        root = row_id(newest[2]) or int(newest[1])

    # A recipient not active (stopped, or another client's own status such as 'idle'):
    # the message waits 24 h for it (or its successor), as for a stopped one.
    expires = None
    if recipient["status"] != "active":
        expires = iso(now_dt + span(cfg.expire_after))

    # Every column is known here but the id: lastrowid is cheaper than RETURNING *.
    message_id = int(
        conn.execute(
            INSERT, (sender_id, recipient_id, content, root, priority, now, expires)
        ).lastrowid
        or 0  # an INSERT always sets it
    )

    warnings: list[str] = []
    # Queue depth with this message: what was read before it (see above), plus one.
    depth = unread_before + 1
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
    # The row as stored, decoded as `to_message` decodes a read one: the ids came from the
    # file (any value another client wrote), the rest is ours and already in its form.
    return Message(
        message_id=message_id,
        sender_session_id=shown(sender_id) or "",
        sender_name=text(sender_name),
        recipient_session_id=shown(recipient_id) or "",
        recipient_name=text(recipient_workspace),
        content=content,
        original_message_id=root,
        priority=priority,
        created_at=now,
        read=False,
        read_at=None,
        expires_at=expires,
        warnings=tuple(warnings),
    )


def _newest(row: sqlite3.Row) -> tuple[str, bool]:
    """The newest message of the pair's; on a tie, the sender's own."""
    return (row[3], row[0] == SENT)
