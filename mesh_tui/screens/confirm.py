"""A yes/no question in a small modal (quit with unsent drafts, forget a session)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class Confirm(ModalScreen[bool]):
    """y / enter answers yes; n / esc answers no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes: str = "quit", no: str = "stay") -> None:
        super().__init__()
        self.question = question
        self.yes = yes
        self.no = no

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-body"):
            yield Static(Text(self.question), markup=False)
            yield Static(Text(f"y {self.yes} · n {self.no}", style="bold"), markup=False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
