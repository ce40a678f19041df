"""Where the composer's next send goes: a typed value, never a bare tuple."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SendTo:
    """A new message to a session (the mesh routes it to its workspace)."""

    session_id: str


@dataclass(frozen=True)
class ReplyTo:
    """A reply to a message: the mesh decides who receives it."""

    message_id: int


Target = SendTo | ReplyTo
