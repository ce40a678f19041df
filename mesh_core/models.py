"""Frozen value objects handed out by the core; their `to_json()` is the JSON shape of
docs/contract.md §5.1.4."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    """Reported status. Only `active` and `stopped` are stored; `stale` is derived;
    `other` is a session whose stored status is another client's value ('idle', NULL),
    shown by `Agent.stored_status`."""

    ACTIVE = "active"
    STALE = "stale"
    STOPPED = "stopped"
    OTHER = "other"


def parse_metadata(raw: object) -> dict[str, Any]:
    """A session's metadata column as a dict: another client's odd value is `{}`.

    A roster read decodes every session's metadata, which rarely changes: the decoded
    value of a text seen before is reused (each caller gets its own copy)."""
    known = _decoded(raw)
    return (
        copy.deepcopy(known)
        if any(isinstance(v, dict | list) for v in known.values())
        else dict(known)
    )


def metadata_view(raw: object) -> Mapping[str, Any]:
    """`parse_metadata` without the copy, for a caller that only reads it (the liveness
    check of every send): the decoded value, shared with every other such caller."""
    return _decoded(raw)


def _decoded(raw: object) -> dict[str, Any]:
    if not raw or not isinstance(raw, str | bytes):
        return _NO_METADATA
    known = _METADATA_SEEN.get(raw)
    if known is None:
        try:
            value = json.loads(raw)
        except (ValueError, TypeError, RecursionError):
            value = None
        known = value if isinstance(value, dict) else _NO_METADATA
        if len(_METADATA_SEEN) >= _METADATA_KEEP:
            _METADATA_SEEN.clear()
        _METADATA_SEEN[raw] = known
    return known


_METADATA_KEEP = 4096  # distinct metadata texts remembered (a roster's worth, and more)
_METADATA_SEEN: dict[str | bytes, dict[str, Any]] = {}
_NO_METADATA: dict[str, Any] = {}  # never handed out but as a copy or a Mapping


@dataclass(frozen=True)
class Agent:
    session_id: str
    agent_name: str
    agent_description: str | None
    cwd: str | None
    repo: str | None
    status: Status
    registered_at: str
    last_heartbeat: str
    metadata: dict[str, Any] = field(default_factory=dict)
    unread: int = 0
    # The stored status as escaped one-line text ('NULL' for none): what `other` is.
    stored_status: str = "active"

    @property
    def kind(self) -> str:
        """agent, human or cli; anything else another client wrote reads as agent, so a
        kind can never carry text into a roster line."""
        kind = self.metadata.get("kind", "agent")
        return kind if kind in ("agent", "human", "cli") else "agent"

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "agent_name": self.agent_name,
            "agent_description": self.agent_description,
            "cwd": self.cwd,
            "repo": self.repo,
            "status": self.status.value,
            "stored_status": self.stored_status,
            "registered_at": self.registered_at,
            "last_heartbeat": self.last_heartbeat,
            "metadata": self.metadata,
            "unread": self.unread,
        }


@dataclass(frozen=True, init=False)
class Message:
    message_id: int
    sender_session_id: str
    sender_name: str | None
    recipient_session_id: str
    recipient_name: str | None
    content: str
    original_message_id: int | None
    priority: str
    created_at: str
    read: bool
    read_at: str | None
    expires_at: str | None
    # Not stored: what `send` wants its caller to know (queue depth, stopped recipient).
    warnings: tuple[str, ...] = ()

    def __init__(
        self,
        message_id: int,
        sender_session_id: str,
        sender_name: str | None,
        recipient_session_id: str,
        recipient_name: str | None,
        content: str,
        original_message_id: int | None,
        priority: str,
        created_at: str,
        read: bool,
        read_at: str | None,
        expires_at: str | None,
        warnings: tuple[str, ...] = (),
    ) -> None:
        # One dict update: the frozen dataclass's own __init__ sets each field through
        # object.__setattr__, which costs twice as much (every send and read makes these).
        self.__dict__.update(
            message_id=message_id,
            sender_session_id=sender_session_id,
            sender_name=sender_name,
            recipient_session_id=recipient_session_id,
            recipient_name=recipient_name,
            content=content,
            original_message_id=original_message_id,
            priority=priority,
            created_at=created_at,
            read=read,
            read_at=read_at,
            expires_at=expires_at,
            warnings=warnings,
        )

    @property
    def thread_id(self) -> int:
        return self.original_message_id or self.message_id

    def to_json(self, with_warnings: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "message_id": self.message_id,
            "sender_session_id": self.sender_session_id,
            "sender_name": self.sender_name,
            "recipient_session_id": self.recipient_session_id,
            "recipient_name": self.recipient_name,
            "content": self.content,
            "original_message_id": self.original_message_id,
            "priority": self.priority,
            "created_at": self.created_at,
            "read": self.read,
            "read_at": self.read_at,
            "expires_at": self.expires_at,
        }
        if with_warnings:
            data["warnings"] = list(self.warnings)
        return data


@dataclass(frozen=True)
class CleanupReport:
    stopped_sessions: int = 0
    purged_read: int = 0
    expired_unread: int = 0
    ran: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "stopped_sessions": self.stopped_sessions,
            "purged_read": self.purged_read,
            "expired_unread": self.expired_unread,
        }
