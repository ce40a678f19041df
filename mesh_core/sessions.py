"""Participants: register, heartbeat, deregister, hand waiting mail over, look up.

See docs/contract.md §3 (participants and their lifecycle) and §4.9 (hand-over).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import CannotForget, InvalidName, SessionNotFound
from .identity import identify
from .liveness import is_dead, process_facts
from .models import Agent, Status, metadata_view
from .rows import AgentMemo, epoch, latest, text, to_agent
from .rules import DEFAULT_CLIENTS, roster_key, validate_kind, validate_name, validate_status_filter
from .store import EXPIRES_SQL, Store

# mesh_meta key (+ session id) of a forgotten session's workspace name: its messages
# stay, and every process shows them under that name.
FORGOTTEN_KEY = "forgotten:"


@dataclass(frozen=True)
class SessionClaim:
    """What `session_for` found: the session, and whether it was already active."""

    agent: Agent
    was_active: bool


def new_session_id() -> str:
    """A random (version 4) UUID in its usual text form, as `str(uuid.uuid4())` gives,
    from the same source (os.urandom), without importing uuid: it loads `platform` at
    import, a cost on the path to registering."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def register(
    store: Store,
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
    validate_kind(kind)
    if name is not None and not isinstance(name, str):
        raise InvalidName(name, "a workspace name is text")
    ident = identify(cwd, name)
    agent_name = validate_name(ident.name)
    meta: dict[str, Any] = {
        "kind": kind,
        "client": client or DEFAULT_CLIENTS[kind],
        **process_facts(os.getpid()),
    }
    meta.update(metadata or {})
    sid = session_id or new_session_id()
    desc = description if description is not None else ident.description
    now = store.now()

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
        reap_dead(conn, store, agent_name)
        adopt_mail(conn, sid, agent_name, now)

    store.write(body)
    return agent(store, sid)


def adopt_mail(conn: sqlite3.Connection, sid: str, name: str, now: str) -> None:
    """Hand-over: unread, unexpired mail of the workspace's sessions that are not active
    (stopped, or another client's own status) moves to `sid`; its own waiting mail stops
    expiring."""
    conn.execute(
        f"""
        UPDATE agent_messages SET recipient_session_id = ?, expires_at = NULL
        WHERE read = 0 AND (expires_at IS NULL OR {EXPIRES_SQL} > ?)
          AND recipient_session_id IN (
            SELECT session_id FROM agent_sessions
            WHERE agent_name = ? COLLATE NOCASE AND agent_name = ?  -- the index, exact
              AND status IS NOT 'active' AND session_id != ?)
        """,
        (sid, now, name, name, sid),
    )
    conn.execute(
        "UPDATE agent_messages SET expires_at = NULL "
        f"WHERE recipient_session_id = ? AND read = 0 AND {EXPIRES_SQL} > ?",
        (sid, now),
    )


def heartbeat(store: Store, session_id: str) -> None:
    """Mark `session_id` alive; a stopped session that beats again is active again."""
    now = store.now()

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
            "UPDATE agent_sessions SET last_heartbeat = ?, status = 'active' WHERE session_id = ?",
            (now, session_id),
        )
        adopt_mail(conn, session_id, row["agent_name"], now)

    store.write(body)


def deregister(store: Store, session_id: str) -> None:
    """A clean exit: stopped at once; its unread mail now expires in 24 h."""
    now = store.now()
    expires = store.later(store.config.expire_after)

    def body(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE agent_sessions SET last_heartbeat = ? WHERE session_id = ?", (now, session_id)
        )
        stop_sessions(conn, store, [session_id], expires)

    store.write(body)


