"""A DataTable that a refresh updates row by row, keyed, keeping cursor and scroll."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

Row = tuple[str, Sequence[Text]]


class KeyedTable(DataTable[Text]):
    """Rows are identified by a key, so a refresh can change them in place.

    When the keys come back in the same order only the cells that changed are updated,
    and only in the rows on screen: the rest are brought up to date when they scroll
    into view (with 1,000 agents whose heartbeat ages tick every second, updating every
    row cost the event loop more than the whole read). When rows come or go or move,
    the table is refilled and the cursor put back on the row it was on, at the same
    scroll offset — a refresh never moves the person.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", key_display="j/↓"),
        Binding("k", "cursor_up", "Up", key_display="k/↑"),
        Binding("g", "scroll_top", "First", show=False),
        Binding("G", "scroll_bottom", "Last", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._keys: list[str] = []
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._restore: str | None = None
        self._latest: dict[str, tuple[Text, ...]] = {}  # newest cells, shown or not
        self._row_height = 1

    @property
    def keys(self) -> list[str]:
        """The row keys, in the order shown."""
        return list(self._keys)

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor."""
        if not self._keys or not 0 <= self.cursor_row < len(self._keys):
            return None
        return self._keys[self.cursor_row]

    def reset(self) -> None:
        """Drop rows and columns (a pane that changed width rebuilds its columns); the
        next `sync` puts the cursor back on the same row."""
        self._restore = self.selected_key
        # forget the rows before clearing: clear() resets scroll_y, and watch_scroll_y
        # must not update rows that are gone
        self._keys = []
        self._cells = {}
        self._latest = {}
        self.clear(columns=True)

    def sync(self, rows: Sequence[Row], height: int = 1) -> None:
        """Show exactly `rows`, in order, changing as little as possible."""
        keys = [key for key, _ in rows]
        self._row_height = height
        self._latest = {key: tuple(cells) for key, cells in rows}
        if keys == self._keys:
            self._show_latest()
            return
        selected = self.selected_key or self._restore
        self._restore = None
        scroll_y = self.scroll_y
        # forget the old rows first: clear() resets scroll_y, whose watcher would
        # otherwise update cells of rows that no longer exist
        self._keys = []
        self._cells = {}
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key, height=height)
        self._keys = keys
        self._cells = dict(self._latest)
        if selected in self._cells:
            self.move_cursor(row=keys.index(selected), scroll=False)
        self.scroll_to(y=scroll_y, animate=False, immediate=True)

    def _show_latest(self) -> None:
        """Update the changed cells of the rows on screen (and a screenful either side)."""
        page = max(1, self.size.height // self._row_height + 1)
        first = max(0, int(self.scroll_y) // self._row_height - page)
        for key in self._keys[first : first + 3 * page]:
            new, old = self._latest.get(key), self._cells.get(key)
            if new is None or old is None:
                continue
            if new == old:
                continue
            for column, before, after in zip(self.columns, old, new, strict=True):
                if before != after:
                    self.update_cell(key, column, after)
            self._cells[key] = new

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        height = self._row_height
        if height > 1 and new_value % height and new_value < self.max_scroll_y:
            # scroll by whole rows: never half a two-line row at the top
            rows = new_value / height
            snapped = (int(rows) + (1 if new_value > old_value else 0)) * height
            self.set_scroll(None, min(snapped, self.max_scroll_y))
            return
        if self._keys:
            self._show_latest()

    def select_key(self, key: str) -> bool:
        """Move the cursor to the row `key`, if it is shown."""
        if key not in self._cells:
            return False
        self.move_cursor(row=self._keys.index(key))
        return True
