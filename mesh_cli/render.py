"""How the `mesh` command shows things: plain lines, JSON, and rich tables (rich is
imported only when a table is drawn). Every field another client wrote passes
`safe_line`/`safe_text` and is shown as rich `Text`, never as markup.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mesh_core.clock import parse_ts_or_none
from mesh_core.delivery import party
from mesh_core.models import Agent, Message, Status
from mesh_core.present import STATUS_GLYPHS, elapsed, priority_mark
from mesh_core.text import safe_line, safe_text

if TYPE_CHECKING:  # rich loads only when a command renders a table (it costs a send)
    from rich.console import Console
    from rich.table import Table


def new_console(stderr: bool = False) -> Console:
    """A console on the current stdout/stderr; rich drops colour when it is not a TTY."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            """rich would exit 1 (our "refused"); let `main` handle it like any other write."""
            self.quiet = True
            raise BrokenPipeError

    return _Console(
        file=sys.stderr if stderr else sys.stdout, highlight=False, markup=False, emoji=False
    )


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def warn(lines: Iterable[str]) -> None:
    for line in lines:
        print(f"warning: {safe_line(line)}", file=sys.stderr)


def ago(when: str | None, now: datetime) -> str:
    """`12s ago`, `3m ago`, `2h ago`, `4d ago`; other clients' odd values shown as they are."""
    seen = parse_ts_or_none(when)
    if seen is None:
        return safe_line(when or "never")
    if seen > now:
        return "just now"
    return f"{elapsed(when, now)} ago"


def local_time(stamp: str) -> str:
    when = parse_ts_or_none(stamp)
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else safe_line(stamp)


def field(value: object) -> str:
    """Any other field a client wrote (an id, a priority, a timestamp), on one line and
    with its control sequences made visible: another client may write any text there."""
    return safe_line(value, 80)


def status_label(agent: Agent) -> str:
    """`active`, `stale`, `stopped`, or another client's own status as it is: `other: idle`."""
    if agent.status is Status.OTHER:
        return f"other: {agent.stored_status}"
    return str(agent.status.value)


# Columns of the roster that give up width when the table is wider than the terminal.
_FLEXIBLE = (1, 2)  # name, description
_GAP = "  "
_HEADER = ("", "name", "description", "kind", "unread", "last heartbeat")


def print_roster(console: Console, agents: Sequence[Agent], now: datetime) -> None:
    """The roster, laid out here and written line by line: rich's `Table` measures and
    wraps every cell (about 0.4 ms a row), which a roster of thousands cannot afford.
    Columns are as wide as their widest cell; if that is wider than the terminal, the name
    and description give up width and fold onto further lines, as the table did. Styles
    are rich's, rendered for the console's colour system (none into a pipe)."""
    from rich.cells import cell_len

    rows: list[tuple[tuple[str, str], ...]] = [tuple((title, "bold") for title in _HEADER)]
    for agent in agents:
        glyph, style = STATUS_GLYPHS[agent.status]
        stopped = agent.status is Status.STOPPED
        rows.append(
            (
                (glyph, style),
                (safe_line(agent.agent_name), style if stopped else "bold"),
                (safe_line(agent.agent_description or "", 60), "dim"),
                (safe_line(agent.kind), ""),
                (field(agent.unread), "bold" if agent.unread else "dim"),
                (f"{ago(agent.last_heartbeat, now)} ({status_label(agent)})", ""),
            )
        )
    widths = [0] * len(_HEADER)
    for row in rows:
        for column, (value, _style) in enumerate(row):
            widths[column] = max(widths[column], cell_len(value))
    _fit(widths, console.width)
    paint = _painter(console)
    write = console.file.write
    for row in rows:
        for line in _row_lines(row, widths, paint):
            write(line + "\n")
    console.file.flush()


def _fit(widths: list[int], width: int) -> None:
    """Narrow the flexible columns, widest first, until a row fits `width` (each keeps at
    least 8 cells)."""
    excess = sum(widths) + len(_GAP) * (len(widths) - 1) - width
    while excess > 0:
        column = max(_FLEXIBLE, key=lambda c: widths[c])
        if widths[column] <= 8:
            return
        widths[column] -= 1
        excess -= 1


def _painter(console: Console) -> Callable[[str, str], str]:
    """`paint(text, style)`: `text` wrapped in the escape codes of rich's `style` for this
    console (as it is, into a pipe or with colour off). The text is already made safe."""
    from rich.color import ColorSystem
    from rich.style import Style

    system = {
        "standard": ColorSystem.STANDARD,
        "256": ColorSystem.EIGHT_BIT,
        "truecolor": ColorSystem.TRUECOLOR,
        "windows": ColorSystem.WINDOWS,
    }.get(console.color_system or "")
    codes: dict[str, tuple[str, str]] = {}

    def paint(text: str, style: str) -> str:
        if system is None or not style or not text:
            return text
        if style not in codes:
            parsed = Style.parse(style)
            if console.no_color:
                parsed = parsed.without_color
            before, _, after = parsed.render("\0", color_system=system).partition("\0")
            codes[style] = (before, after)
        before, after = codes[style]
        return f"{before}{text}{after}"

    return paint


def _row_lines(
    cells: tuple[tuple[str, str], ...], widths: list[int], paint: Callable[[str, str], str]
) -> Iterator[str]:
    """One row: each cell padded to its column, a cell too wide folded onto more lines."""
    from rich.cells import cell_len, chop_cells

    parts = [
        chop_cells(value, widths[i]) if cell_len(value) > widths[i] else [value]
        for i, (value, _style) in enumerate(cells)
    ]
    for index in range(max(len(p) for p in parts)):
        line = []
        for i, (_value, style) in enumerate(cells):
            piece = parts[i][index] if index < len(parts[i]) else ""
            line.append(paint(piece, style) + " " * (widths[i] - cell_len(piece)))
        yield _GAP.join(line).rstrip()


def messages_table(messages: Sequence[Message]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold", show_lines=False)
    for column in ("id", "from → to", "priority", "time", "content"):
        table.add_column(column, overflow="fold", no_wrap=column != "content")
    for message in messages:
        reply = f" ↳#{field(message.original_message_id)}" if message.original_message_id else ""
        table.add_row(
            Text(f"#{field(message.message_id)}{reply}"),
            Text(
                f"{party(message.sender_name, message.sender_session_id)} → "
                f"{party(message.recipient_name, message.recipient_session_id)}"
            ),
            Text(field(message.priority), style=priority_mark(message.priority)[1]),
            Text(local_time(message.created_at), style="dim"),
            Text(safe_text(message.content)),
        )
    return table


def say(line: str, stderr: bool = False) -> None:
    """One plain line (names in it are already made safe): no rich for a send's answer."""
    stream = sys.stderr if stderr else sys.stdout
    stream.write(line + "\n")
    stream.flush()
