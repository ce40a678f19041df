"""The footer, showing only the keys that fit whole.

Textual's footer lays its keys in a row and clips the row at the screen's edge, so at 80
columns the last key's label was cut mid-word (`r Rep`, `q Q`) or left as a bare key
(`/`). This one hides, from the end (the bindings come most important first), every key
that would not fit beside the command palette's key, and shows them again when the
screen widens. The help key stays whatever else goes: it is where the hidden keys are
listed. Widths come from each key's own content, not from a layout pass, so
hiding a key never needs a second layout to measure it.
"""

from __future__ import annotations

from textual import events
from textual.geometry import Size
from textual.widget import Widget
from textual.widgets import Footer


def _width(widget: Widget, room: Size) -> int:
    """The cells `widget` takes in the footer's row: its content, padding, border,
    margin."""
    styles = widget.styles
    return widget.get_content_width(room, room) + styles.gutter.width + styles.margin.width


# The actions whose key is kept when others are left out.
KEPT_ACTIONS = frozenset({"help", "app.help"})


class FittingFooter(Footer):
    """A footer whose keys are whole or not shown."""

    async def recompose(self) -> None:
        """The focused pane's keys (Footer recomposes when the bindings change)."""
        await super().recompose()
        self.fit()

    def on_resize(self, _: events.Resize) -> None:
        self.fit()

    def fit(self) -> None:
        """Show the kept keys, then the others that fit, in order; hide the first that
        does not and the rest."""
        if not self.is_attached:
            return
        room = self.size
        items = [child for child in self.children if not child.has_class("-command-palette")]
        palette = sum(
            _width(child, room) for child in self.children if child.has_class("-command-palette")
        )
        left = room.width - palette
        kept = [item for item in items if getattr(item, "action", None) in KEPT_ACTIONS]
        for item in kept:
            width = _width(item, room)
            item.display = width <= left
            if item.display:
                left -= width
        full = False
        for item in items:
            if item in kept:
                continue
            width = _width(item, room)
            full = full or width > left
            item.display = not full
            if not full:
                left -= width


__all__ = ["FittingFooter"]
