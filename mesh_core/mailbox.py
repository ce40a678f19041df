"""The receiving side: take the inbox (bounded, marked read only once rendered), mark
read, peek, read a thread, and wait for the asked party's reply. See docs/contract.md §4.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from .errors import (
    MessageNotFound,
)
from .models import Message
from .rows import delivery_order, time_order, to_message
from .rules import (
    PRIORITY_RANK_SQL,
    validate_message_id,
    validate_timeout,
)
from .sessions import names
from .store import EXPIRES_SQL, Store

# How often a waiting wait_for_reply asks its caller's `should_stop` (a cancelled MCP
# call, a heartbeat due) while no commit wakes it.
STOP_CHECK = 0.25


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
    now = store.now()

    def body(conn: sqlite3.Connection) -> Take:
        taken = _collect(store, conn, session_id, render, max_count, max_bytes, now)
        if taken.messages:
            ids = [m.message_id for m in taken.messages]
            conn.execute(
                f"UPDATE agent_messages SET read = 1, read_at = ? "
                f"WHERE message_id IN ({','.join('?' * len(ids))})",
                (now, *ids),
            )
        return taken

    return store.write(body)


def offer(
    store: Store,
    session_id: str,
    render: Callable[[Message], str],
    max_count: int | None = None,
    max_bytes: int | None = None,
) -> Take:
    """What `take` would hand over now, rendered, marking nothing read: for a consumer
    that marks read only once the reader has it (`hand_over`, `mark_read`)."""
    now = store.now()
    try:
        return _collect(store, store.connection(), session_id, render, max_count, max_bytes, now)
    except sqlite3.DatabaseError as exc:
        raise store.unusable(exc) from exc


def hand_over(
    store: Store,
    session_id: str,
    render: Callable[[Message], str],
    deliver: Callable[[Take], bool],
    max_count: int | None = None,
    max_bytes: int | None = None,
) -> tuple[Take, bool]:
    """Offer a bounded batch, let `deliver` hand it over, and mark read only what it
    reports delivered (True: the whole batch). Returns the batch and that verdict.

    Unlike `take`, two consumers of one inbox may both hand over a message; a reader
    that goes away before reading leaves the batch unread (delivered twice at worst,
    never zero times; docs/contract.md §4.12)."""
    batch = offer(store, session_id, render, max_count, max_bytes)
    delivered = deliver(batch)
    if delivered and batch.messages:
        mark_read(store, session_id, [m.message_id for m in batch.messages])
    return batch, delivered


def _collect(
    store: Store,
    conn: sqlite3.Connection,
    session_id: str,
    render: Callable[[Message], str],
    max_count: int | None,
    max_bytes: int | None,
    now: str,
) -> Take:
    """The bounded batch `take` and `offer` hand over, each message rendered as it will
    be once delivered; `more` counts the unread messages beyond it."""
    cfg = store.config
    count_cap = max(1, cfg.take_max_messages if max_count is None else max_count)
    byte_cap = cfg.take_max_bytes if max_bytes is None else max_bytes
    waiting_sql = (
        "FROM agent_messages WHERE recipient_session_id = ? AND read = 0 "
        f"AND (expires_at IS NULL OR {EXPIRES_SQL} > ?)"
    )
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
    left = conn.execute(f"SELECT count(*) {waiting_sql}", (session_id, now)).fetchone()[0]
    more = int(left) - len(taken) - len(aside)
    return Take(tuple(taken), tuple(texts), max(0, more), tuple(aside))


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


def unread_after(
    store: Store, session_id: str, after: int | None, limit: int = 100
) -> list[Message]:
    """This session's unread messages with ids above `after` (None: the newest), at most
    `limit`, in delivery order, marking nothing read: what arrived since the last look,
    however many older ones wait unread. Ids grow in commit order (AUTOINCREMENT, one
    writer at a time), so a page that was full continues from its highest id."""
    live = f"recipient_session_id = ? AND read = 0 AND (expires_at IS NULL OR {EXPIRES_SQL} > ?)"
    if after is None:
        sql = f"SELECT * FROM agent_messages WHERE {live} ORDER BY message_id DESC LIMIT ?"
        params: tuple[object, ...] = (session_id, store.now(), limit)
    else:
        sql = (
            f"SELECT * FROM agent_messages WHERE {live} AND message_id > ? "
            "ORDER BY message_id LIMIT ?"
        )
        params = (session_id, store.now(), after, limit)
    return messages(store, sorted(store.read(sql, params), key=delivery_order))


def unread_ids_up_to(store: Store, session_id: str, up_to: int) -> set[int]:
    """Ids of this session's unread messages at or below `up_to` (ids only, from the
    unread index): what a client leaving mail unread compares with what it has seen,
    to find mail a hand-over moved to it (older ids than the newest it saw)."""
    rows = store.read(
        "SELECT message_id FROM agent_messages "
        "WHERE recipient_session_id = ? AND read = 0 AND message_id <= ?",
        (session_id, up_to),
    )
    return {int(r[0]) for r in rows}


def unread_by_id(store: Store, session_id: str, message_ids: Sequence[int]) -> list[Message]:
    """Those of these messages still unread, unexpired and addressed to `session_id`,
    in delivery order."""
    found = store.read_in(
        "SELECT * FROM agent_messages WHERE recipient_session_id = ? AND read = 0 AND "
        f"(expires_at IS NULL OR {EXPIRES_SQL} > ?) AND message_id IN ({{marks}})",
        message_ids,
        (session_id, store.now()),
    )
    return messages(store, sorted(found, key=delivery_order))


def max_message_id(store: Store) -> int:
    """The highest message id on the mesh (0 when none): through the primary key."""
    row = store.read_one("SELECT max(message_id) FROM agent_messages")
    return int(row[0]) if row is not None and row[0] is not None else 0


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

    Sleeps until the file system reports a write to the database (mesh_core/watch.py,
    as the participants do), confirms a commit with `data_version`, and looks for the
    reply; it looks every `watch_safety_interval` anyway, and every `watch_interval`
    where the folder cannot be watched. `should_stop` is asked at least every
    STOP_CHECK seconds."""
    from .watch import CommitWatch, Settle  # not on the path of a plain `mesh send`

    timeout = validate_timeout(timeout)
    cfg = store.config
    deadline = time.monotonic() + timeout
    woken = threading.Event()
    watch = CommitWatch(store.path, woken.set)
    watch.start()  # before the first look: a reply committed meanwhile is not missed
    try:
        last_version: int | None = None
        last_full = 0.0
        events_seen = watch.events
        settle = Settle()  # an event data_version does not confirm yet: look again soon
        while True:
            woken.clear()
            version = store.data_version()
            now = time.monotonic()
            settle.after_look(
                evented=watch.events != events_seen,
                changed=last_version is not None and version != last_version,
            )
            events_seen = watch.events
            if version != last_version or now - last_full >= cfg.watch_safety_interval:
                found = take_reply(store, session_id, message_id)
                if found is not None:
                    return found
                last_version, last_full = version, now
            if now >= deadline or (should_stop is not None and should_stop()):
                return None
            wait = cfg.watch_safety_interval if watch.active else cfg.watch_interval
            wait = min(wait, settle.delay)
            if should_stop is not None:
                wait = min(wait, STOP_CHECK)
            woken.wait(min(wait, max(0.0, deadline - now)))
    finally:
        watch.close()


def messages(store: Store, rows: Iterable[sqlite3.Row]) -> list[Message]:
    """Rows as Messages, with both parties' names looked up in one query."""
    rows = list(rows)
    ids = {r["sender_session_id"] for r in rows} | {r["recipient_session_id"] for r in rows}
    if not rows:
        return []
    known = names(store, ids)
    return [to_message(r, known) for r in rows]
