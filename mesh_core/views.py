"""Read-only views of the mesh for a monitor (the TUI): roster, thread list, one thread.

Nothing here writes or marks anything read. Every query is bounded by what a screen
shows, so its cost stays flat as the mesh grows to a million messages:

- recent activity uses the primary key as the time index: `message_id` is AUTOINCREMENT,
  so ids grow with `created_at`; a binary search over ids (a few rowid seeks) finds the
  first message of the last hour, that tail is aggregated once, and later refreshes read
  only the ids above the highest seen (`Activity`);
- the thread list reads the newest messages by `message_id` (all threads) or through
  `idx_messages_recipient` / `idx_messages_pair` (one agent), keeps the newest N threads,
  and summarises just those through the primary key and `idx_messages_thread`;
- a thread's messages come through `idx_messages_thread`, newest `limit` only.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from . import mailbox
from .clock import iso
from .mesh import Mesh
from .models import Agent, Message, Status
from .rows import AgentMemo, text
from .rules import (
    PRIORITY_ORDER,
    PRIORITY_RANK_SQL,
    RATE_PAIR_COUNTS_SQL,
    THREAD_ID_SQL,
    is_flooded,
    roster_key,
)
from .store import EXPIRES_SQL

ACTIVITY_BUCKETS = 12  # the last hour in 5-minute buckets
ACTIVITY_WINDOW = 3600.0
_BUCKET = timedelta(seconds=ACTIVITY_WINDOW / ACTIVITY_BUCKETS)
_BUCKET_MS = _BUCKET // timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JULIAN_EPOCH_MS = 210_866_760_000_000  # julianday('1970-01-01') in milliseconds
_IDLE = (0,) * ACTIVITY_BUCKETS
THREAD_LIMIT = 100
THREAD_SCAN = 5000  # newest messages read to find the newest threads of the whole mesh
MESSAGE_LIMIT = 200


@dataclass(frozen=True)
class RosterRow:
    """One agent as the monitor shows it."""

    agent: Agent
    activity: tuple[int, ...]  # messages sent or received, oldest bucket first
    rate_limited: tuple[str, ...]  # names of peers this agent is at the rate limit with
    flooded: bool

    @property
    def needs_attention(self) -> bool:
        """Stale, flooded or rate-limited: sorted first and highlighted."""
        if self.agent.status is Status.STOPPED:
            return False
        return self.agent.status is Status.STALE or self.flooded or bool(self.rate_limited)


@dataclass(frozen=True)
class ThreadSummary:
    thread_id: int
    participants: tuple[str, ...]  # workspace names, first speaker first
    first_line: str  # first line of the root (or of the oldest message still stored)
    last_activity: str  # created_at of the newest message
    count: int
    unread_for_me: int  # unread messages addressed to the viewer
    top_priority: str  # the highest priority of any message in the thread
    last_message_id: int
    last_line: str = ""  # first line of the newest message


@dataclass(frozen=True)
class MeshSnapshot:
    """What one refresh of the monitor read, at `taken_at`."""

    taken_at: datetime
    roster: tuple[RosterRow, ...]
    threads: tuple[ThreadSummary, ...]


def roster_counts(rows: Iterable[RosterRow]) -> dict[str, int]:
    """Sessions by what needs a look (active, stale, stopped, other, flooded,
    rate-limited), counted from the rows a monitor shows, people included, so a top bar
    and its rows always agree."""
    result = {s.value: 0 for s in Status} | {"flooded": 0, "rate-limited": 0}
    for row in rows:
        result[row.agent.status.value] += 1
        if row.agent.status is not Status.STOPPED:
            result["flooded"] += row.flooded
            result["rate-limited"] += bool(row.rate_limited)
    return result


def snapshot(
    mesh: Mesh,
    me: str | None = None,
    agent: str | None = None,
    thread_limit: int = THREAD_LIMIT,
    activity: Activity | None = None,
    memo: AgentMemo | None = None,
) -> MeshSnapshot:
    """The roster and the newest threads (of `agent`, else of the whole mesh), as seen by
    session `me` (whose unread messages are counted per thread). A monitor keeps one
    `Activity` and one `AgentMemo` and passes them each time: then a refresh reads only
    what changed and decodes only the session rows that changed."""
    return MeshSnapshot(
        taken_at=mesh.clock.now(),
        roster=tuple(roster(mesh, activity, memo)),
        threads=tuple(threads(mesh, me, agent, thread_limit)),
    )


def _first_id_since(mesh: Mesh, since: str) -> int | None:
    """The smallest message_id created at or after `since` (ids grow with time), found by
    binary search over the primary key: O(log n) seeks however big the table is."""
    # Two sub-selects: SQLite answers a lone min() or max() with one seek, but scans the
    # whole table for `SELECT min(x), max(x)`.
    bounds = mesh.store.read(
        "SELECT (SELECT min(message_id) FROM agent_messages), "
        "(SELECT max(message_id) FROM agent_messages)"
    )[0]
    low, high = bounds[0], bounds[1]
    if low is None:
        return None
    newest = mesh.store.read("SELECT created_at FROM agent_messages WHERE message_id = ?", (high,))[
        0
    ][0]
    if (text(newest) or "") < since:
        return None
    while low < high:
        middle = (low + high) // 2
        row = mesh.store.read(
            "SELECT message_id, created_at FROM agent_messages WHERE message_id >= ? "
            "ORDER BY message_id LIMIT 1",
            (middle,),
        )[0]
        if (text(row["created_at"]) or "") >= since:
            high = middle
        else:
            low = row["message_id"] + 1
    return int(low)


def _rate_limited(mesh: Mesh, now: datetime, names: dict[str, str]) -> dict[str, set[str]]:
    """Sender session -> the workspaces its workspace is at the rate limit with: the
    window's messages only, added up per workspace pair as the limit counts them."""
    limits = mesh.rate_limit()
    since = iso(limits.since(now))
    first = _first_id_since(mesh, since)
    if first is None:
        return {}
    totals: dict[tuple[str, str], int] = {}
    senders: dict[tuple[str, str], set[str]] = {}
    for sender, recipient, count in mesh.store.read(
        RATE_PAIR_COUNTS_SQL, {"first": first, "since": since}
    ):
        key = (names.get(sender, str(sender)), names.get(recipient, str(recipient)))
        totals[key] = totals.get(key, 0) + int(count)
        senders.setdefault(key, set()).add(sender)
    limited: dict[str, set[str]] = {}
    for key, total in totals.items():
        if total >= limits.limit:
            for sender in senders[key]:
                limited.setdefault(sender, set()).add(key[1])
    return limited


