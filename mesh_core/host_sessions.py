"""Which mesh session is one host session (docs/contract.md §3.2).

A host tool's hooks and its `mesh mcp` must act as one mesh session per host session.
The host process alone does not say which: Codex 0.171's TUI runs every session of one
CODEX_HOME in one app-server daemon, so the hooks and `mesh mcp` servers of two sessions
all have that daemon as their host process. What tells them apart is the host's own
session id (`host_session_id` in the metadata): the `session_id` of the hook input
(Claude Code, Codex, Gemini CLI), which Codex also sends to `mesh mcp` as the thread id in
each `tools/call` `_meta`.

- A hook with a session id acts as the live session of its host process that carries that
  id. Failing that it claims the host process's only live session, unless that one's
  server learned its own id from the client: Claude Code's `mesh mcp` never learns the
  session id, and its `/clear` starts a new session id in the same process and server.
  A second live session of the host process means it runs several: nothing is guessed.
- `mesh mcp`, once the client names its host session, records the id as its own
  (`host_session_bound`) and takes over the sessions the hooks of that host session
  registered meanwhile (their unread mail moves over).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .liveness import process_facts
from .models import Agent, parse_metadata
from .rows import to_agent
from .rules import CLIENT_HOOK, validate_name
from .sessions import reap_dead
from .store import EXPIRES_SQL, Store

HOST_SESSION_KEY = "host_session_id"
BOUND_KEY = "host_session_bound"  # the id came from the server's own client, not a hook
MAX_HOST_SESSION_ID = 200


def clean_host_session_id(value: object) -> str | None:
    """The host session id if it can be one (short printable text), else None: then the
    host process alone keys the session, as for a host that sends none."""
    if not isinstance(value, str) or not value or len(value) > MAX_HOST_SESSION_ID:
        return None
    return value if value.isprintable() else None


def _host_rows(
    conn: sqlite3.Connection, store: Store, name: str | None, host_pid: int
) -> list[tuple[sqlite3.Row, dict[str, Any]]]:
    """The active sessions (of workspace `name`, or any) of host process `host_pid`,
    oldest first, after stopping dead ones. A reused pid does not match (start time)."""
    reap_dead(conn, store, name)
    if name is None:
        rows = conn.execute(
            "SELECT * FROM agent_sessions WHERE status = 'active' ORDER BY registered_at"
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT * FROM agent_sessions WHERE status = 'active' "
            "AND agent_name = ? COLLATE NOCASE ORDER BY registered_at",
            (name,),
        ).fetchall()
        exact = [r for r in rows if r["agent_name"] == name]
        rows = exact or rows
    start = process_facts(host_pid).get("pid_start")
    found = []
    for row in rows:
        meta = parse_metadata(row["metadata"])
        if meta.get("host_pid") == host_pid and meta.get("host_pid_start") == start:
            found.append((row, meta))
    return found


def host_sessions(store: Store, name: str | None, host_pid: int) -> list[Agent]:
    """Every live session (of workspace `name`, or any) the host process runs."""
    if name is not None:
        name = validate_name(name)
    rows = store.write(lambda conn: _host_rows(conn, store, name, host_pid))
    now = store.now_dt()
    return [to_agent(row, now, store.config) for row, _ in rows]


def hook_host_session(
    store: Store, name: str | None, host_pid: int, host_session_id: str | None
) -> Agent | None:
    """The live session a hook of host session `host_session_id` acts as (see the module
    docstring), None if it has none yet. Without an id: the host process's first one."""
    if name is not None:
        name = validate_name(name)

    def body(conn: sqlite3.Connection) -> sqlite3.Row | None:
        rows = _host_rows(conn, store, name, host_pid)
        if host_session_id is None:
            return rows[0][0] if rows else None
        for row, meta in rows:
            if meta.get(HOST_SESSION_KEY) == host_session_id:
                return row
        if len(rows) != 1 or rows[0][1].get(BOUND_KEY) is True:
            return None  # none, another host session's own, or several: not ours to guess
        row, meta = rows[0]
        meta[HOST_SESSION_KEY] = host_session_id
        conn.execute(
            "UPDATE agent_sessions SET metadata = ? WHERE session_id = ?",
            (json.dumps(meta), row["session_id"]),
        )
        claimed: sqlite3.Row | None = conn.execute(
            "SELECT * FROM agent_sessions WHERE session_id = ?", (row["session_id"],)
        ).fetchone()
        return claimed

    found = store.write(body)
    return to_agent(found, store.now_dt(), store.config) if found is not None else None


def bind_host_session(
    store: Store, session_id: str, host_pid: int, host_session_id: str, *, bound: bool = True
) -> list[str]:
    """`session_id` (a `mesh mcp`) runs host session `host_session_id`: record it, and
    take over the sessions the hooks of that host session registered (their unread mail
    moves to `session_id`, they are stopped). Returns the ids taken over. `bound`: the
    id came from the server's own client (Codex's `_meta`); False when it was only
    learned from a hook's session, which a later hook may still re-key (Claude Code's
    `/clear`)."""
    now = store.now()

    def body(conn: sqlite3.Connection) -> list[str]:
        own = conn.execute(
            "SELECT metadata FROM agent_sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        if own is None:
            return []
        meta = parse_metadata(own["metadata"])
        meta[HOST_SESSION_KEY] = host_session_id
        if bound:
            meta[BOUND_KEY] = True
        conn.execute(
            "UPDATE agent_sessions SET metadata = ? WHERE session_id = ?",
            (json.dumps(meta), session_id),
        )
        taken = [
            row["session_id"]
            for row, other in _host_rows(conn, store, None, host_pid)
            if row["session_id"] != session_id
            and other.get(HOST_SESSION_KEY) == host_session_id
            and other.get("client") == CLIENT_HOOK
        ]
        for sid in taken:
            conn.execute(
                "UPDATE agent_messages SET recipient_session_id = ?, expires_at = NULL "
                "WHERE recipient_session_id = ? AND read = 0 "
                f"AND (expires_at IS NULL OR {EXPIRES_SQL} > ?)",
                (session_id, sid, now),
            )
            conn.execute(
                "UPDATE agent_sessions SET status = 'stopped', last_heartbeat = ? "
                "WHERE session_id = ?",
                (now, sid),
            )
        return taken

    return store.write(body)