def forget_session(store: Store, session_id: str) -> Agent:
    """Remove a stopped session from the registry (the roster's copy of an old run);
    returns it as it was. Its messages stay, readable by id and in their threads, under
    its name: kept in mesh_meta (FORGOTTEN_KEY), so a process started later names it
    too, not by its id. Refused (CannotForget) for a session that is not
    stopped, or while unread mail waits for it (the workspace's next session would
    take it over, see adopt_mail): nothing is lost by forgetting."""
    now = store.now()

    def body(conn: sqlite3.Connection) -> Agent:
        row = session_row(conn, session_id)
        found = to_agent(row, store.now_dt(), store.config)
        name = found.agent_name or session_id[:8]
        if found.status is not Status.STOPPED:
            raise CannotForget(
                name, f"it is {found.status.value}; only a stopped session can be forgotten"
            )
        (waiting,) = conn.execute(
            "SELECT count(*) FROM agent_messages WHERE recipient_session_id = ? AND read = 0 "
            f"AND (expires_at IS NULL OR {EXPIRES_SQL} > ?)",
            (session_id, now),
        ).fetchone()
        if waiting:
            raise CannotForget(
                name,
                f"{waiting} unread message{'s wait' if waiting != 1 else ' waits'} for its "
                "workspace's next session; forget it once read or expired",
            )
        conn.execute("DELETE FROM agent_sessions WHERE session_id = ?", (session_id,))
        if text(row["agent_name"]) is not None:
            conn.execute(
                "INSERT INTO mesh_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (FORGOTTEN_KEY + session_id, text(row["agent_name"])),
            )
        _remember(store, [(row["session_id"], row["agent_name"])])
        return found

    return store.write(body)


def stop_sessions(
    conn: sqlite3.Connection, store: Store, session_ids: Sequence[str], expires: str
) -> None:
    """Mark these sessions stopped. Their unread mail moves to a live session of the same
    workspace if there is one (nothing is stranded when one of two terminals exits),
    else it waits for the next one until `expires`."""
    if not session_ids:
        return
    marks = ",".join("?" * len(session_ids))
    conn.execute(
        f"UPDATE agent_sessions SET status = 'stopped' WHERE session_id IN ({marks})",
        list(session_ids),
    )
    now = store.now()
    for sid in session_ids:
        row = conn.execute(
            "SELECT agent_name FROM agent_sessions WHERE session_id = ?", (sid,)
        ).fetchone()
        live = []
        if row is not None and row["agent_name"]:
            live = conn.execute(
                "SELECT * FROM agent_sessions WHERE agent_name = ? AND status = 'active'",
                (row["agent_name"],),
            ).fetchall()
        if live:
            heir = pick_recipient(live, store)
            conn.execute(
                "UPDATE agent_messages SET recipient_session_id = ?, expires_at = NULL "
                f"WHERE recipient_session_id = ? AND read = 0 "
                f"AND (expires_at IS NULL OR {EXPIRES_SQL} > ?)",
                (heir["session_id"], sid, now),
            )
        else:
            expire_unread(conn, [sid], expires)


def pick_recipient(rows: Sequence[sqlite3.Row], store: Store) -> sqlite3.Row:
    """Which of a workspace's sessions gets its mail: a fresh one before a stale one, then
    the longest-running (so routing does not flip with every heartbeat), then by id."""
    if len(rows) == 1:  # the usual case: nothing to compare (and no time to parse)
        return rows[0]
    now = store.now_dt().timestamp()

    def key(row: sqlite3.Row) -> tuple[int, float, str]:
        fresh = now - epoch(row["last_heartbeat"]) <= store.config.stale_after
        return (0 if fresh else 1, epoch(row["registered_at"]), str(row["session_id"]))

    return min(rows, key=key)


# Every session not stored as stopped: ours ('active') and another client's own status
# ('idle', NULL, a BLOB), written as index ranges so it does not scan the stopped ones.
NOT_STOPPED_SQL = "(status < 'stopped' OR status > 'stopped' OR status IS NULL)"


