"""Rows of the two tables turned into the core's values, in one place.

Another client may write other ISO-8601 forms, NULLs and odd values; every reader of a
row goes through these functions so each column is decoded the same way everywhere.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .clock import canonical, parse_ts_or_none
from .config import MeshConfig
from .models import Agent, Message, parse_metadata
from .rules import PRIORITY_ORDER, priority_rank, reported_status, status_since
from .text import plain, safe_line

Row = sqlite3.Row | Mapping[str, Any]


MAX_ROW_ID = 2**63 - 1


def text(value: object) -> str | None:
    """Any SQLite value as text: another client may bind a BLOB (a Node Buffer), a
    number or NULL where we write TEXT. A BLOB's bytes are decoded with the undecodable
    ones shown escaped (`\\xff`), so nothing is lost from view and nothing raises."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def shown(value: object) -> str | None:
    """A column that names or locates, never free text (a session id, a folder), as
    escaped one-line text: wherever it is shown (JSON a model reads included) it cannot
    hold a line, a frame marker or an escape. Ours are unchanged by this."""
    if isinstance(value, str) and plain(value):
        return value
    found = text(value)
    return None if found is None else safe_line(found)


def status_text(value: object) -> str:
    """A status column as it is, escaped: `idle`, `NULL`, `BLOB active`."""
    if value is None:
        return "NULL"
    shown_as = safe_line(text(value), 40)
    return f"BLOB {shown_as}" if isinstance(value, bytes) else shown_as


def stamp(value: object) -> str | None:
    """A timestamp column in our form when it parses, else as escaped one-line text, so
    a timestamp shown anywhere (JSON a model reads included) carries no line of its own."""
    found = canonical(text(value))
    if found is None or parse_ts_or_none(found) is not None:
        return found
    return safe_line(found, 80)


def metadata(value: object) -> dict[str, Any]:
    """A session's metadata; its top-level strings (kind, client, host…) as escaped
    one-line text: they are shown to models and people, and ours never need more."""
    found = parse_metadata(value)
    return {k: safe_line(v) if isinstance(v, str) else v for k, v in found.items()}


def row_id(value: object) -> int | None:
    """A message id column: a positive integer, else None ('' for "no parent", text,
    a real, a BLOB)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ROW_ID:
        return value
    return None


def priority(value: object) -> str:
    """One of the four priorities; any other value another client wrote counts (and is
    shown) as normal, so a priority can never carry text into a header."""
    found = text(value)
    if found is not None and found.strip().lower() in PRIORITY_ORDER:
        return found.strip().lower()
    return "normal"


def to_agent(row: Row, now: datetime, config: MeshConfig, unread: int = 0) -> Agent:
    """A session row as an Agent; total: any value of any type in any column decodes."""
    session_id = shown(row["session_id"]) or ""
    last_heartbeat = stamp(row["last_heartbeat"])
    return Agent(
        session_id=session_id,
        agent_name=text(row["agent_name"]) or session_id,
        agent_description=text(row["agent_description"]),
        cwd=shown(row["cwd"]),
        repo=shown(row["repo"]),
        status=reported_status(row["status"], last_heartbeat, now, config),
        stored_status=status_text(row["status"]),
        registered_at=stamp(row["registered_at"]) or "",
        last_heartbeat=last_heartbeat or "",
        metadata=metadata(row["metadata"]),
        unread=unread,
    )


class AgentMemo:
    """Session rows decoded before, by their raw values, so that a roster read every
    second decodes only the rows that changed; the status (it moves with the clock) is
    worked out again each time. The result is exactly `to_agent`'s.

    The key is the raw tuple. A REAL can equal a value that decodes apart (1.0 == 1),
    so a row holding one is decoded afresh (the columns' TEXT affinity stores numbers
    as text, so this is only for a table another client made otherwise). Only the rows
    of the last read are kept. Agents handed out are shared between reads: their
    metadata must not be changed. Locked: two reads may overlap."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[tuple[Any, ...], int], tuple[Agent, datetime | None]] = {}

    def decode(
        self,
        rows: Sequence[sqlite3.Row],
        now: datetime,
        config: MeshConfig,
        unread: Mapping[str, int],
    ) -> list[Agent]:
        with self._lock:
            seen = self._seen
            kept: dict[tuple[tuple[Any, ...], int], tuple[Agent, datetime | None]] = {}
            found = []
            for row in rows:
                raw = tuple(row)
                count = unread.get(row["session_id"], 0)
                if float in map(type, raw):
                    found.append(to_agent(row, now, config, count))
                    continue
                key = (raw, count)
                known = seen.get(key)
                if known is None:
                    agent = to_agent(row, now, config, count)
                    known = (agent, parse_ts_or_none(agent.last_heartbeat or None))
                else:
                    status = status_since(row["status"], known[1], now, config)
                    if status is not known[0].status:
                        known = (dataclasses.replace(known[0], status=status), known[1])
                kept[key] = known
                found.append(known[0])
            self._seen = kept
            return found


def to_message(
    row: Row, names: Mapping[str, str | None], warnings: tuple[str, ...] = ()
) -> Message:
    """A message row as a Message; total: any value of any type in any column decodes
    (message_id is the INTEGER PRIMARY KEY, the one column SQLite keeps an integer)."""
    sender = text(row["sender_session_id"]) or ""
    recipient = text(row["recipient_session_id"]) or ""
    return Message(
        message_id=row["message_id"],
        sender_session_id=shown(sender) or "",
        sender_name=text(names.get(sender)),
        recipient_session_id=shown(recipient) or "",
        recipient_name=text(names.get(recipient)),
        content=text(row["content"]) or "",
        original_message_id=row_id(row["original_message_id"]),
        priority=priority(row["priority"]),
        created_at=stamp(row["created_at"]) or "",
        read=row["read"] not in (0, None),
        read_at=stamp(row["read_at"]),
        expires_at=stamp(row["expires_at"]),
        warnings=warnings,
    )


def epoch(text: str | None) -> float:
    """Seconds since 1970 of a timestamp in any ISO-8601 form; 0 if it does not parse."""
    seen = parse_ts_or_none(text)
    return seen.timestamp() if seen else 0.0


def latest(rows: Sequence[sqlite3.Row]) -> sqlite3.Row:
    """The session row with the latest heartbeat (parsed: other forms sort wrongly)."""
    return max(rows, key=lambda row: epoch(text(row["last_heartbeat"])))


def time_order(row: Row) -> tuple[float, int]:
    return (epoch(text(row["created_at"])), row["message_id"])


def delivery_order(row: Row) -> tuple[int, float, int]:
    """Urgent first, then high, normal, low; oldest first within a priority."""
    return (priority_rank(row["priority"]), *time_order(row))
