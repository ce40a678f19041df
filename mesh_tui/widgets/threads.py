"""The thread list: the newest threads of the mesh, or of one agent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType

from mesh_core.text import safe_line
from mesh_core.views import ThreadSummary

from ..format import age, priority_mark
from .keyed_table import KeyedTable, Row

MIN_MAIN_WIDTH = 16
# columns beside the main one: priority 1, new 3, cell padding 2 each, scrollbar 1
SIDE_WIDTH = 1 + 3 + 3 * 2 + 4


class ThreadList(KeyedTable):
    """Two lines a thread: who and how many and how long ago; then the newest message's
    first line. Priority mark on the left, the person's unread count on the right."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Read", show=True),
    ]

    main_width = MIN_MAIN_WIDTH * 2

    def on_mount(self) -> None:
        self._columns()
        self._shown: tuple[Sequence[ThreadSummary], datetime, dict[int, int]] | None = None

    def on_resize(self, event: events.Resize) -> None:
        self.fit(event.size.width)

    def _columns(self) -> None:
        self.add_column(Text(" "), key="priority")
        self.add_column(Text("thread"), key="main", width=self.main_width)
        self.add_column(Text("new", justify="right"), key="unread")

    def fit(self, pane_width: int) -> None:
        """Give the main column all the width the pane has (rebuilt when it changes)."""
        width = max(MIN_MAIN_WIDTH, pane_width - SIDE_WIDTH)
        if width != self.main_width:
            self.main_width = width
            self.reset()
            self._columns()
            if self._shown is not None:
                self.show(*self._shown)

    def show(
        self,
        threads: Sequence[ThreadSummary],
        now: datetime,
        unseen: dict[int, int],
        built: tuple[int, list[Row]] | None = None,
    ) -> None:
        """`unseen`: per thread, messages the person was delivered but has not opened.
        `built` = (main width, cells) made off the event loop by `thread_rows`."""
        self._shown = (threads, now, unseen)
        if built is not None and built[0] == self.main_width:
            self.sync(built[1], height=2)
        else:
            self.sync(thread_rows(threads, now, unseen, self.main_width), height=2)


_RowKey = tuple[ThreadSummary, str, int, int]
_last_built: dict[_RowKey, Row] = {}


def thread_rows(
    threads: Sequence[ThreadSummary], now: datetime, unseen: dict[int, int], width: int
) -> list[Row]:
    """The cells of every row: plain Rich objects, so a worker thread can build them.

    A row whose inputs (its age as shown included) are those of the last build reuses
    its cells; only the last build's rows are kept."""
    global _last_built
    before: dict[_RowKey, Row] = _last_built
    built: dict[_RowKey, Row] = {}
    result = []
    for thread in threads:
        waiting = unseen.get(thread.thread_id, 0)
        key = (thread, age(thread.last_activity, now), waiting, width)
        cells = before.get(key)
        if cells is None:
            cells = _row(thread, now, waiting, width)
        built[key] = cells
        result.append(cells)
    _last_built = built  # one assignment: a build on another thread sees either dict
    return result


def _row(thread: ThreadSummary, now: datetime, unseen: int, width: int) -> Row:
    # The person's messages stay unread until shown, so those delivered but not opened
    # are among unread_for_me already; `unseen` can only be ahead of an older snapshot.
    unread = max(thread.unread_for_me, unseen)
    facts = f" {thread.count} · {age(thread.last_activity, now)}"
    people = fit_names(thread.participants, max(4, width - len(facts) - 1))
    main = Text(people, style="bold" if unread else "")
    main.append(" " * max(1, width - cell_len(people) - len(facts)))
    main.append(facts, style="bright_black")
    main.append("\n")
    preview = thread.last_line or thread.first_line
    main.append(safe_line(preview, width), style="" if unread else "bright_black")
    return (
        str(thread.thread_id),
        (
            priority_mark(thread.top_priority),
            main,
            Text(str(unread) if unread else "", justify="right", style="bold cyan"),
        ),
    )


def fit_names(names: Sequence[str], width: int) -> str:
    """Up to three names joined by ↔ in `width` cells, each cut to an equal share, so a
    narrow pane still shows both sides of a conversation."""
    shown = list(names[:3])
    more = " …" if len(names) > 3 else ""
    if not shown:
        return ""
    joiner = " ↔ "
    for share in range(16, 2, -1):
        text = joiner.join(safe_line(n, share) for n in shown) + more
        if cell_len(text) <= width:
            return text
    return safe_line(joiner.join(shown) + more, width)
