"""Rows of the two tables turned into the core's values, in one place.

Another client may write other ISO-8601 forms, NULLs and odd values; every reader of a
row goes through these functions so each column is decoded the same way everywhere.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .clock import canonical, parse_ts_or_none
from .config import MeshConfig
from .models import Agent, Message, parse_metadata
from .rules import priority_rank, reported_status

Row = sqlite3.Row | Mapping[str, Any]


def to_agent(row: Row, now: datetime, config: MeshConfig, unread: int = 0) -> Agent:
    return Agent(
        session_id=row["session_id"],
        agent_name=row["agent_name"] or row["session_id"],
        agent_description=row["agent_description"],
        cwd=row["cwd"],
        repo=row["repo"],
        status=reported_status(row["status"], row["last_heartbeat"], now, config),
        registered_at=canonical(row["registered_at"]),
        last_heartbeat=canonical(row["last_heartbeat"]),
        metadata=parse_metadata(row["metadata"]),
        unread=unread,
    )


def to_message(
    row: Row, names: Mapping[str, str | None], warnings: tuple[str, ...] = ()
) -> Message:
    return Message(
        message_id=row["message_id"],
        sender_session_id=row["sender_session_id"],
        sender_name=names.get(row["sender_session_id"]),
        recipient_session_id=row["recipient_session_id"],
        recipient_name=names.get(row["recipient_session_id"]),
        content=row["content"],
        original_message_id=row["original_message_id"],
        priority=row["priority"] or "normal",
        created_at=canonical(row["created_at"]),
        read=bool(row["read"]),
        read_at=canonical(row["read_at"]),
        expires_at=canonical(row["expires_at"]),
        warnings=warnings,
    )


def epoch(text: str | None) -> float:
    """Seconds since 1970 of a timestamp in any ISO-8601 form; 0 if it does not parse."""
    seen = parse_ts_or_none(text)
    return seen.timestamp() if seen else 0.0


def latest(rows: Sequence[sqlite3.Row]) -> sqlite3.Row:
    """The session row with the latest heartbeat (parsed: other forms sort wrongly)."""
    return max(rows, key=lambda row: epoch(row["last_heartbeat"]))


def time_order(row: Row) -> tuple[float, int]:
    return (epoch(row["created_at"]), row["message_id"])


def delivery_order(row: Row) -> tuple[int, float, int]:
    """Urgent first, then high, normal, low; oldest first within a priority."""
    return (priority_rank(row["priority"]), *time_order(row))
