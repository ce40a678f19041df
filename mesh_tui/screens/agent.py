"""One agent in full: where it runs, how it is doing, its recent threads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from mesh_core.models import Status
from mesh_core.text import safe_line
from mesh_core.views import RosterRow, ThreadSummary

from ..format import age, local_stamp


class AgentDetail(ModalScreen[str | None]):
    """Dismissed with "message" when the person asks to write to the agent, "forget"
    when they ask to forget a stopped session (the app asks to confirm)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,i", "dismiss(None)", "Close"),
        Binding("n,m", "message", "Message it"),
        Binding("f", "forget", "Forget a stopped session"),
    ]

    def __init__(
        self,
        row: RosterRow,
        threads: Sequence[ThreadSummary],
        now: datetime,
        is_me: bool,
        earlier_sessions: int = 0,
    ) -> None:
        super().__init__()
        self.row = row
        self.threads = threads
        self.now = now
        self.is_me = is_me
        self.earlier_sessions = earlier_sessions

    def compose(self) -> ComposeResult:
        agent = self.row.agent
        meta = agent.metadata
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()

        def field(label: str, value: object) -> None:
            shown = "" if value is None else str(value)
            table.add_row(Text(label), Text(safe_line(shown, 200) or "—"))

        field("workspace", agent.agent_name + (" (you)" if self.is_me else ""))
        field("status", agent.status.value)
        field("description", agent.agent_description)
        field("cwd", agent.cwd)
        field("repo", agent.repo)
        field("client", meta.get("client"))
        field("kind", agent.kind)
        field("pid", meta.get("pid"))
        field("host", meta.get("host"))
        field(
            "registered",
            f"{local_stamp(agent.registered_at, self.now)} ({age(agent.registered_at, self.now)} ago)",
        )
        field(
            "heartbeat",
            f"{local_stamp(agent.last_heartbeat, self.now)} ({age(agent.last_heartbeat, self.now)} ago)",
        )
        field("queue", f"{agent.unread} unread")
        if self.row.rate_limited:
            field("rate-limited", ", ".join(self.row.rate_limited))
        if self.earlier_sessions:
            field("earlier sessions", f"{self.earlier_sessions} (stopped, folded into this row)")
        table.add_row("", "")
        table.add_row(Text("recent threads", style="bold"), "")
        for thread in self.threads[:8]:
            who = " ↔ ".join(safe_line(p, 20) for p in thread.participants[:3])
            table.add_row(
                Text(f"#{thread.thread_id}"),
                Text(
                    f"{who} · {thread.count} · {age(thread.last_activity, self.now)} · "
                    + safe_line(thread.last_line or thread.first_line, 60)
                ),
            )
        if not self.threads:
            table.add_row("", Text("none yet", style="bright_black"))
        with VerticalScroll(id="agent-body") as body:
            body.border_title = safe_line(agent.agent_name, 40)
            body.border_subtitle = " · ".join(
                (["n message it"] if not self.is_me else [])
                + (["f forget it"] if self.can_forget else [])
                + ["esc closes"]
            )
            yield Static(table, markup=False)

    @property
    def can_forget(self) -> bool:
        """Offered for a stopped session of someone else (the core refuses the rest)."""
        return not self.is_me and self.row.agent.status is Status.STOPPED

    def action_message(self) -> None:
        if not self.is_me:
            self.dismiss("message")

    def action_forget(self) -> None:
        if self.can_forget:
            self.dismiss("forget")
        else:
            self.notify("Only a stopped session can be forgotten.", markup=False)
