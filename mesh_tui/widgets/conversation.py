"""The open thread as a chat: who, when, how urgent, and where the person's unread begin."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.rule import Rule
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from mesh_core.clock import parse_ts_or_none
from mesh_core.models import Message
from mesh_core.text import safe_line, safe_text

from ..format import PRIORITY_MARKS

EMPTY = "Pick a thread to read it here. n writes to the selected agent; r replies."


class Conversation(VerticalScroll):
    """A scrolling chat. New messages keep the scroll position unless the person is
    already at the bottom, in which case the view follows them."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll_down", "Scroll down", show=False),
        Binding("k", "scroll_up", "Scroll up", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.thread_id: int | None = None
        self._shown: tuple[int, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static(Text(EMPTY, style="bright_black"), id="chat", markup=False)

    def show(
        self,
        thread_id: int,
        messages: Sequence[Message],
        me: str | None,
        unread_from: int | None,
        now: datetime,
    ) -> None:
        """Render `messages`; `unread_from` is the id of the first message the person
        has not seen (a marker goes above it)."""
        ids = tuple(m.message_id for m in messages)
        same_thread = thread_id == self.thread_id
        if same_thread and ids == self._shown:
            return
        self.thread_id = thread_id
        self._shown = ids
        parts: list[RenderableType] = []
        for message in messages:
            if message.message_id == unread_from:
                parts.append(Rule(Text("unread", style="bold cyan"), style="cyan"))
            parts.append(self._header(message, me, now))
            body = Text(safe_text(message.content))
            if message.priority == "low":
                body.stylize("bright_black")
            parts.append(Padding(body, (0, 0, 1, 2)))
        self.query_one("#chat", Static).update(Group(*parts))
        if not same_thread:
            # a new thread opens at its end; anchored, the view follows new messages
            # until the person scrolls up, and stays where they put it
            self.call_after_refresh(self.anchor)

    @staticmethod
    def _header(message: Message, me: str | None, now: datetime) -> Text:
        mine = message.sender_session_id == me
        header = Text()
        header.append(
            safe_line(message.sender_name or message.sender_session_id[:8], 30),
            style="bold green" if mine else "bold",
        )
        header.append(" → ", style="bright_black")
        header.append(
            safe_line(message.recipient_name or message.recipient_session_id[:8], 30),
            style="bright_black",
        )
        when = parse_ts_or_none(message.created_at)
        if when is not None:
            local = when.astimezone()
            same_day = local.date() == now.astimezone().date()
            stamp = local.strftime("%H:%M:%S" if same_day else "%b %d %H:%M")
            header.append(f"  {stamp}", style="bright_black")
        header.append(f"  #{message.message_id}", style="bright_black")
        if message.priority in ("urgent", "high"):
            mark, style = PRIORITY_MARKS[message.priority]
            header.append(f"  {mark} {message.priority}", style=style)
        if not message.read and message.recipient_session_id != me:
            header.append("  (unread)", style="bright_black italic")
        return header


def first_unread(
    messages: Sequence[Message], me: str | None, unseen: Collection[int]
) -> int | None:
    """The first message to the person not yet seen: unread in the database, or delivered
    to this app but not yet opened."""
    for message in messages:
        if message.recipient_session_id == me and (
            not message.read or message.message_id in unseen
        ):
            return message.message_id
    return None
