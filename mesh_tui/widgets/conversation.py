"""The open thread as a chat: who, when, how urgent, whether it was delivered, and where
the person's unread begin.

Each message is its own widget, so a mouse drag selects text inside one message (not
across both panes and their borders) and `c` copies the message under the cursor.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import ClassVar

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message as TextualMessage
from textual.widgets import Static

from mesh_core.models import Message
from mesh_core.present import PRESSING
from mesh_core.text import safe_line, safe_text

from ..format import PRIORITY_MARKS, age, local_stamp

EMPTY = "Pick a thread to read it here. n writes to the selected agent; r replies."


def delivery_state(
    message: Message, later: Sequence[Message], now: datetime, *, short: bool = False
) -> Text:
    """What became of a message: answered (its recipient wrote back in the thread),
    delivered (taken from the inbox, with when), or still waiting. `short` is the form
    for a narrow pane: the mark and the age only."""
    if any(
        m.sender_session_id == message.recipient_session_id
        and m.recipient_session_id == message.sender_session_id
        for m in later
    ):
        return Text("↩" if short else "↩ answered", style="green")
    if message.read:
        when = age(message.read_at, now) if message.read_at else ""
        if short:
            return Text(f"✓ {when}".rstrip(), style="bright_black")
        return Text(f"✓ delivered {when} ago" if when else "✓ delivered", style="bright_black")
    return Text("… waiting" if short else "… waiting to be read", style="yellow")


def body_text(message: Message) -> Text:
    body = Text(safe_text(message.content))
    if message.priority == "low":
        body.stylize("bright_black")
    return body


class MessageView(Vertical, can_focus=False):
    """One message: a header kept to one line, then the text (selectable on its own)."""

    DEFAULT_CSS = """
    MessageView { height: auto; padding: 0 0 1 0; }
    MessageView.-cursor { background: $boost; }
    MessageView .msg-header { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    MessageView .msg-body { height: auto; padding: 0 0 0 2; }
    """

    def __init__(self, message: Message, head: Header) -> None:
        super().__init__()
        self.message = message
        self._head = head

    def compose(self) -> ComposeResult:
        yield Static(self._head, classes="msg-header", markup=False)
        yield Static(body_text(self.message), classes="msg-body", markup=False)

    def update_header(self, message: Message, head: Header) -> None:
        self.message = message
        self._head = head
        if self.is_mounted:
            self.query_one(".msg-header", Static).update(head)


class UnreadRule(Static):
    """Above the first message the person has not seen yet."""

    DEFAULT_CSS = """
    UnreadRule { color: $accent; text-style: bold; height: 1; text-wrap: nowrap; text-overflow: clip; }
    """


class Conversation(VerticalScroll):
    """A scrolling chat. New messages keep the scroll position unless the person is
    already at the bottom, in which case the view follows them. j/k move a cursor from
    message to message; what the cursor is on is what `c` copies and `o` opens."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "next_message", "Next message"),
        Binding("k", "previous_message", "Previous message"),
        Binding("g,home", "first", "First", show=False),
        Binding("G,end", "last", "Last", show=False),
        Binding("pageup,b", "page_up", "Page up", show=False),
        Binding("pagedown,space", "page_down", "Page down", show=False),
        Binding("c", "copy", "Copy message"),
        Binding("o", "open_pager", "Open in $PAGER"),
    ]

    class Copy(TextualMessage):
        """Copy `text` to the clipboard (the app owns the terminal)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class OpenPager(TextualMessage):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.can_focus = True
        self.thread_id: int | None = None
        self.shown_ids: tuple[int, ...] = ()
        self.cursor: int | None = None  # index into the message views

    def compose(self) -> ComposeResult:
        yield Static(Text(EMPTY, style="bright_black"), id="chat-empty", markup=False)

    @property
    def views(self) -> list[MessageView]:
        return list(self.query(MessageView))

    def show(
        self,
        thread_id: int,
        messages: Sequence[Message],
        me: str | None,
        unread_from: int | None,
        now: datetime,
    ) -> None:
        """Render `messages`; `unread_from` is the id of the first message the person
        has not seen (a rule goes above it). A new thread opens at that rule, else at
        its newest message, with the message's header in view."""
        ids = tuple(m.message_id for m in messages)
        same_thread = thread_id == self.thread_id
        if same_thread and ids == self.shown_ids:
            self._refresh_headers(messages, me, now)
            return
        at_end = self.scroll_y >= self.max_scroll_y - 1
        self.thread_id = thread_id
        self.shown_ids = ids
        widgets: list[Static | MessageView] = []
        target: Static | MessageView | None = None
        for index, message in enumerate(messages):
            if message.message_id == unread_from:
                rule = UnreadRule(
                    Text("─── unread for you " + "─" * 40, no_wrap=True), markup=False
                )
                widgets.append(rule)
                target = rule
            widgets.append(MessageView(message, header(message, messages[index + 1 :], me, now)))
        self.remove_children()
        if not widgets:
            self.mount(Static(Text(EMPTY, style="bright_black"), markup=False))
            return
        self.mount_all(widgets)
        views = [w for w in widgets if isinstance(w, MessageView)]
        if not same_thread:
            self.cursor = (
                next(
                    (i for i, v in enumerate(views) if v.message.message_id == unread_from),
                    len(views) - 1,
                )
                if views
                else None
            )
            focus = target or views[-1]
            self.call_after_refresh(self._open_at, focus)
        else:
            self.cursor = min(self.cursor or 0, len(views) - 1)
            if at_end:
                self.call_after_refresh(self.scroll_end, animate=False)
        self._mark_cursor()

    def _refresh_headers(self, messages: Sequence[Message], me: str | None, now: datetime) -> None:
        """Same messages: only their delivery state and ages may have moved."""
        for index, (view, message) in enumerate(zip(self.views, messages, strict=False)):
            head = header(message, messages[index + 1 :], me, now)
            if head != view._head:
                view.update_header(message, head)

    def _open_at(self, widget: Static | MessageView) -> None:
        """Put `widget`'s first line at the top when it is taller than the view, else
        show it whole with as much before it as fits (a short newest message sits at
        the bottom, the thread above it)."""
        if widget.outer_size.height >= self.scrollable_content_region.height or isinstance(
            widget, UnreadRule
        ):
            self.scroll_to_widget(widget, animate=False, top=True)
        else:
            self.scroll_end(animate=False)

    def _mark_cursor(self) -> None:
        for index, view in enumerate(self.views):
            view.set_class(index == self.cursor, "-cursor")

    def _move(self, index: int) -> None:
        views = self.views
        if not views:
            return
        self.cursor = max(0, min(index, len(views) - 1))
        self._mark_cursor()
        view = views[self.cursor]
        if view.outer_size.height >= self.scrollable_content_region.height:
            self.scroll_to_widget(view, animate=False, top=True)
        else:
            self.scroll_to_widget(view, animate=False)

    def action_next_message(self) -> None:
        self._move((self.cursor if self.cursor is not None else -1) + 1)

    def action_previous_message(self) -> None:
        self._move((self.cursor if self.cursor is not None else 1) - 1)

    def action_first(self) -> None:
        self._move(0)
        self.scroll_home(animate=False)

    def action_last(self) -> None:
        self._move(len(self.views) - 1)
        self.scroll_end(animate=False)

    def action_page_up(self) -> None:
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        self.scroll_page_down(animate=False)

    def current(self) -> Message | None:
        views = self.views
        if self.cursor is None or not 0 <= self.cursor < len(views):
            return None
        return views[self.cursor].message

    def action_copy(self) -> None:
        message = self.current()
        if message is not None:
            self.post_message(self.Copy(message.content))

    def action_open_pager(self) -> None:
        message = self.current()
        if message is not None:
            self.post_message(self.OpenPager(message.content))