class Activity:
    """Messages sent or received per session in the last hour, in 5-minute buckets.

    Kept between refreshes: the first `update` aggregates the hour (found by a binary
    search over message ids); each later one reads only the messages committed since
    (ids above the highest seen), so a refresh costs what changed, not the size of the
    hour. Buckets are aligned to the clock (…:00, :05, :10 …), the oldest whole, the
    newest partial, so a warm tracker and a fresh one agree exactly on the same rows.
    A message deleted by clean-up stays counted until its bucket leaves the hour.
    Locked, so a refresh that overlaps another cannot corrupt the counts.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_id: int | None = None
        self._counts: dict[int, dict[str, int]] = {}  # bucket number -> session -> count
        self._series: tuple[int, dict[str, tuple[int, ...]]] | None = None  # newest, table

    @staticmethod
    def _bucket(when: datetime) -> int:
        """Whole buckets since 1970, in exact integer arithmetic, as the SQL counts them."""
        return (when - _EPOCH) // _BUCKET

    def update(self, mesh: Mesh, now: datetime) -> Mapping[str, tuple[int, ...]]:
        """Read what is new and return each active session's hour, oldest bucket first;
        a session missing from the mapping had no messages in the hour."""
        with self._lock:
            oldest = self._bucket(now) - ACTIVITY_BUCKETS + 1
            if self._last_id is None:
                since = iso(_EPOCH + oldest * _BUCKET)
                first = _first_id_since(mesh, since)
                if first is None:
                    return {}
                where = "message_id >= ? AND created_at >= ?"
                params: tuple[int | str, ...] = (first, since)
            else:
                where, params = "message_id > ?", (self._last_id,)
            rows = mesh.store.read(
                "SELECT sender_session_id, recipient_session_id, "
                # the stored milliseconds, exactly (julianday keeps them to ~0.05 ms)
                "(CAST(julianday(created_at) * 86400000 + 0.5 AS INTEGER) - ?) / ?, "
                "count(*), max(message_id) "
                # NOT INDEXED keeps the rowid range seek: otherwise the planner walks all of
                # idx_messages_pair to save the GROUP BY's sort (a full scan, 1M entries).
                f"FROM agent_messages NOT INDEXED WHERE {where} GROUP BY 1, 2, 3",
                (_JULIAN_EPOCH_MS, _BUCKET_MS, *params),
            )
            for sender, recipient, bucket, count, last_id in rows:
                self._last_id = max(self._last_id or 0, int(last_id))
                if bucket is None or bucket < oldest:
                    continue
                slot = self._counts.setdefault(int(bucket), {})
                for sid in {sender, recipient}:
                    slot[sid] = slot.get(sid, 0) + count
                self._series = None
            for bucket in [b for b in self._counts if b < oldest]:
                del self._counts[bucket]
                self._series = None
            return self._table(oldest)

    def _table(self, oldest: int) -> dict[str, tuple[int, ...]]:
        """The per-session rows, rebuilt only when the counts or the window moved."""
        newest = oldest + ACTIVITY_BUCKETS - 1
        if self._series is None or self._series[0] != newest:
            table: dict[str, list[int]] = {}
            for bucket, slot in self._counts.items():
                if bucket > newest:  # stamped ahead of this clock: shown when it is due
                    continue
                for sid, count in slot.items():
                    table.setdefault(sid, [0] * ACTIVITY_BUCKETS)[bucket - oldest] = count
            self._series = (newest, {sid: tuple(row) for sid, row in table.items()})
        return self._series[1]


def roster(
    mesh: Mesh, activity: Activity | None = None, memo: AgentMemo | None = None
) -> list[RosterRow]:
    """Every session with its unread depth, last-hour activity and rate-limited peers;
    the ones that need attention first, then active, stale, stopped, by name.

    Pass the same `activity` and `memo` to every refresh so only new messages are read
    and only changed session rows decoded."""
    cfg = mesh.config
    now = mesh.clock.now()
    agents = mesh.agents("all", memo)  # with unread counts
    names = {a.session_id: a.agent_name for a in agents}

    counts = (activity if activity is not None else Activity()).update(mesh, now)
    limited = _rate_limited(mesh, now, names)

    rows_out = [
        RosterRow(
            agent=a,
            activity=counts.get(a.session_id, _IDLE),
            rate_limited=tuple(sorted(limited.get(a.session_id, ()))),
            flooded=is_flooded(a.unread, cfg),
        )
        for a in agents
    ]
    rows_out.sort(key=lambda r: roster_key(r.agent, r.needs_attention))
    return rows_out


def threads(
    mesh: Mesh, me: str | None = None, agent: str | None = None, limit: int = THREAD_LIMIT
) -> list[ThreadSummary]:
    """The `limit` threads with the newest activity, of session `agent` or of the mesh."""
    if agent is None:
        recent = mesh.store.read(
            "SELECT " + THREAD_ID_SQL + " AS tid, max(message_id) AS last "
            "FROM (SELECT message_id, original_message_id FROM agent_messages "
            "ORDER BY message_id DESC LIMIT ?) GROUP BY tid",
            (THREAD_SCAN,),
        )
    else:
        recent = mesh.store.read(
            "SELECT " + THREAD_ID_SQL + " AS tid, max(message_id) AS last "
            "FROM (SELECT * FROM (SELECT message_id, original_message_id FROM agent_messages "
            "      WHERE recipient_session_id = :a ORDER BY created_at DESC LIMIT :n) "
            "      UNION ALL "
            "      SELECT * FROM (SELECT message_id, original_message_id FROM agent_messages "
            "      WHERE sender_session_id = :a ORDER BY message_id DESC LIMIT :n)) "
            "GROUP BY tid",
            {"a": agent, "n": THREAD_SCAN},
        )
    newest = sorted(recent, key=lambda r: r["last"], reverse=True)[:limit]
    return summarise(mesh, [int(r["tid"]) for r in newest], me)


def summarise(mesh: Mesh, thread_ids: Sequence[int], me: str | None) -> list[ThreadSummary]:
    """One summary per thread id (in the given order), read through the primary key and
    the thread index only."""
    if not thread_ids:
        return []
    marks = ",".join("?" * len(thread_ids))
    rows = mesh.store.read(
        f"SELECT {THREAD_ID_SQL} AS tid, count(*) AS n, "
        f"max(created_at) AS last_at, max(message_id) AS last_id, min(message_id) AS first_id, "
        f"min({PRIORITY_RANK_SQL}) AS top, sum(read = 0 AND recipient_session_id = ?) AS unread "
        f"FROM agent_messages WHERE message_id IN ({marks}) OR original_message_id IN ({marks}) "
        f"GROUP BY tid",
        (me or "", *thread_ids, *thread_ids),
    )
    by_id = {int(r["tid"]): r for r in rows}
    firsts = [int(r["first_id"]) for r in rows] + [int(r["last_id"]) for r in rows]
    first_marks = ",".join("?" * len(firsts))
    heads = {
        int(r["message_id"]): r
        for r in mesh.store.read(
            f"SELECT message_id, content FROM agent_messages WHERE message_id IN ({first_marks})",
            firsts,
        )
    }
    speakers = _speakers(mesh, thread_ids)
    result = []
    for tid in thread_ids:
        row = by_id.get(tid)
        if row is None:
            continue
        first_line = _first_line(heads.get(int(row["first_id"])))
        last_line = _first_line(heads.get(int(row["last_id"])))
        result.append(
            ThreadSummary(
                thread_id=tid,
                participants=speakers.get(tid, ()),
                first_line=first_line,
                last_activity=text(row["last_at"]) or "",
                count=int(row["n"]),
                unread_for_me=int(row["unread"] or 0),
                top_priority=PRIORITY_ORDER[int(row["top"])],
                last_message_id=int(row["last_id"]),
                last_line=last_line,
            )
        )
    return result


def _first_line(row: sqlite3.Row | None) -> str:
    content = (text(row["content"]) or "") if row is not None else ""
    return next((line.strip() for line in content.splitlines() if line.strip()), "")


def _speakers(mesh: Mesh, thread_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """Participants of each thread by workspace name, in order of first appearance."""
    ids = list(thread_ids)
    marks = ",".join("?" * len(ids))
    rows = mesh.store.read(
        "SELECT " + THREAD_ID_SQL + " AS tid, sender_session_id, "
        f"recipient_session_id FROM agent_messages "
        f"WHERE message_id IN ({marks}) OR original_message_id IN ({marks}) "
        f"GROUP BY 1, 2, 3 ORDER BY min(message_id)",
        (*ids, *ids),
    )
    order: dict[int, list[str]] = {}
    for tid, sender, recipient in rows:
        seen = order.setdefault(int(tid), [])
        for sid in (sender, recipient):
            if sid not in seen:
                seen.append(sid)
    names = mesh.names({sid for sids in order.values() for sid in sids})
    # One name once: a workspace's sessions (a person's restarts, an agent's new session)
    # are one participant.
    return {
        tid: tuple(dict.fromkeys(names.get(sid) or sid[:8] for sid in sids))
        for tid, sids in order.items()
    }


def unread_by_priority(mesh: Mesh, me: str) -> dict[str, int]:
    """The viewer's unread, unexpired messages counted by priority (through the unread
    index): what a summary of the mail waiting at start says."""
    rows = mesh.store.read(
        "SELECT priority, count(*) FROM agent_messages "
        f"WHERE recipient_session_id = ? AND read = 0 AND (expires_at IS NULL OR {EXPIRES_SQL} > ?) "
        "GROUP BY priority",
        (me, mesh.store.now()),
    )
    counts: dict[str, int] = {}
    for priority, count in rows:
        key = text(priority) or "normal"
        counts[key] = counts.get(key, 0) + int(count)
    return counts


def thread_messages(mesh: Mesh, thread_id: int, limit: int = MESSAGE_LIMIT) -> list[Message]:
    """The newest `limit` messages of thread `thread_id`, oldest first. Marks nothing read."""
    return mailbox.thread_tail(mesh.store, thread_id, limit)
