"""The composer: a multi-line draft, a priority, a byte counter, and the rule's answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Select, Static, TextArea

from mesh_core.text import safe_text

PRIORITIES = ("normal", "high", "urgent", "low")


class Composer(Vertical):
    """Write, then ctrl+j (or alt+enter) sends. esc leaves and keeps the draft; a refused
    send shows why and keeps the draft too: only a send that landed clears it.

    One send at a time: while a send is in flight the draft is read-only and the send
    key does nothing, so what lands is exactly the text on screen. `key` names the
    conversation the draft on screen belongs to (the app keeps one draft per key)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # ctrl+j is LF, which every terminal delivers (ctrl+enter rarely arrives, and
        # alt+enter comes as ESC CR, which tmux hands on as plain enter)
        # Not priority bindings: those run as the key reaches the app, before the keys
        # typed just ahead of it reach the draft (a fast typist's last words were lost)
        Binding("ctrl+j", "send", "Send", key_display="ctrl+j"),
        Binding("alt+enter", "send", "Send", show=False),
        Binding("escape", "leave", "Leave (keeps draft)"),
        Binding("ctrl+o", "edit", "Edit in $EDITOR", priority=True),
    ]

    @dataclass
    class Send(Message):
        """The person asked to send the draft."""

        text: str
        priority: str

    @dataclass
    class Leave(Message):
        """The person left the composer (the draft stays)."""

    @dataclass
    class Edit(Message):
        """The person asked to write the draft in their $EDITOR."""

    def __init__(self, max_bytes: int, *, blink: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_bytes = max_bytes
        self.blink = blink
        self.key: str | None = None
        self.sending = False

    def compose(self) -> ComposeResult:
        yield Static(id="composer-target", markup=False)
        area = TextArea(id="draft", soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        area.cursor_blink = self.blink
        yield area
        with Horizontal(id="composer-bar"):
            yield Select(
                [(p, p) for p in PRIORITIES],
                value="normal",
                allow_blank=False,
                id="priority",
                compact=True,
            )
            yield Static(id="byte-count", markup=False)
            yield Static(
                Text("ctrl+j send · esc leave", style="bright_black"),
                id="composer-hint",
                markup=False,
            )
        yield Static(id="composer-error", markup=False)

    def on_mount(self) -> None:
        self._count()

    @property
    def draft(self) -> str:
        return self.query_one("#draft", TextArea).text

    @property
    def priority(self) -> str:
        value = self.query_one("#priority", Select).value
        return value if isinstance(value, str) else "normal"

    def open(self, target: Text, key: str, draft: str) -> None:
        """Show the composer addressed to `target` and put the cursor in the draft.
        `key` is the conversation; `draft` its kept text (shown if the key changed)."""
        self.retarget(target, key, draft)
        self.add_class("-open")
        self.query_one("#draft", TextArea).focus()

    def retarget(self, target: Text, key: str, draft: str) -> None:
        """Say who will receive the draft; a different conversation brings its own."""
        self.query_one("#composer-target", Static).update(target)
        if key != self.key:
            self.key = key
            area = self.query_one("#draft", TextArea)
            area.load_text(draft)
            area.move_cursor(area.document.end)
            self.clear_error()

    def close(self) -> None:
        self.remove_class("-open")

    def show_error(self, error: str) -> None:
        """A refusal's text names workspaces read from the database: untrusted."""
        self.query_one("#composer-error", Static).update(Text(safe_text(error), style="bold red"))
        self.add_class("-error")

    def clear_error(self) -> None:
        self.query_one("#composer-error", Static).update("")
        self.remove_class("-error")

    def sent(self) -> None:
        """The send landed: a fresh draft at normal priority."""
        self._in_flight(False)
        self.query_one("#draft", TextArea).clear()
        self.query_one("#priority", Select).value = "normal"
        self.clear_error()

    def refused(self, error: str) -> None:
        """The send did not land: the draft is editable again, and says why."""
        self._in_flight(False)
        self.show_error(error)

    def _in_flight(self, sending: bool) -> None:
        self.sending = sending
        self.query_one("#draft", TextArea).read_only = sending
        self.set_class(sending, "-sending")

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        """The draft changed: an old refusal no longer applies to it."""
        event.stop()
        self._count()
        self.clear_error()

    def _count(self) -> None:
        size = len(self.draft.encode("utf-8", "surrogatepass"))
        over = size > self.max_bytes
        style = (
            "bold red" if over else ("yellow" if size > self.max_bytes * 0.9 else "bright_black")
        )
        self.query_one("#byte-count", Static).update(
            Text(f"{size:,} / {self.max_bytes:,} bytes", style=style)
        )

    def action_send(self) -> None:
        if self.sending:
            return  # one send at a time
        self._in_flight(True)
        self.post_message(self.Send(self.draft, self.priority))

    def action_edit(self) -> None:
        if not self.sending:
            self.post_message(self.Edit())

    def set_draft(self, text: str) -> None:
        area = self.query_one("#draft", TextArea)
        area.load_text(text)
        area.move_cursor(area.document.end)

    def action_leave(self) -> None:
        self.post_message(self.Leave())