def reap_dead(conn: sqlite3.Connection, store: Store, name: str | None = None) -> list[str]:
    """Stop the sessions not stopped (of workspace `name`, or all) whose process on this
    machine is gone, whatever status another client stored; return their ids."""
    if name is None:
        rows = conn.execute(
            f"SELECT session_id, metadata FROM agent_sessions WHERE {NOT_STOPPED_SQL}"
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT session_id, metadata FROM agent_sessions "
            f"WHERE {NOT_STOPPED_SQL} AND agent_name = ? COLLATE NOCASE",
            (name,),
        ).fetchall()
    return stop_dead(conn, store, rows)


def stop_dead(conn: sqlite3.Connection, store: Store, rows: Iterable[sqlite3.Row]) -> list[str]:
    """Stop those of these active session rows whose process on this machine is gone;
    return their ids. (A caller that already read the rows saves reap_dead's query.)"""
    dead = [r["session_id"] for r in rows if is_dead(metadata_view(r["metadata"]))]
    if dead:
        stop_sessions(conn, store, dead, store.later(store.config.expire_after))
    return dead


def dead_sessions(store: Store) -> list[str]:
    """The sessions of this machine not stopped whose process is gone (a read: no lock)."""
    rows = store.read(f"SELECT session_id, metadata FROM agent_sessions WHERE {NOT_STOPPED_SQL}")
    return [r["session_id"] for r in rows if is_dead(metadata_view(r["metadata"]))]


def expire_unread(conn: sqlite3.Connection, session_ids: Sequence[str], expires: str) -> None:
    """A stopped session's unread mail waits until `expires` for it or its successor."""
    for sid in session_ids:
        conn.execute(
            "UPDATE agent_messages SET expires_at = ? "
            "WHERE recipient_session_id = ? AND read = 0 AND expires_at IS NULL",
            (expires, sid),
        )


