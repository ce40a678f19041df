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
    send shows why and keeps the draft too: only a send that landed clears it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+j", "send", "Send", priority=True),
        Binding("alt+enter", "send", "Send", priority=True, show=False),
        Binding("escape", "leave", "Leave (keeps draft)"),
    ]

    @dataclass
    class Send(Message):
        """The person asked to send the draft."""

        text: str
        priority: str

    @dataclass
    class Leave(Message):
        """The person left the composer (the draft stays)."""

    def __init__(self, max_bytes: int, *, blink: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_bytes = max_bytes
        self.blink = blink

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

    def open(self, target: Text) -> None:
        """Show the composer addressed to `target` and put the cursor in the draft."""
        self.query_one("#composer-target", Static).update(target)
        self.add_class("-open")
        self.query_one("#draft", TextArea).focus()

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
        """The send landed: start a fresh draft."""
        self.query_one("#draft", TextArea).clear()
        self.clear_error()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        self._count()

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
        self.post_message(self.Send(self.draft, self.priority))

    def action_leave(self) -> None:
        self.post_message(self.Leave())
