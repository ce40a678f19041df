"""The help screen: every key of every pane, read from the bindings themselves."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_NAMES = {
    "question_mark": "?",
    "slash": "/",
    "escape": "esc",
    "shift+tab": "shift+tab",
    "ctrl+j": "ctrl+j",
    "alt+enter": "alt+enter",
}


def key_label(key: str) -> str:
    return ", ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in key.split(","))


class HelpScreen(ModalScreen[None]):
    """A table per pane of (key, what it does), from the bindings, so it cannot drift."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close help"),
    ]

    def __init__(
        self, sections: Iterable[tuple[str, Iterable[tuple[str, str]]]], left: int = 1
    ) -> None:
        """`left`: how many of the sections go in the left column."""
        super().__init__()
        self.sections = [(title, list(keys)) for title, keys in sections]
        self.left = left

    def compose(self) -> ComposeResult:
        """The first `left` sections on the left, the others on the right, so every key
        fits on one screen."""
        with VerticalScroll(id="help-body") as body:
            body.border_title = "Keys"
            body.border_subtitle = "esc closes"
            with Horizontal():
                yield Static(self._table(self.sections[: self.left]), classes="help-column")
                yield Static(self._table(self.sections[self.left :]), classes="help-column")

    @staticmethod
    def _table(sections: list[tuple[str, list[tuple[str, str]]]]) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for index, (title, keys) in enumerate(sections):
            if index:
                table.add_row("", "")
            table.add_row(Text(title, style="bold underline"), "")
            for key, description in keys:
                table.add_row(Text(key_label(key)), Text(description))
        return table
