"""Build a realistic mesh database of any size in seconds, for the poll benchmarks.

The live state is the same at every size (the sessions and the unread backlog); only the
read history grows. So "1k vs 1M messages" measures what history costs a poll, which is
what must stay flat. The schema comes from `mesh_core.db.connect` itself; the message
indexes are dropped during the bulk insert and re-created from the schema's own SQL
afterwards (a sorted index build is much faster than a million random B-tree inserts).
"""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mesh_core import DEFAULT_CONFIG, iso
from mesh_core.db import connect

HISTORY_HOURS = 23.0  # read mail older than 24 h is purged, so history spans a day at most
PROBE_THREAD = 8  # messages in the thread whose fetch is timed
PRIORITIES = ("normal",) * 85 + ("high",) * 8 + ("low",) * 5 + ("urgent",) * 2
WORDS = [
    "build",
    "tests",
    "failing",
    "on",
    "main",
    "please",
    "look",
    "at",
    "the",
    "migration",
    "schema",
    "lock",
    "retry",
    "queue",
    "deploy",
    "staging",
    "review",
    "diff",
    "merged",
    "rebased",
    "conflict",
    "in",
    "config",
    "api",
    "endpoint",
    "timeout",
    "cache",
    "flaky",
    "snapshot",
    "done",
    "thanks",
    "can",
    "you",
    "check",
]


@dataclass(frozen=True)
class Dataset:
    """What the benchmarks need to know about a built database."""

    path: Path
    messages: int
    active: tuple[tuple[str, str], ...]  # (session_id, agent_name) of active sessions
    thread_root: int  # root of a thread of PROBE_THREAD messages, from mid-history
    unread: int


def build(
    path: Path, messages: int, sessions: int = 1000, unread: int = 200, seed: int = 4
) -> Dataset:
    """Create `path` with `sessions` sessions (90 % active) and `messages` messages over
    the last day in interleaved threads; all read but the newest-ish `unread`."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    conn = connect(path, DEFAULT_CONFIG)
    try:
        conn.execute("PRAGMA cache_size = -262144")  # 256 MB for the build only
        index_sql = [
            row[0]
            for row in conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'agent_messages' AND sql IS NOT NULL"
            )
        ]
        conn.execute("BEGIN")
        for name in _index_names(conn):
            conn.execute(f"DROP INDEX {name}")
        ids = _insert_sessions(conn, rng, sessions, now)
        active = ids[: max(2, sessions * 9 // 10)]
        root = _insert_messages(conn, rng, messages, unread, ids, active, now)
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        for sql in index_sql:
            conn.execute(sql)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        names = dict(conn.execute("SELECT session_id, agent_name FROM agent_sessions"))
    finally:
        conn.close()
    return Dataset(
        path=path,
        messages=messages,
        active=tuple((sid, names[sid]) for sid in active),
        thread_root=root,
        unread=min(unread, messages),
    )


def _index_names(conn: sqlite3.Connection) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'agent_messages' AND sql IS NOT NULL"
        )
    ]


def _insert_sessions(
    conn: sqlite3.Connection, rng: random.Random, sessions: int, now: datetime
) -> list[str]:
    rows = []
    ids = []
    active_count = max(2, sessions * 9 // 10)
    for number in range(sessions):
        sid = f"bench-{number:06d}-{rng.getrandbits(64):016x}"
        ids.append(sid)
        is_active = number < active_count
        beat = now - timedelta(seconds=rng.uniform(0, 9) if is_active else rng.uniform(900, 80000))
        meta = {"kind": "agent", "client": "mesh-bench", "pid": 1000 + number, "host": "bench"}
        rows.append(
            (
                sid,
                f"agent-{number:04d}",
                f"Benchmark workspace {number}",
                f"/src/agent-{number:04d}",
                f"git@example.com:bench/agent-{number:04d}.git",
                "active" if is_active else "stopped",
                iso(beat - timedelta(hours=2)),
                iso(beat),
                json.dumps(meta),
            )
        )
    conn.executemany(
        "INSERT INTO agent_sessions (session_id, agent_name, agent_description, cwd, repo, "
        "status, registered_at, last_heartbeat, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return ids


def _insert_messages(
    conn: sqlite3.Connection,
    rng: random.Random,
    messages: int,
    unread: int,
    ids: list[str],
    active: list[str],
    now: datetime,
) -> int:
    """Messages in time order; ~40 conversations open at once, each 1-12 messages long,
    alternating direction. Returns the root of the probe thread (mid-history)."""
    contents = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30))) for _ in range(997)]
    start = now - timedelta(hours=HISTORY_HOURS)
    step = (now - timedelta(seconds=2) - start) / max(1, messages)
    newest = range(max(1, messages - 20 * max(unread, 1)) + 1, messages + 1)
    unread_ids = set(rng.sample(newest, min(unread, len(newest))))
    open_threads: list[list[Any]] = []  # [root, a, b, remaining, next_sender_is_a]
    probe_root = messages // 2 or 1  # a thread of exactly PROBE_THREAD messages starts here
    batch: list[tuple[object, ...]] = []
    for message_id in range(1, messages + 1):
        created = start + step * message_id
        probe = message_id == probe_root
        if probe or not open_threads or (len(open_threads) < 40 and rng.random() < 0.3):
            a, b = rng.sample(active, 2)
            if rng.random() < 0.05:  # some mail goes to stopped sessions
                b = rng.choice(ids[len(active) :] or active)
            length = PROBE_THREAD if probe else rng.randint(1, 12)
            thread: list[Any] = [message_id, a, b, length, True]
            open_threads.append(thread)
            original = None
        else:
            thread = rng.choice(open_threads)
            original = thread[0]
        sender, recipient = (thread[1], thread[2]) if thread[4] else (thread[2], thread[1])
        thread[4] = not thread[4]
        thread[3] -= 1
        if thread[3] <= 0:
            open_threads.remove(thread)
        created_at = iso(created)
        if message_id in unread_ids:
            read, read_at = 0, None
        else:
            read, read_at = 1, iso(created + timedelta(seconds=rng.uniform(0.05, 10)))
        batch.append(
            (
                message_id,
                sender,
                recipient,
                f"#{message_id} {contents[message_id % 997]}",
                original,
                rng.choice(PRIORITIES),
                created_at,
                read,
                read_at,
            )
        )
        if len(batch) >= 50_000:
            _flush(conn, batch)
    _flush(conn, batch)
    return probe_root


def _flush(conn: sqlite3.Connection, batch: list[tuple[object, ...]]) -> None:
    conn.executemany(
        "INSERT INTO agent_messages (message_id, sender_session_id, recipient_session_id, "
        "content, original_message_id, priority, created_at, read, read_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
        batch,
    )
    batch.clear()