def session_for(
    store: Store,
    name: str,
    kind: str = "cli",
    client: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> SessionClaim:
    """Act as workspace `name` (CLI `--from`): reuse its session, the active one first,
    re-activating a stopped one, or register a new one (working in `cwd`) if it has
    none. A re-activated or new session has just beaten; an active one has not."""
    name = validate_name(name)
    rows = sessions_named(store, name)
    active = [r for r in rows if r["status"] == "active"]
    if active:
        return SessionClaim(to_agent(latest(active), store.now_dt(), store.config), True)
    if rows:
        sid = latest(rows)["session_id"]
        heartbeat(store, sid)
        return SessionClaim(agent(store, sid), False)
    return SessionClaim(register(store, name, kind=kind, client=client, cwd=cwd), False)


def sessions_named(store: Store, name: str) -> list[sqlite3.Row]:
    """The sessions of workspace `name`: exact matches, else any-case ones."""
    rows = store.read("SELECT * FROM agent_sessions WHERE agent_name = ? COLLATE NOCASE", (name,))
    exact = [r for r in rows if r["agent_name"] == name]
    return exact or rows


def workspace_states(store: Store, name: str) -> frozenset[tuple[str, str]]:
    """(session id, stored status) of workspace `name`'s sessions: when it changes, a
    session of the workspace stopped, started or was taken over, and mail may have moved
    between them (a hand-over, see adopt_mail and stop_sessions)."""
    rows = store.read(
        "SELECT session_id, status FROM agent_sessions "
        "WHERE agent_name = ? COLLATE NOCASE AND agent_name = ?",
        (name, name),
    )
    return frozenset((str(r[0]), repr(r[1])) for r in rows)


def session_row(conn: sqlite3.Connection, session_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM agent_sessions WHERE session_id = ?", (session_id,)
    ).fetchone()
    if row is None:
        raise SessionNotFound(session_id)
    return row


def current_session(conn: sqlite3.Connection, store: Store, session_id: str) -> sqlite3.Row:
    """The session now answering for `session_id`'s workspace: itself if active, else
    the workspace's active session (it restarted), else itself (mail waits)."""
    row = session_row(conn, session_id)
    if row["status"] == "active" or not row["agent_name"]:
        return row
    newer = conn.execute(
        "SELECT * FROM agent_sessions WHERE agent_name = ? AND status = 'active'",
        (row["agent_name"],),
    ).fetchall()
    return pick_recipient(newer, store) if newer else row


def agent(store: Store, session_id: str) -> Agent:
    row = store.read_one("SELECT * FROM agent_sessions WHERE session_id = ?", (session_id,))
    if row is None:
        raise SessionNotFound(session_id)
    unread = store.read(
        "SELECT count(*) FROM agent_messages WHERE recipient_session_id = ? AND read = 0",
        (session_id,),
    )[0][0]
    return to_agent(row, store.now_dt(), store.config, unread)


def agents(store: Store, status: str = "active", memo: AgentMemo | None = None) -> list[Agent]:
    """The roster with reported status and unread counts, in the roster order.

    `status`: active | stale | other | stopped | all | online (all but stopped).
    `memo`: kept by a caller that reads the roster again and again (a monitor), so only
    the rows that changed are decoded again."""
    validate_status_filter(status)
    if status in ("active", "stale", "other", "online"):
        # Not only 'active': another client's own status ('idle', NULL) shows as other.
        rows = store.read(f"SELECT * FROM agent_sessions WHERE {NOT_STOPPED_SQL}")
    elif status == "stopped":
        rows = store.read("SELECT * FROM agent_sessions WHERE status = 'stopped'")
    else:
        rows = store.read("SELECT * FROM agent_sessions")
    unread = unread_counts(store)
    now = store.now_dt()
    _remember(store, ((row["session_id"], row["agent_name"]) for row in rows))
    found = (
        memo.decode(rows, now, store.config, unread)
        if memo is not None
        else [to_agent(row, now, store.config, unread.get(row["session_id"], 0)) for row in rows]
    )
    if status in ("active", "stale", "other", "stopped"):
        found = [a for a in found if a.status is Status(status)]
    elif status == "online":  # an odd status long silent reads as stopped: not online
        found = [a for a in found if a.status is not Status.STOPPED]
    found.sort(key=roster_key)
    return found


def unread_counts(store: Store) -> dict[str, int]:
    """Unread messages per recipient (a scan of the unread-only index)."""
    rows = store.read(
        "SELECT recipient_session_id, count(*) FROM agent_messages "
        "WHERE read = 0 GROUP BY recipient_session_id"
    )
    return {row[0]: row[1] for row in rows}


def names(store: Store, session_ids: Iterable[str]) -> dict[str, str | None]:
    """Workspace names of these sessions, in one query per 500 (not one per row). A
    forgotten session has the name kept when it was forgotten (by this process or any
    other), else the one this process last read."""
    ids = list(set(session_ids))
    found: dict[str, str | None] = {}
    rows = store.read_in(
        "SELECT session_id, agent_name FROM agent_sessions WHERE session_id IN ({marks})", ids
    )
    _remember(store, ((row[0], row[1]) for row in rows))
    for row in rows:
        found[row[0]] = text(row[1])
    seen = store.names_seen
    gone = [sid for sid in ids if sid not in found and isinstance(sid, str)]
    for sid in gone:
        if sid in seen:
            found[sid] = seen[sid]
    keys = [FORGOTTEN_KEY + sid for sid in gone if sid not in found]
    kept = [
        (str(row[0])[len(FORGOTTEN_KEY) :], row[1])
        for row in store.read_in("SELECT key, value FROM mesh_meta WHERE key IN ({marks})", keys)
    ]
    _remember(store, kept)
    for sid, name in kept:
        found[sid] = text(name)
    return found


NAMES_KEPT = 100_000  # sessions whose names a process remembers (then it starts again)


def _remember(store: Store, pairs: Iterable[tuple[object, object]]) -> None:
    """Keep the names of the session rows just read (see Store.names_seen)."""
    seen = store.names_seen
    for sid, name in pairs:
        if isinstance(sid, str) and name is not None and seen.get(sid) != name:
            shown = text(name)
            if shown is not None and seen.get(sid) != shown:
                if len(seen) >= NAMES_KEPT:
                    seen.clear()
                seen[sid] = shown
