"""mesh-tui: watch every agent and thread on the mesh, and take part as a person.

The app registers the person as a `human` participant, takes only the messages addressed
to it, and reads everything else through `mesh_core.views` (which marks nothing read).
Reads and writes run in thread workers; widgets change only in message handlers.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static

from mesh_agents.simulated import Demo
from mesh_core import views
from mesh_core.errors import DatabaseUnusable, MeshError
from mesh_core.identity import default_person_name
from mesh_core.mesh import Mesh
from mesh_core.models import Message, Status
from mesh_core.participant import Participant
from mesh_core.rules import CLIENT_TUI
from mesh_core.text import safe_line, safe_text
from mesh_core.views import MeshSnapshot, RosterRow, ThreadSummary

from .messages import (
    Delivered,
    MeshChanged,
    Prebuilt,
    RefreshFailed,
    SendFailed,
    SendSucceeded,
    SnapshotLoaded,
    ThreadLoaded,
    ViewState,
)
from .screens.help import HelpScreen
from .widgets.composer import Composer
from .widgets.conversation import Conversation, first_unread
from .widgets.keyed_table import KeyedTable
from .widgets.roster import Roster, roster_rows
from .widgets.threads import ThreadList, thread_rows

INTERVAL_CHOICES = (2.0, 5.0, 10.0, 30.0, 60.0)
# A commit by another process asks for a refresh; at most this often (seconds).
CHANGE_REFRESH_GAP = 0.5
NARROW_BELOW = 100

CONNECT_HELP = """No agents on this mesh yet.

Connect an agent session:
  mesh install claude      Claude Code
  mesh install copilot     GitHub Copilot CLI
  mesh install codex       Codex
  mesh install gemini      Gemini CLI
  mesh mcp                 any other MCP client: add this command as a stdio server
                           (`mesh install json` prints the snippet)

