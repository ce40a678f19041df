"""The roster: every agent, who needs attention first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType

from mesh_core.models import Status
from mesh_core.present import STATUS_GLYPHS
from mesh_core.text import safe_line
from mesh_core.views import RosterRow

from ..format import age, sparkline
from .keyed_table import KeyedTable, Row

GLYPHS = STATUS_GLYPHS
NAME_WIDTH = 18
MIN_ABOUT_WIDTH = 16
# status 1, name, beat 4, unread 6, last hour 12, padding 2 a column, scrollbar 1
FIXED_WIDTH = 1 + NAME_WIDTH + 4 + 6 + 12 + 6 * 2 + 1


def attention(row: RosterRow, flood_threshold: int) -> tuple[str, str] | None:
    """Why this agent needs a look (text, style), or None."""
    if not row.needs_attention:
        return None
    if row.flooded:
        return f"flooded: {row.agent.unread} unread (>{flood_threshold})", "bold red"
    if row.agent.status is Status.STALE:
        return "stale: no heartbeat", "bold yellow"
    return "rate-limited → " + ", ".join(safe_line(n, 20) for n in row.rate_limited), "magenta"


class Roster(KeyedTable):
    """Status, name, description (or what is wrong), last beat, unread, last hour."""

    about_width = 34

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Threads"),
        Binding("i", "app.agent_detail", "Details"),
        Binding("n", "app.new_message", "Message"),
        Binding("s", "app.toggle_stopped", "Stopped", show=False),
    ]

    def on_mount(self) -> None:
        self._shown: tuple[Sequence[RosterRow], datetime, str | None, int] | None = None
        self._columns()

    def on_resize(self, event: events.Resize) -> None:
        """The description gets whatever width the pane has left."""
        width = max(MIN_ABOUT_WIDTH, event.size.width - FIXED_WIDTH)
        if width != self.about_width:
            self.about_width = width
            self.reset()
            self._columns()
            if self._shown is not None:
                self.show(*self._shown)

    def _columns(self) -> None:
        self.add_column(Text(" "), key="status")
        self.add_column(Text("agent"), key="name", width=NAME_WIDTH)
        self.add_column(Text("about"), key="about", width=self.about_width)
        self.add_column(Text("beat", justify="right"), key="beat")
        self.add_column(Text("unread", justify="right"), key="unread")
        self.add_column(Text("last hour"), key="activity")

    def show(
        self,
        rows: Sequence[RosterRow],
        now: datetime,
        me: str | None,
        flood_threshold: int,
        built: tuple[int, list[Row]] | None = None,
    ) -> None:
        """Show `rows`; `built` = (about width, cells) made off the event loop by
        `roster_rows`, used when the pane still has that width."""
        self._shown = (rows, now, me, flood_threshold)
        if built is not None and built[0] == self.about_width:
            self.sync(built[1])
        else:
            self.sync(roster_rows(rows, now, me, flood_threshold, self.about_width))


_RowKey = tuple[object, ...]
_last_built: dict[_RowKey, Row] = {}


def roster_rows(
    rows: Sequence[RosterRow],
    now: datetime,
    me: str | None,
    flood_threshold: int,
    about_width: int,
) -> list[Row]:
    """The cells of every row: plain Rich objects, so a worker thread can build them.

    Every row is rebuilt on every refresh (1,000 agents), but few change between two: a
    row whose inputs (its heartbeat's age as shown included) are those of the last build
    reuses its cells. Only the last build's rows are kept."""
    global _last_built
    before: dict[_RowKey, Row] = _last_built
    built: dict[_RowKey, Row] = {}
    result = []
    for row in rows:
        agent = row.agent
        beat = age(agent.last_heartbeat, now)
        key = (
            agent.session_id,
            agent.agent_name,
            agent.agent_description,
            agent.status,
            agent.unread,
            beat,
            row.activity,
            row.rate_limited,
            row.flooded,
            agent.session_id == me,
            flood_threshold,
            about_width,
        )
        cells = before.get(key)
        if cells is None:
            cells = _row(row, beat, me, flood_threshold, about_width)
        built[key] = cells
        result.append(cells)
    _last_built = built  # one assignment: a build on another thread sees either dict
    return result


def _row(row: RosterRow, beat: str, me: str | None, flood_threshold: int, about_width: int) -> Row:
    agent = row.agent
    glyph, colour = GLYPHS[agent.status]
    stopped = agent.status is Status.STOPPED
    why = attention(row, flood_threshold)
    name_style = "bright_black" if stopped else (why[1] if why else "bold")
    name = safe_line(agent.agent_name, NAME_WIDTH)
    if agent.session_id == me:
        name = safe_line(f"{agent.agent_name} (you)", NAME_WIDTH)
    if why:
        about = Text(safe_line(why[0], about_width), style=why[1])
    else:
        about = Text(
            safe_line(agent.agent_description or "", about_width),
            style="bright_black" if stopped else "",
        )
    unread_style = "bold red" if row.flooded else ("" if agent.unread else "bright_black")
    return (
        agent.session_id,
        (
            Text(glyph, style=colour),
            Text(name, style=name_style),
            about,
            Text(beat, justify="right", style="bright_black"),
            Text(str(agent.unread), justify="right", style=unread_style),
            Text(sparkline(row.activity), style="bright_black" if stopped else "cyan"),
        ),
    )