class Header:
    """A message's one header line, in the longest form that fits the pane: full; then
    without the message id; then with the time to the minute and the delivery state as
    its mark and age; then with both names cut short. So a narrow pane (80 columns)
    still shows whether the message was delivered, instead of cutting the state off."""

    def __init__(self, forms: Sequence[Text]) -> None:
        self.forms = forms

    @property
    def plain(self) -> str:
        return self.forms[0].plain

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Header) and list(self.forms) == list(other.forms)

    __hash__ = None  # type: ignore[assignment]  # compared by value, never a key

    def fitted(self, width: int) -> Text:
        """The first form that fits `width` cells, else the last one cut with …."""
        fits = next((f for f in self.forms if f.cell_len <= width), None)
        if fits is not None:
            return fits
        cut = self.forms[-1].copy()
        cut.truncate(width, overflow="ellipsis")
        return cut

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.fitted(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.forms[-1].cell_len, self.forms[0].cell_len)


def header(message: Message, later: Sequence[Message], me: str | None, now: datetime) -> Header:
    """One line: sender → recipient, local time, id, priority, delivery state."""

    def form(*, with_id: bool, short: bool, names: int = 24) -> Text:
        mine = message.sender_session_id == me
        line = Text()
        line.append(
            safe_line(message.sender_name or message.sender_session_id[:8], names),
            style="bold green" if mine else "bold",
        )
        line.append(" → ", style="bright_black")
        line.append(
            safe_line(message.recipient_name or message.recipient_session_id[:8], names),
            style="bright_black",
        )
        stamp = local_stamp(message.created_at, now)
        if short and len(stamp) == 8:  # HH:MM:SS today: the minute will do
            stamp = stamp[:5]
        line.append(f" {stamp}" if short else f"  {stamp}", style="bright_black")
        if with_id:
            line.append(f"  #{message.message_id}", style="bright_black")
        if message.priority in PRESSING:
            mark, style = PRIORITY_MARKS[message.priority]
            line.append(f" {mark}" if short else f"  {mark} {message.priority}", style=style)
        if message.recipient_session_id != me:
            line.append(" " if short else "  ")
            line.append_text(delivery_state(message, later, now, short=short))
        return line

    return Header(
        [
            form(with_id=True, short=False),
            form(with_id=False, short=False),
            form(with_id=False, short=True),
            form(with_id=False, short=True, names=8),
        ]
    )


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