Or try it with simulated agents:  mesh-tui --demo"""


def _matches(needle: str, *texts: str | None) -> bool:
    needle = needle.lower()
    return not needle or any(needle in (t or "").lower() for t in texts)


def visible_roster(snapshot: MeshSnapshot, view: ViewState) -> list[RosterRow]:
    return [
        row
        for row in snapshot.roster
        if (view.show_stopped or row.agent.status is not Status.STOPPED)
        and _matches(view.filter_text, row.agent.agent_name, row.agent.agent_description)
    ]


def visible_threads(snapshot: MeshSnapshot, view: ViewState) -> list[ThreadSummary]:
    return [
        t for t in snapshot.threads if _matches(view.filter_text, t.first_line, *t.participants)
    ]


class MeshApp(App[None]):
    """Roster, threads, conversation and composer over one mesh database."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    TITLE = "agent-mesh"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("n", "new_message", "New message"),
        Binding("r", "reply", "Reply"),
        Binding("slash", "filter", "Filter"),
        Binding("a", "all_threads", "All threads"),
        Binding("u", "next_unread", "Next unread", show=False),
        Binding("s", "toggle_stopped", "Show/hide stopped agents", show=False),
        Binding("ctrl+r", "refresh_now", "Refresh now", show=False),
        Binding("escape", "clear_filter", "Clear the filter", show=False),
        Binding("tab", "app.focus_next", "Next pane", show=False),
        Binding("shift+tab", "app.focus_previous", "Previous pane", show=False),
    ]

    def __init__(
        self,
        mesh: Mesh,
        *,
        name: str | None = None,
        interval: float | None = None,
        live: bool = True,
        demo: bool = False,
        session_id: str | None = None,
        db_label: str | None = None,
    ) -> None:
        """`live`: run the participant loop (heartbeat, inbox, change watch) and the refresh
        timer; off, the app reads only on start and after its own actions (tests,
        snapshots). `session_id`: act as this existing session (live, it is re-registered
        and kept beating) instead of a new one.
        `db_label`: how the status bar names the database (default: its path)."""
        super().__init__()
        self.mesh = mesh
        self.person_name = name or default_person_name()
        self.interval = interval or mesh.config.poll_interval
        self.live = live
        self.demo = demo
        self.db_label = db_label or str(mesh.path)
        self.me: str | None = session_id
        self.participant: Participant | None = None
        self.snapshot: MeshSnapshot | None = None
        # last-hour counts kept between refreshes: each reads only new messages
        self.activity = views.Activity()
        self.scope: str | None = None  # session id whose threads are listed; None = all
        self.open_thread: int | None = None
        self.show_stopped = True
        self.filter_text = ""
        self.unseen: dict[int, set[int]] = {}  # thread -> delivered, not yet opened
        self._marker: tuple[int, int | None] | None = None  # (thread, first unread id)
        self._target: tuple[str, str | int] | None = None  # ("send", sid) | ("reply", id)
        self._refreshing = False
        self._refresh_again = False
        self._last_refresh = 0.0
        self._change_timer: Timer | None = None
        self._refresh_timer: Timer | None = None
        self._select_thread: int | None = None
        self._demo_stop = threading.Event()
        self._demo_thread: threading.Thread | None = None

    # -- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="topbar", markup=False)
        yield Input(placeholder="filter agents and threads (esc clears)", id="filter")
        with Vertical(id="roster-pane"):
            yield Roster(id="roster")
            yield Static(Text(CONNECT_HELP), id="roster-empty", markup=False)
        with Horizontal(id="bottom"):
            yield ThreadList(id="threads")
            with Vertical(id="right"):
                yield Conversation(id="conversation")
                yield Composer(self.mesh.config.max_content_bytes, blink=self.live, id="composer")
        yield Static(id="statusbar", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#roster-pane").border_title = "Agents"
        self.query_one("#threads").border_title = "Threads · all"
        self.query_one("#conversation").border_title = "Conversation"
        self.query_one("#filter", Input).cursor_blink = self.live
        self._start_participant()
        self._update_status()
        self.query_one(Roster).focus()
        if self.live:
            self._refresh_timer = self.set_interval(self.interval, self.request_refresh)
            self._exit_on_signals()
        if self.demo:
            self._demo_thread = threading.Thread(target=self._run_demo, daemon=True, name="demo")
            self._demo_thread.start()
        self.request_refresh()

    def _exit_on_signals(self) -> None:
        """SIGTERM / SIGHUP (terminal closed) end the app like q: the person is marked
        stopped by `on_unmount` and the terminal is restored."""
        loop = asyncio.get_running_loop()
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                try:
                    loop.add_signal_handler(getattr(signal, name), self.exit)
                except (NotImplementedError, RuntimeError, ValueError):
                    return  # not the main thread, or not supported here

    def _start_participant(self) -> None:
        """Register the person now (it is visible at once); live, keep it beating."""
        if self.live:
            self.participant = Participant(
                self.mesh,
                self.person_name,
                kind="human",
                client=CLIENT_TUI,
                description="a person at mesh-tui",
                session_id=self.me,
                on_message=self._delivered,
                on_change=self._changed,
            )
            self.me = self.participant.start().session_id
        elif self.me is None:
            agent = self.mesh.register(
                self.person_name,
                kind="human",
                client=CLIENT_TUI,
                description="a person at mesh-tui",
            )
            self.me = agent.session_id

    def _delivered(self, message: Message) -> None:
        """Participant thread: a message for the person was taken from the inbox."""
        self.post_message(Delivered(message))

    def _changed(self) -> None:
        """Participant thread: another connection committed."""
        self.post_message(MeshChanged())

    def _run_demo(self) -> None:
        demo = Demo(self.mesh, person=self.me)
        try:
            demo.seed()
        except MeshError as exc:
            self.call_from_thread(self.notify, f"demo: {exc}", severity="error", markup=False)
            return
        self.post_message(MeshChanged())
        demo.run(self._demo_stop)

    def on_resize(self) -> None:
        narrow = self.size.width < NARROW_BELOW
        self.screen.set_class(narrow, "-narrow")

    # -- reading the mesh ---------------------------------------------------------------

    def request_refresh(self) -> None:
        """Read the mesh in a worker; never two reads at once (one more runs after)."""
        if self._panes_gone():
            return
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        self._last_refresh = time.monotonic()
        self.refresh_mesh(self.me, self.scope, self.open_thread, self.view_state())

    @work(thread=True, exit_on_error=False, group="refresh")
    def refresh_mesh(
        self, me: str | None, scope: str | None, thread_id: int | None, view: ViewState
    ) -> None:
        """Blocking SQLite, off the event loop; the result goes back as a message.

        Not `exclusive`: `request_refresh` already allows one read at a time, and an
        exclusive worker would cancel the previous one in the instant between its
        result being handled and its thread returning. The table cells are built here
        too, for `view`, so the event loop only has to update the cells that changed."""
        try:
            snapshot = views.snapshot(self.mesh, me, scope, activity=self.activity)
            messages = views.thread_messages(self.mesh, thread_id) if thread_id else None
            taken = snapshot.taken_at
            built = Prebuilt(
                view,
                roster_rows(
                    visible_roster(snapshot, view),
                    taken,
                    me,
                    self.mesh.config.flood_threshold,
                    view.about_width,
                ),
                thread_rows(
                    visible_threads(snapshot, view), taken, dict(view.unseen), view.thread_width
                ),
            )
        except Exception as exc:  # noqa: BLE001 - any failure is shown and frees the gate
            self.post_message(RefreshFailed(str(exc)))
            return
        self.post_message(SnapshotLoaded(snapshot, built))
        if thread_id is not None and messages is not None:
            self.post_message(ThreadLoaded(thread_id, messages))

    @work(thread=True, exit_on_error=False, group="thread")
    def load_thread(self, thread_id: int) -> None:
        """Not exclusive: a stale result is dropped by `on_thread_loaded` instead."""
        try:
            messages = views.thread_messages(self.mesh, thread_id)
        except (MeshError, sqlite3.Error) as exc:
            self.post_message(RefreshFailed(str(exc), gate=False))
            return
        self.post_message(ThreadLoaded(thread_id, messages))

    def on_mesh_changed(self, _: MeshChanged) -> None:
        """Another process committed: refresh soon (at most every CHANGE_REFRESH_GAP)."""
        wait = CHANGE_REFRESH_GAP - (time.monotonic() - self._last_refresh)
        if wait <= 0:
            self.request_refresh()
        elif self._change_timer is None:
            self._change_timer = self.set_timer(wait, self._changed_refresh)

    def _changed_refresh(self) -> None:
        self._change_timer = None
        self.request_refresh()

    def _panes_gone(self) -> bool:
        """Worker results that arrive while the app shuts down have no panes to go to."""
        return not self.query(Conversation)

    def on_snapshot_loaded(self, event: SnapshotLoaded) -> None:
        self._refreshing = False
        if self._panes_gone():
            return
        previous, self.snapshot = self.snapshot, event.snapshot
        if previous is not None:
            self._announce_changes(previous, event.snapshot)
        self._render_snapshot(event.built)
        if self._refresh_again:
            self._refresh_again = False
            self.request_refresh()

    def on_refresh_failed(self, event: RefreshFailed) -> None:
        if event.gate:
            self._refreshing = False
        self.notify(event.error, title="cannot read the mesh", severity="error", markup=False)

    def _announce_changes(self, before: MeshSnapshot, after: MeshSnapshot) -> None:
        """A toast when an agent turns stale or flooded."""
        old = {row.agent.session_id: row for row in before.roster}
        for row in after.roster:
            was = old.get(row.agent.session_id)
            if was is None or row.agent.kind == "human":
                continue
            name = safe_line(row.agent.agent_name, 40)
            if row.agent.status is Status.STALE and was.agent.status is Status.ACTIVE:
                self.notify(
                    f"{name} turned stale: no heartbeat for {self.mesh.config.stale_after:g} s",
                    severity="warning",
                    markup=False,
                )
            if row.flooded and not was.flooded:
                self.notify(
                    f"{name} is flooded: {row.agent.unread} unread messages",
                    severity="warning",
                    markup=False,
                )

    # -- rendering ----------------------------------------------------------------------

    def view_state(self) -> ViewState:
        """What the tables' cells depend on besides the snapshot."""
        return ViewState(
            show_stopped=self.show_stopped,
            filter_text=self.filter_text,
            about_width=self.query_one(Roster).about_width,
            thread_width=self.query_one(ThreadList).main_width,
            unseen=tuple(sorted((tid, len(ids)) for tid, ids in self.unseen.items() if ids)),
        )

    def _render_snapshot(self, built: Prebuilt | None = None) -> None:
        """Show the snapshot; `built` cells from the worker are used if the view they
        were made for is still the view (else they are made here)."""
        snapshot = self.snapshot
        if snapshot is None:
            return
        view = self.view_state()
        if built is not None and built.view != view:
            built = None
        others = [row for row in snapshot.roster if row.agent.session_id != self.me]
        self.query_one("#roster-pane").set_class(not others, "-empty")
        self.query_one(Roster).show(
            visible_roster(snapshot, view),
            snapshot.taken_at,
            self.me,
            self.mesh.config.flood_threshold,
            (view.about_width, built.roster) if built else None,
        )
        threads = self.query_one(ThreadList)
        threads.show(
            visible_threads(snapshot, view),
            snapshot.taken_at,
            dict(view.unseen),
            (view.thread_width, built.threads) if built else None,
        )
        if self._select_thread is not None and threads.select_key(str(self._select_thread)):
            self._select_thread = None
        self._update_status()

    def _update_status(self) -> None:
        counts = self.snapshot.counts() if self.snapshot else {}
        top = Text()
        top.append(" agent-mesh ", style="bold reverse")
        top.append("  you: ", style="bright_black")
        top.append(safe_line(self.person_name, 30), style="bold")
        top.append("   ")
        parts = [
            (f"{counts.get('active', 0)} active", "green"),
            (
                f"{counts.get('stale', 0)} stale",
                "bold yellow" if counts.get("stale") else "bright_black",
            ),
            (
                f"{counts.get('flooded', 0)} flooded",
                "bold red" if counts.get("flooded") else "bright_black",
            ),
            (
                f"{counts.get('rate-limited', 0)} rate-limited",
                "magenta" if counts.get("rate-limited") else "bright_black",
            ),
            (f"{counts.get('stopped', 0)} stopped", "bright_black"),
        ]
        for index, (label, style) in enumerate(parts):
            if index:
                top.append(" · ", style="bright_black")
            top.append(label, style=style)
        self.query_one("#topbar", Static).update(top)
        status = Text()
        if self.snapshot is not None:
            status.append(f" refreshed {self.snapshot.taken_at.astimezone().strftime('%H:%M:%S')}")
        else:
            status.append(" reading the mesh…")
        status.append(f" · every {self.interval:g} s", style="bright_black")
        if self.live:
            status.append(" · live", style="green")
        if not self.show_stopped:
            status.append(" · stopped agents hidden", style="yellow")
        if self.filter_text:
            status.append(" · filter: ", style="yellow")
            status.append(safe_line(self.filter_text, 30), style="yellow")
        status.append(f" · {self.db_label}", style="bright_black")
        self.query_one("#statusbar", Static).update(status)

    def on_thread_loaded(self, event: ThreadLoaded) -> None:
        if event.thread_id != self.open_thread or self.snapshot is None or self._panes_gone():
            return
        unseen = self.unseen.get(event.thread_id, set())
        if self._marker is None or self._marker[0] != event.thread_id or self._marker[1] is None:
            # the marker stays where it was while the thread is open
            self._marker = (event.thread_id, first_unread(event.messages, self.me, unseen))
        self.unseen.pop(event.thread_id, None)
        conversation = self.query_one(Conversation)
        conversation.show(
            event.thread_id, event.messages, self.me, self._marker[1], self.snapshot.taken_at
        )
        summary = next((t for t in self.snapshot.threads if t.thread_id == event.thread_id), None)
        title = Text(f"Thread #{event.thread_id}")
        if summary is not None:
            title.append(" · " + " ↔ ".join(safe_line(p, 20) for p in summary.participants))
        conversation.border_title = title

    # -- selection ----------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#threads")
    def _thread_highlighted(self) -> None:
        key = self.query_one(ThreadList).selected_key
        thread_id = int(key) if key is not None else None
        if thread_id is None or thread_id == self.open_thread:
            return
        self.open_thread = thread_id
        self.load_thread(thread_id)

    @on(DataTable.RowSelected, "#roster")
    def _agent_selected(self) -> None:
        """enter on an agent: list its threads."""
        key = self.query_one(Roster).selected_key
        if key is None:
            return
        self.scope = key
        name = self._agent_name(key)
        self.query_one("#threads").border_title = Text("Threads · " + safe_line(name, 30))
        self.query_one(ThreadList).focus()
        self.request_refresh()

    @on(DataTable.RowSelected, "#threads")
    def _thread_selected(self) -> None:
        self.query_one(Conversation).focus()

    def _agent_name(self, session_id: str) -> str:
        if self.snapshot is not None:
            for row in self.snapshot.roster:
                if row.agent.session_id == session_id:
                    return row.agent.agent_name
        return session_id[:8]

    # -- actions ------------------------------------------------------------------------

    def action_all_threads(self) -> None:
        self.scope = None
        self.query_one("#threads").border_title = "Threads · all"
        self.request_refresh()

    def action_refresh_now(self) -> None:
        self.request_refresh()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_sections()))

    def key_sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """(pane, [(key, description)]) from the bindings of every pane."""

        def keys(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
            return [(b.key, b.description) for b in bindings if isinstance(b, Binding)]

        app_keys = keys(self.BINDINGS) + [(self.COMMAND_PALETTE_BINDING, "Command palette")]
        return [
            ("Everywhere", app_keys),
            (
                "Agents and threads",
                keys(KeyedTable.BINDINGS)
                + [
                    ("up,down", "Move in the list"),
                    ("enter", "On an agent: list its threads; on a thread: read it"),
                ],
            ),
            ("Conversation", keys(Conversation.BINDINGS)),
            ("Composer", keys(Composer.BINDINGS) + [("tab", "Priority picker")]),
            ("Filter", [("enter", "Keep the filter, back to the roster")]),
        ]

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("-visible")
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._render_snapshot()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one(Roster).focus()

    def action_clear_filter(self) -> None:
        """esc: clear and hide the filter, back to the roster."""
        box = self.query_one("#filter", Input)
        if not (box.has_class("-visible") or self.filter_text):
            return
        box.value = ""
        box.remove_class("-visible")
        self.filter_text = ""
        self._render_snapshot()
        self.query_one(Roster).focus()

    def action_toggle_stopped(self) -> None:
        self.show_stopped = not self.show_stopped
        self._render_snapshot()

    def action_next_unread(self) -> None:
        """Move to the next thread (after the cursor, wrapping) with unread messages."""
        threads = self.query_one(ThreadList)
        shown = visible_threads(self.snapshot, self.view_state()) if self.snapshot else []
        if not shown:
            return
        start = threads.cursor_row
        for step in range(1, len(shown) + 1):
            thread = shown[(start + step) % len(shown)]
            if thread.unread_for_me or self.unseen.get(thread.thread_id):
                threads.select_key(str(thread.thread_id))
                threads.focus()
                return
        self.notify("No thread has unread messages for you.", markup=False)

    def action_jump_to_agent(self, session_id: str) -> None:
        if not self.show_stopped:
            self.show_stopped = True
            self._render_snapshot()
        roster = self.query_one(Roster)
        if not roster.select_key(session_id):
            self.filter_text = ""
            self.query_one("#filter", Input).value = ""
            self._render_snapshot()
            roster.select_key(session_id)
        roster.focus()

    def set_interval_seconds(self, seconds: float) -> None:
        self.interval = seconds
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = self.set_interval(seconds, self.request_refresh)
        self._update_status()
        self.notify(f"Refreshing every {seconds:g} s", markup=False)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Next thread with unread", "Jump to it", self.action_next_unread)
        yield SystemCommand(
            "Hide stopped agents" if self.show_stopped else "Show stopped agents",
            "Toggle stopped agents in the roster",
            self.action_toggle_stopped,
        )
        yield SystemCommand(
            "All threads", "List the threads of every agent", self.action_all_threads
        )
        yield SystemCommand("Refresh now", "Read the mesh again", self.action_refresh_now)
        for seconds in INTERVAL_CHOICES:
            yield SystemCommand(
                f"Refresh every {seconds:g} s",
                "Change the refresh interval",
                lambda s=seconds: self.set_interval_seconds(s),
                discover=False,
            )
        for row in self.snapshot.roster if self.snapshot else ():
            name = safe_line(row.agent.agent_name, 40)
            yield SystemCommand(
                f"Jump to agent {name}",
                f"{row.agent.status.value}",
                lambda sid=row.agent.session_id: self.action_jump_to_agent(sid),
                discover=False,
            )

    # -- composing ------------------------------------------------------------------------

    def action_new_message(self) -> None:
        key = self.query_one(Roster).selected_key
        if key is None:
            self.notify("Select an agent in the roster first.", markup=False)
            return
        self._target = ("send", key)
        label = Text("New message to ", style="bright_black")
        label.append(safe_line(self._agent_name(key), 40), style="bold")
        self.query_one(Composer).open(label)

    def action_reply(self) -> None:
        thread_id = self.open_thread
        summary = (
            next((t for t in self.snapshot.threads if t.thread_id == thread_id), None)
            if self.snapshot
            else None
        )
        if summary is None:
            self.notify("Select a thread first.", markup=False)
            return
        self._target = ("reply", summary.last_message_id)
        label = Text(f"Reply in thread #{summary.thread_id} ", style="bright_black")
        label.append(" ↔ ".join(safe_line(p, 20) for p in summary.participants), style="bold")
        self.query_one(Composer).open(label)

    @on(Composer.Leave)
    def _composer_left(self) -> None:
        self.query_one(Composer).close()
        self.query_one(ThreadList if self.open_thread else Roster).focus()

    @on(Composer.Send)
    def _composer_send(self, event: Composer.Send) -> None:
        if self._target is None or self.me is None:
            return
        self.send_draft(self.me, self._target, event.text, event.priority)

    @work(thread=True, exit_on_error=False, group="send")
    def send_draft(self, me: str, target: tuple[str, str | int], text: str, priority: str) -> None:
        """Send off the event loop; the rule's refusal comes back as SendFailed."""
        try:
            kind, where = target
            if kind == "reply":
                message = self.mesh.reply(me, int(where), text, priority=priority)
            else:
                message = self.mesh.send(me, str(where), text, priority=priority)
        except MeshError as exc:
            self.post_message(SendFailed(str(exc)))
            return
        self.post_message(SendSucceeded(message))

    def on_send_failed(self, event: SendFailed) -> None:
        if self._panes_gone():
            return
        self.query_one(Composer).show_error(event.error)

    def on_send_succeeded(self, event: SendSucceeded) -> None:
        message: Message = event.message
        if self._panes_gone():
            return
        composer = self.query_one(Composer)
        composer.sent()
        self.notify(
            f"Sent to {safe_line(message.recipient_name or message.recipient_session_id, 40)}",
            markup=False,
        )
        for warning in message.warnings:
            # Warnings name the recipient as the database has it: untrusted text.
            self.notify(safe_text(warning), severity="warning", markup=False)
        self._target = ("reply", message.message_id)
        self.open_thread = message.thread_id
        self._select_thread = message.thread_id
        self.request_refresh()

    def on_delivered(self, event: Delivered) -> None:
        """A message for the person: count it unseen until its thread is opened."""
        message = event.message
        if self._panes_gone():
            return
        if message.thread_id != self.open_thread:
            self.unseen.setdefault(message.thread_id, set()).add(message.message_id)
        sender = safe_line(message.sender_name or message.sender_session_id[:8], 30)
        first = safe_line(message.content, 80)
        self.notify(
            f"{sender}: {first}",
            title="new message",
            markup=False,
            severity="warning" if message.priority in ("urgent", "high") else "information",
        )
        self.request_refresh()

    # -- leaving ------------------------------------------------------------------------

    def on_unmount(self) -> None:
        """q (or any exit) marks the person stopped and ends the demo agents."""
        self._demo_stop.set()
        if self._demo_thread is not None:
            self._demo_thread.join(timeout=5)
        if self.participant is not None:
            self.participant.stop()
        elif self.me is not None:
            try:
                self.mesh.deregister(self.me)
            except (MeshError, sqlite3.Error):
                pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mesh-tui",
        description="Watch every agent and thread on the agent mesh, and take part as a person.",
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="mesh database (default: $AGENT_MESH_DB or ~/.agent-mesh/agent-mesh.db)",
    )
    parser.add_argument(
        "--name", help="your name on the mesh (default: $AGENT_MESH_NAME or your login name)"
    )
    parser.add_argument(
        "--interval",
        type=float,
        metavar="SECONDS",
        help="full refresh interval (default: the poll interval, 10 s)",
    )
    parser.add_argument(
        "--demo", action="store_true", help="a fresh temporary database with simulated agents"
    )
    args = parser.parse_args(argv)
    if args.interval is not None and args.interval <= 0:
        parser.error("--interval must be more than 0 seconds")
    if args.demo and args.db:
        parser.error("--demo uses its own temporary database: leave out --db")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="mesh-demo-")) if args.demo else None
    db_path = workdir / "demo.db" if workdir else args.db
    try:
        mesh = Mesh(db_path)
    except DatabaseUnusable as exc:
        print(f"mesh-tui: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        MeshApp(mesh, name=args.name, interval=args.interval, demo=args.demo).run()
    except MeshError as exc:
        print(f"mesh-tui: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        mesh.close()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
