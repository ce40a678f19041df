"""How the `mesh` command shows things: plain lines, JSON, and rich tables (rich is
imported only when a table is drawn). Every field another client wrote passes
`safe_line`/`safe_text` and is shown as rich `Text`, never as markup.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
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


def agents_table(agents: Sequence[Agent], now: datetime) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("", "name", "description", "kind", "unread", "last heartbeat"):
        table.add_column(column, overflow="fold")
    for agent in agents:
        glyph, style = STATUS_GLYPHS[agent.status]
        stopped = agent.status is Status.STOPPED
        table.add_row(
            Text(glyph, style=style),
            Text(safe_line(agent.agent_name), style=style if stopped else "bold"),
            Text(safe_line(agent.agent_description or "", 60), style="dim"),
            Text(safe_line(agent.kind)),
            Text(field(agent.unread), style="bold" if agent.unread else "dim"),
            Text(f"{ago(agent.last_heartbeat, now)} ({status_label(agent)})"),
        )
    return table


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
