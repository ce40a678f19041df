"""Clean-up (stop silent sessions, purge old read mail, drop expired unread mail) and the
figures `mesh status` shows. See docs/contract.md §4.14.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from .clock import parse_ts_or_none
from .models import CleanupReport, Status
from .rows import text
from .rules import is_flooded
from .sessions import NOT_STOPPED_SQL, agents, dead_sessions, reap_dead, stop_sessions
from .store import EXPIRES_SQL, TEXT_LEAD_SECONDS, Store, canon_sql


def cleanup(store: Store, *, only_if_due: bool = False) -> CleanupReport:
    """Stop silent sessions, purge old read mail, drop expired unread mail.

    `only_if_due`: skip it if any participant ran it in the last `cleanup_every` seconds,
    checked inside the write transaction so racing callers run it once."""
    cfg = store.config
    now = store.now()
    stop_before = store.ago(cfg.stop_after)
    purge_before = store.ago(cfg.read_retention)
    expires = store.later(cfg.expire_after)
    due_before = store.ago(cfg.cleanup_every)
    # Each test below is an index range wide enough to hold rows of any ISO-8601 form,
    # then the exact comparison on real time: nothing goes early.
    stop_range = store.ago(cfg.stop_after - TEXT_LEAD_SECONDS)
    purge_range = store.ago(cfg.read_retention - TEXT_LEAD_SECONDS)
    expiry_range = store.later(TEXT_LEAD_SECONDS)

    def body(conn: sqlite3.Connection) -> CleanupReport:
        if only_if_due and not cleanup_due(conn, due_before):
            return CleanupReport(ran=False)
        silent = [
            r[0]
            for r in conn.execute(
                "SELECT session_id FROM agent_sessions WHERE status = 'active' "
                f"AND last_heartbeat < ? AND {canon_sql('last_heartbeat')} < ?",
                (stop_range, stop_before),
            )
        ]
        silent = list(dict.fromkeys(silent + odd_silent(conn, store)))
        stop_sessions(conn, store, silent, expires)
        stopped = silent + reap_dead(conn, store)
        purged = conn.execute(
            "DELETE FROM agent_messages WHERE read = 1 AND read_at < ? "
            f"AND {canon_sql('read_at')} < ?",
            (purge_range, purge_before),
        ).rowcount
        expired = conn.execute(
            "DELETE FROM agent_messages WHERE expires_at IS NOT NULL AND expires_at < ? "
            f"AND {EXPIRES_SQL} < ? AND read = 0",
            (expiry_range, now),
        ).rowcount
        conn.execute(
            "INSERT INTO mesh_meta (key, value) VALUES ('last_cleanup', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (now,),
        )
        return CleanupReport(len(stopped), purged, expired)

    return store.write(body)


def odd_silent(conn: sqlite3.Connection, store: Store) -> list[Any]:
    """Sessions the sweep above cannot see, to stop as silent: another client's own
    status ('idle', NULL, a BLOB) or a heartbeat SQLite cannot read as a time, whose
    heartbeat is older than `stop_after` or unreadable."""
    rows = conn.execute(
        f"SELECT session_id, last_heartbeat FROM agent_sessions WHERE {NOT_STOPPED_SQL} "
        "AND (status IS NOT 'active' OR strftime('%s', last_heartbeat) IS NULL)"
    ).fetchall()
    now, limit = store.now_dt(), store.config.stop_after
    found = []
    for session_id, beat in rows:
        seen = parse_ts_or_none(text(beat))
        if seen is None or (now - seen).total_seconds() > limit:
            found.append(session_id)
    return found


def maybe_cleanup(store: Store) -> CleanupReport:
    """Run the clean-up unless any participant ran it in the last minute; in any case stop
    the sessions of this machine whose process is gone (checked without the write lock)."""
    if not cleanup_due(store.connection(), store.ago(store.config.cleanup_every)):
        if dead_sessions(store):
            store.write(lambda conn: reap_dead(conn, store))
        return CleanupReport(ran=False)  # the common case, without taking the write lock
    return cleanup(store, only_if_due=True)


def cleanup_due(conn: sqlite3.Connection, due_before: str) -> bool:
    """True unless the shared clean-up last ran after `due_before`."""
    row = conn.execute("SELECT value FROM mesh_meta WHERE key = 'last_cleanup'").fetchone()
    return not (row and row[0] and row[0] > due_before)


def stats(store: Store) -> dict[str, Any]:
    """What `mesh status` shows: where, how big, how many, who needs attention."""
    wal = Path(str(store.path) + "-wal")
    roster = agents(store, "all")
    by_status = {s.value: sum(a.status is s for a in roster) for s in Status}
    total, unread = store.read("SELECT count(*), coalesce(sum(read = 0), 0) FROM agent_messages")[0]
    version = store.read("PRAGMA user_version")[0][0]
    last_cleanup = store.read_one("SELECT value FROM mesh_meta WHERE key = 'last_cleanup'")
    return {
        "db_path": str(store.path),
        "schema_version": version,
        "db_bytes": store.path.stat().st_size if store.path.exists() else 0,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        "sessions": by_status,
        "messages": total,
        "unread": unread,
        "last_cleanup": last_cleanup[0] if last_cleanup else None,
        "stale": [a.agent_name for a in roster if a.status is Status.STALE],
        "flooded": [
            a.agent_name
            for a in roster
            if is_flooded(a.unread, store.config) and a.status is not Status.STOPPED
        ],
    }
