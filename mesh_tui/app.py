"""mesh-tui: watch every agent and thread on the mesh, and take part as a person.

The app registers the person as a `human` participant, takes only the messages addressed
to it, and reads everything else through `mesh_core.views` (which marks nothing read).
Reads and writes run in thread workers; widgets change only in message handlers.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.notifications import Notification, Notify, SeverityLevel
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static
from textual.widgets._toast import ToastRack

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

from . import driver
from .messages import (
    Delivered,
    MeshChanged,
    Notice,
    Prebuilt,
    RefreshFailed,
    SearchDone,
    SendFailed,
    SendSucceeded,
    SnapshotLoaded,
    ThreadLoaded,
    ViewState,
)
from .notices import (
    LOG_LIMIT,
    MAX_TOASTS,
    NOTIFY_CHOICES,
    LoggedNotice,
    NotificationLog,
    humanize_times,
    notify_send,
    osc_notification,
    osc_title,
    terminal_title,
)
from .screens.agent import AgentDetail
from .screens.confirm import Confirm
from .screens.help import HelpScreen
from .search import MIN_QUERY, SearchIndex
from .state import CRASH_FILE, DRAFTS_FILE, Drafts, crash_summary, state_dir, write_crash_report
from .widgets.composer import Composer
from .widgets.conversation import Conversation, first_unread
from .widgets.keyed_table import KeyedTable
from .widgets.roster import Roster, roster_rows
from .widgets.threads import ThreadList, thread_rows

INTERVAL_CHOICES = (2.0, 5.0, 10.0, 30.0, 60.0)
# A commit by another process asks for a refresh; at most this often (seconds).
CHANGE_REFRESH_GAP = 0.5
NARROW_BELOW = 100
# below this the panes cannot show a row each: a message asks for a larger terminal
MIN_WIDTH, MIN_HEIGHT = 60, 16
# SIGTERM / SIGHUP: if the orderly exit has not finished by then, leave at once (seconds)
SIGNAL_EXIT_DEADLINE = 1.5

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


def earlier_selves(snapshot: MeshSnapshot, me: str | None) -> list[RosterRow]:
    """The person's stopped sessions from earlier runs (same name, human): folded into
    their one row instead of a stopped copy per restart."""
    mine = next((r.agent for r in snapshot.roster if r.agent.session_id == me), None)
    if mine is None:
        return []
    return [
        r
        for r in snapshot.roster
        if r.agent.session_id != me
        and r.agent.kind == "human"
        and r.agent.agent_name == mine.agent_name
        and r.agent.status is Status.STOPPED
    ]


def visible_roster(
    snapshot: MeshSnapshot, view: ViewState, me: str | None = None
) -> list[RosterRow]:
    folded = {r.agent.session_id for r in earlier_selves(snapshot, me)}
    return [
        row
        for row in snapshot.roster
        if row.agent.session_id not in folded
        and (view.show_stopped or row.agent.status is not Status.STOPPED)
        and _matches(view.filter_text, row.agent.agent_name, row.agent.agent_description)
    ]


def roster_counts(rows: Iterable[RosterRow]) -> dict[str, int]:
    """Counted from the rows the roster shows (people included), so the top bar and the
    rows always agree."""
    result = {s.value: 0 for s in Status} | {"flooded": 0, "rate-limited": 0}
    for row in rows:
        result[row.agent.status.value] += 1
        if row.agent.status is not Status.STOPPED:
            result["flooded"] += row.flooded
            result["rate-limited"] += bool(row.rate_limited)
    return result


def visible_threads(
    snapshot: MeshSnapshot, view: ViewState, hits: Iterable[ThreadSummary] = ()
) -> list[ThreadSummary]:
    """The snapshot's threads that match the filter by name or preview, plus `hits`:
    threads found by message text (any age) for that filter; newest first."""
    shown = [
        t
        for t in snapshot.threads
        if _matches(view.filter_text, t.first_line, t.last_line, *t.participants)
    ]
    if not view.filter_text:
        return shown
    have = {t.thread_id for t in shown}
    shown += [t for t in hits if t.thread_id not in have]
    return sorted(shown, key=lambda t: t.last_message_id, reverse=True)


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
        Binding("u", "next_unread", "Next unread"),
        Binding("s", "toggle_stopped", "Show/hide stopped agents", show=False),
        Binding("ctrl+r", "refresh_now", "Refresh now", show=False),
        Binding("ctrl+n", "notification_log", "Notifications", show=False),
        Binding("i", "agent_detail", "Agent details", show=False),
        Binding("escape", "clear_filter", "Clear the filter", show=False),
        Binding("tab", "app.focus_next", "Next pane"),
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
        drafts: Drafts | None = None,
        crash_dir: Path | None = None,
        desktop_notify: str = "off",
        search: SearchIndex | None = None,
    ) -> None:
        """`live`: run the participant loop (heartbeat, inbox, change watch) and the refresh
        timer; off, the app reads only on start and after its own actions (tests,
        snapshots). `session_id`: act as this existing session (live, it is re-registered
        and kept beating) instead of a new one.
        `db_label`: how the status bar names the database (default: its path).
        `drafts`: where unsent drafts are kept (default: in memory only). `crash_dir`:
        where a crash report goes (default: a new temporary directory, if it crashes).
        `desktop_notify`: "osc" (OSC 9 / 777) or "notify-send" for a high or urgent
        message to the person; "off" by default. `search`: the message-text index
        (default: in memory, built from scratch)."""
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
        self._open_messages: list[Message] = []  # of open_thread, as last loaded
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
        self.drafts = drafts or Drafts(None, str(mesh.path))
        self.crash_dir = crash_dir
        self.crash_report: Path | None = None
        self.crash_text = ""  # what a crash printed
        self.desktop_notify = desktop_notify
        self.notice_log: list[LoggedNotice] = []
        self.window_title = ""
        self._left = False
        self._cursor_placed = False
        self.search = search or SearchIndex(None)
        self.search_hits: tuple[str, list[ThreadSummary]] = ("", [])
        self._indexing = threading.Event()  # set: stop indexing (the app is leaving)

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
        yield Static(id="too-small", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#roster-pane").border_title = "Agents"
        self.query_one("#threads").border_title = "Threads · all"
        self.query_one("#conversation").border_title = "Conversation"
        self.query_one("#filter", Input).cursor_blink = self.live
        self._start_participant()
        self._update_status()
        self._fit_layout(self.size.width, self.size.height)
        self.query_one(Roster).focus()
        if self.live:
            self._refresh_timer = self.set_interval(self.interval, self.request_refresh)
            self._exit_on_signals()
        if self.demo:
            self._demo_thread = threading.Thread(target=self._run_demo, daemon=True, name="demo")
            self._demo_thread.start()
        self.request_refresh()
        self.index_backlog()

    def _exit_on_signals(self) -> None:
        """SIGTERM / SIGHUP (terminal closed) end the app like q: drafts saved, the person
        marked stopped, the terminal restored. A plain signal handler (not the event
        loop's) so it runs even if the loop is stuck; if the orderly exit has not ended
        the process within SIGNAL_EXIT_DEADLINE, a watchdog does the same and leaves."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()

        def handle(signum: int, frame: FrameType | None) -> None:
            code = 128 + signum
            self._return_code = code
            threading.Thread(
                target=self._exit_by_deadline, args=(code,), daemon=True, name="exit-watchdog"
            ).start()
            loop.call_soon_threadsafe(self.exit, None, code)

        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), handle)

    def _exit_by_deadline(self, code: int) -> None:
        """Watchdog thread: whatever holds up the exit, end the process in time."""
        time.sleep(SIGNAL_EXIT_DEADLINE)
        saver = threading.Thread(target=self.leave, daemon=True, name="exit-leave")
        saver.start()
        saver.join(timeout=0.3)
        os._exit(code)

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
            # post, never call_from_thread: that waits on the event loop, which may be
            # joining this thread on exit
            self.post_message(Notice(f"demo: {exc}", severity="error"))
            return
        self.post_message(MeshChanged())
        demo.run(self._demo_stop)

    def on_resize(self, event: events.Resize) -> None:
        """Every resize sets the layout again, both ways (narrow never sticks)."""
        self._fit_layout(event.size.width, event.size.height)

    def _fit_layout(self, width: int, height: int) -> None:
        screen = self.screen_stack[0] if self.screen_stack else self.screen
        screen.set_class(width < NARROW_BELOW, "-narrow")
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        screen.set_class(small, "-too-small")
        if small:
            self.query_one("#too-small", Static).update(
                Text(
                    f"Make the terminal larger: mesh-tui needs at least {MIN_WIDTH}×{MIN_HEIGHT}"
                    f" (this one is {width}×{height}). q quits.",
                    style="bold",
                )
            )
        if self.snapshot is not None:
            self._update_status()

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
            if scope is not None and scope == me:
                snapshot = self._with_earlier_selves(snapshot, me)
            messages = views.thread_messages(self.mesh, thread_id) if thread_id else None
            taken = snapshot.taken_at
            hits = self._search(view.filter_text, me)
            built = Prebuilt(
                view,
                roster_rows(
                    visible_roster(snapshot, view, me),
                    taken,
                    me,
                    self.mesh.config.flood_threshold,
                    view.about_width,
                ),
                thread_rows(
                    visible_threads(snapshot, view, hits),
                    taken,
                    dict(view.unseen),
                    view.thread_width,
                ),
            )
        except Exception as exc:  # noqa: BLE001 - any failure is shown and frees the gate
            self.post_message(RefreshFailed(str(exc)))
            return
        self.post_message(SnapshotLoaded(snapshot, built, (view.filter_text, hits)))
        if thread_id is not None and messages is not None:
            self.post_message(ThreadLoaded(thread_id, messages))

    def _with_earlier_selves(self, snapshot: MeshSnapshot, me: str) -> MeshSnapshot:
        """Worker thread: the person's threads include those of their earlier runs (the
        sessions folded into their row), newest ten sessions."""
        earlier = sorted(
            earlier_selves(snapshot, me), key=lambda r: r.agent.last_heartbeat, reverse=True
        )[:10]
        if not earlier:
            return snapshot
        merged = {t.thread_id: t for t in snapshot.threads}
        for row in earlier:
            for thread in views.threads(self.mesh, me, row.agent.session_id):
                merged.setdefault(thread.thread_id, thread)
        threads = sorted(merged.values(), key=lambda t: t.last_message_id, reverse=True)
        return dataclasses.replace(snapshot, threads=tuple(threads[: views.THREAD_LIMIT]))

    def _search(self, text: str, me: str | None) -> list[ThreadSummary]:
        """Worker thread: threads whose message text contains `text` (index caught up
        first by one batch; the backlog is indexed by `index_backlog`)."""
        if len(text) < MIN_QUERY:
            return []
        self.search.catch_up(self.mesh)
        return views.summarise(self.mesh, self.search.threads_matching(text), me)

    @work(thread=True, exit_on_error=False, group="search", exclusive=True)
    def search_threads(self, text: str, me: str | None) -> None:
        try:
            hits = self._search(text, me)
        except (MeshError, sqlite3.Error) as exc:
            self.post_message(RefreshFailed(f"search: {exc}", gate=False))
            return
        self.post_message(SearchDone(text, hits))

    @work(thread=True, exit_on_error=False, group="index")
    def index_backlog(self) -> None:
        """Index every message already on the mesh, a batch at a time, off the loop."""
        try:
            while not self._indexing.is_set() and self.search.catch_up(self.mesh):
                pass
        except (MeshError, sqlite3.Error):
            return  # the next search catches up again

    def on_search_done(self, event: SearchDone) -> None:
        if event.text != self.filter_text or self._panes_gone():
            return
        self.search_hits = (event.text, event.hits)
        self._render_snapshot()

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
        if event.hits[0] == self.filter_text:
            self.search_hits = event.hits
        if previous is not None:
            self._announce_changes(previous, event.snapshot)
        self._render_snapshot(event.built)
        if self._refresh_again:
            self._refresh_again = False
            self.request_refresh()

    def on_notice(self, event: Notice) -> None:
        self.notify(event.text, severity=event.severity, markup=False)

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
        roster = self.query_one(Roster)
        roster.show(
            visible_roster(snapshot, view, self.me),
            snapshot.taken_at,
            self.me,
            self.mesh.config.flood_threshold,
            (view.about_width, built.roster) if built else None,
        )
        if not self._cursor_placed and roster.row_count:
            # the cursor starts on someone to talk to, never on the person
            self._cursor_placed = True
            if roster.selected_key == self.me:
                someone = next((k for k in roster.keys if k != self.me), None)
                if someone is not None:
                    roster.select_key(someone)
        threads = self.query_one(ThreadList)
        hits = self.search_hits[1] if self.search_hits[0] == view.filter_text else []
        threads.show(
            visible_threads(snapshot, view, hits),
            snapshot.taken_at,
            dict(view.unseen),
            (view.thread_width, built.threads) if built else None,
        )
        if self._select_thread is not None and threads.select_key(str(self._select_thread)):
            self._select_thread = None
        self._say_matches(threads.row_count, roster.row_count)
        self._update_status()

    def _say_matches(self, thread_rows: int, roster_rows: int) -> None:
        """With a filter, the panes' titles say how many match, "no matches" included."""
        threads = self.query_one("#threads")
        scope = "all" if self.scope is None else safe_line(self._agent_name(self.scope), 30)
        if not self.filter_text:
            threads.border_title = Text(f"Threads · {scope}")
            self.query_one("#roster-pane").border_title = "Agents"
            return
        needle = safe_line(self.filter_text, 30)
        threads.border_title = Text(
            f"Threads · {thread_rows} matching “{needle}”"
            if thread_rows
            else f"Threads · no matches for “{needle}”"
        )
        self.query_one("#roster-pane").border_title = Text(
            f"Agents · {roster_rows} matching" if roster_rows else "Agents · no matches"
        )

    def _update_status(self) -> None:
        counts = roster_counts(self.snapshot.roster) if self.snapshot else {}
        narrow = self.size.width < NARROW_BELOW
        top = Text(no_wrap=True, overflow="ellipsis")
        top.append(" agent-mesh ", style="bold reverse")
        top.append(" you: " if not narrow else " ", style="bright_black")
        top.append(safe_line(self.person_name, 20 if narrow else 30), style="bold")
        top.append("  ")
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
        if narrow:  # what needs a look, and the active count; zeros left out
            parts = [parts[0]] + [p for p in parts[1:] if not p[0].startswith("0 ")]
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
        self._update_title()
        self._open_messages = event.messages
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
        if not self._in_composer():
            self.query_one(ThreadList).focus()
        self.request_refresh()

    @on(DataTable.RowSelected, "#threads")
    def _thread_selected(self) -> None:
        """enter on a thread: read it (unless keys typed since moved on to the composer:
        never take focus from a draft being written)."""
        if not self._in_composer():
            self.query_one(Conversation).focus()

    def _agent_name(self, session_id: str) -> str:
        if self.snapshot is not None:
            for row in self.snapshot.roster:
                if row.agent.session_id == session_id:
                    return row.agent.agent_name
        return session_id[:8]

    # -- actions ------------------------------------------------------------------------

    def action_agent_detail(self) -> None:
        """i: everything about the agent under the roster cursor."""
        key = self.query_one(Roster).selected_key
        row = (
            next((r for r in self.snapshot.roster if r.agent.session_id == key), None)
            if self.snapshot
            else None
        )
        if row is None or self.snapshot is None:
            self.notify("Select an agent in the roster first.", markup=False)
            return
        threads = [t for t in self.snapshot.threads if row.agent.agent_name in t.participants]
        earlier = len(earlier_selves(self.snapshot, self.me)) if key == self.me else 0

        def then(choice: str | None) -> None:
            if choice == "message":
                self.action_new_message()

        self.push_screen(
            AgentDetail(row, threads, self.snapshot.taken_at, key == self.me, earlier), then
        )

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
                + [("up,down", "Move in the list")]
                + [(k, f"Agents: {d}") for k, d in keys(Roster.BINDINGS)]
                + [(k, f"Threads: {d}") for k, d in keys(ThreadList.BINDINGS)],
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
        if len(self.filter_text) >= MIN_QUERY and self.search_hits[0] != self.filter_text:
            self.search_threads(self.filter_text, self.me)

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
        yield SystemCommand(
            "Notifications", "Re-read every notice of this run", self.action_notification_log
        )
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
        self._keep_draft()
        self._target = ("send", key)
        name = self._agent_name(key)
        self.query_one(Composer).open(
            self._new_label(name), f"to:{name}", self._draft_for(f"to:{name}")
        )

    @staticmethod
    def _new_label(name: str) -> Text:
        label = Text("New message to ", style="bright_black")
        label.append(safe_line(name, 40), style="bold")
        return label

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
        self._keep_draft()
        self._target = ("reply", summary.last_message_id)
        key = f"thread:{summary.thread_id}"
        self.query_one(Composer).open(
            self._reply_label(summary.thread_id), key, self._draft_for(key)
        )

    def _reply_label(self, thread_id: int) -> Text:
        """Who a reply in `thread_id` goes to, as the mesh decides it: the sender of its
        newest message, or that message's recipient if the person sent it."""
        label = Text(f"Reply in thread #{thread_id} to ", style="bright_black")
        last = (
            self._open_messages[-1]
            if self._open_messages and self.open_thread == thread_id
            else None
        )
        if last is None:
            summary = (
                next((t for t in self.snapshot.threads if t.thread_id == thread_id), None)
                if self.snapshot
                else None
            )
            names = summary.participants if summary else ()
            label.append(" / ".join(safe_line(p, 20) for p in names) or "?", style="bold")
            return label
        mine = last.sender_session_id == self.me
        name = (
            (last.recipient_name or last.recipient_session_id[:8])
            if mine
            else (last.sender_name or last.sender_session_id[:8])
        )
        label.append(safe_line(name, 40), style="bold")
        return label

    def _draft_for(self, key: str) -> str:
        return self.drafts.get(key)

    def _keep_draft(self) -> None:
        """Remember the draft on screen under its conversation."""
        composer = self.query_one(Composer)
        if composer.key is not None and not composer.sending:
            self.drafts.set(composer.key, composer.draft)

    @on(Composer.Leave)
    def _composer_left(self) -> None:
        composer = self.query_one(Composer)
        self._keep_draft()
        try:
            self.drafts.save()
        except OSError as exc:
            self.notify(f"Could not save drafts: {exc.strerror}", severity="error", markup=False)
        composer.close()
        self.query_one(ThreadList if self.open_thread else Roster).focus()

    @on(Composer.Send)
    def _composer_send(self, event: Composer.Send) -> None:
        composer = self.query_one(Composer)
        if self._target is None or self.me is None:
            composer.refused("Nobody to send to: pick an agent (n) or a thread (r).")
            return
        self.send_draft(self.me, self._target, composer.key or "", event.text, event.priority)

    @work(thread=True, exit_on_error=False, group="send")
    def send_draft(
        self, me: str, target: tuple[str, str | int], key: str, text: str, priority: str
    ) -> None:
        """Send off the event loop; the rule's refusal comes back as SendFailed."""
        try:
            kind, where = target
            if kind == "reply":
                message = self.mesh.reply(me, int(where), text, priority=priority)
            else:
                message = self.mesh.send(me, str(where), text, priority=priority)
        except (MeshError, sqlite3.Error) as exc:
            self.post_message(SendFailed(str(exc)))
            return
        self.post_message(SendSucceeded(message, key))

    def on_send_failed(self, event: SendFailed) -> None:
        if self._panes_gone():
            return
        self.query_one(Composer).refused(event.error)

    def on_send_succeeded(self, event: SendSucceeded) -> None:
        message: Message = event.message
        if self._panes_gone():
            return
        composer = self.query_one(Composer)
        self.drafts.set(event.key, "")
        composer.sent()
        self.notify(
            f"Sent to {safe_line(message.recipient_name or message.recipient_session_id, 40)}",
            markup=False,
        )
        for warning in message.warnings:
            # Warnings name the recipient as the database has it: untrusted text.
            self.notify(safe_text(warning), severity="warning", markup=False)
        # the next send from here is a reply in the thread the message joined
        self._target = ("reply", message.message_id)
        key = f"thread:{message.thread_id}"
        label = Text(f"Reply in thread #{message.thread_id} to ", style="bright_black")
        label.append(
            safe_line(message.recipient_name or message.recipient_session_id[:8], 40),
            style="bold",
        )
        composer.retarget(label, key, self._draft_for(key))
        try:
            self.drafts.save()
        except OSError:
            pass
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
        urgent = message.priority in ("urgent", "high")
        self.notify(
            f"{sender}: {first}",
            title=f"new {message.priority} message" if urgent else "new message",
            markup=False,
            severity="warning" if urgent else "information",
        )
        if urgent:
            self._alert(message)
        self._update_title()
        self.request_refresh()

    # -- noticing ------------------------------------------------------------------------

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every toast: times made local and relative, and kept in the log (ctrl+n)."""
        now = self.mesh.clock.now()
        message = humanize_times(message, now)
        self.notice_log.append(LoggedNotice(now, title, message, severity))
        del self.notice_log[:-LOG_LIMIT]
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def _on_notify(self, event: Notify) -> None:
        """At most MAX_TOASTS on screen, the newest first (the rack sits top right, away
        from the composer)."""
        self._notifications.add(event.notification)
        shown = list(self._notifications)
        for old in shown[:-MAX_TOASTS]:
            self._unnotify(old, refresh=False)
        self._refresh_notifications()
        self.call_after_refresh(self._newest_toast_first, event.notification)

    def _newest_toast_first(self, notification: Notification) -> None:
        for rack in self.screen.query(ToastRack):
            holders = list(rack.children)
            newest = [h for h in holders if h.id == f"--textual-toast-{notification.identity}"]
            if newest and holders and holders[0] is not newest[0]:
                rack.move_child(newest[0], before=0)

    def action_notification_log(self) -> None:
        self.push_screen(NotificationLog(list(self.notice_log), self.mesh.clock.now()))

    def _update_title(self) -> None:
        """The terminal's title counts the messages to the person not yet opened."""
        unseen = sum(len(ids) for ids in self.unseen.values())
        title = terminal_title(unseen)
        if title == self.window_title:
            return
        self.window_title = title
        self._write_terminal(osc_title(title))

    def _write_terminal(self, sequence: str) -> None:
        if self.live and self._driver is not None and not self.is_headless:
            self._driver.write(sequence)

    def _alert(self, message: Message) -> None:
        """A high or urgent message to the person: the bell, and a desktop
        notification if asked for."""
        self.bell()
        sender = safe_line(message.sender_name or message.sender_session_id[:8], 30)
        title = f"mesh: {message.priority} from {sender}"
        body = safe_line(message.content, 120)
        if self.desktop_notify == "osc":
            self._write_terminal(osc_notification(title, body))
        elif self.desktop_notify == "notify-send":
            notify_send(title, body)

    # -- copying and outside programs ---------------------------------------------------

    def on_conversation_copy(self, event: Conversation.Copy) -> None:
        """OSC 52: the terminal puts it on the clipboard (tmux needs set-clipboard on)."""
        self.copy_to_clipboard(event.text)
        self.notify(f"Copied {len(event.text):,} characters", markup=False)

    def on_conversation_open_pager(self, event: Conversation.OpenPager) -> None:
        self._run_outside(os.environ.get("PAGER") or "less", safe_text(event.text), edit=False)

    @on(Composer.Edit)
    def _edit_draft(self) -> None:
        composer = self.query_one(Composer)
        edited = self._run_outside(os.environ.get("EDITOR") or "vi", composer.draft, edit=True)
        if edited is not None:
            composer.set_draft(edited)

    def _run_outside(self, command: str, text: str, *, edit: bool) -> str | None:
        """Hand the terminal to `command` on a private temporary copy of `text`; when
        editing, return the file's new text."""
        import shlex
        import subprocess

        fd, name = tempfile.mkstemp(prefix="mesh-tui-", suffix=".txt")
        path = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            try:
                with self.suspend():
                    subprocess.run([*shlex.split(command), str(path)], check=False)
            except Exception as exc:  # noqa: BLE001 - no terminal to suspend, or no such program
                self.notify(f"Could not run {command}: {exc}", severity="error", markup=False)
                return None
            return path.read_text(encoding="utf-8") if edit else None
        finally:
            path.unlink(missing_ok=True)

    # -- leaving ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """q does nothing while the composer (its draft or priority picker) has focus."""
        return not (action == "quit" and self._in_composer())

    def _in_composer(self) -> bool:
        focused = self.focused
        composer = self.query(Composer)
        return (
            focused is not None
            and bool(composer)
            and composer.first() in focused.ancestors_with_self
        )

    async def action_quit(self) -> None:
        """Quit; with unsent drafts, ask first (they are kept for next time either way)."""
        if self._in_composer():
            return
        self._keep_draft()
        unsent = self.drafts.unsent()
        if not unsent:
            self.exit()
            return
        where = "kept for next time" if self.drafts.path else "lost: this run keeps none"
        question = (
            f"{len(unsent)} unsent draft{'s' if len(unsent) != 1 else ''} "
            f"({', '.join(safe_line(k, 30) for k in unsent[:3])}{', …' if len(unsent) > 3 else ''})"
            f" will be {where}. Quit?"
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(Confirm(question), answered)

    def on_unmount(self) -> None:
        """q (or any exit) saves the drafts, marks the person stopped and ends the demo."""
        self.leave()

    def leave(self) -> None:
        """Save drafts, end the demo agents, mark the person stopped. Runs once, from
        whichever comes first: unmount, `main` after a crash, or the exit watchdog."""
        if self._left:
            return
        self._left = True
        self._demo_stop.set()
        self._indexing.set()
        try:
            self.save_drafts()
        except OSError:
            pass  # a crash or a signal must still mark the person stopped
        if self._demo_thread is not None:
            self._demo_thread.join(timeout=1)
        if self.participant is not None:
            self.participant.stop()
        elif self.me is not None:
            try:
                self.mesh.deregister(self.me)
            except (MeshError, sqlite3.Error):
                pass

    def save_drafts(self) -> Path | None:
        """Write the drafts (the one in the composer included) to their file."""
        if self.query(Composer):
            self._keep_draft()
        return self.drafts.save()

    def _handle_exception(self, error: Exception) -> None:
        """Any unhandled exception: exit 1, drafts saved to a file that is named, the
        person marked stopped, and no message text or variable values on the terminal
        (Textual's own handler prints a traceback with every local)."""
        self._return_code = 1
        if self._exception is None:  # run_test re-raises it for the test framework
            self._exception = error
            self._exception_event.set()
        lines = [crash_summary(error)]
        try:
            saved = self.save_drafts()
            if saved is not None and self.drafts.unsent():
                lines.append(f"Your unsent drafts are saved in {saved}")
        except OSError as exc:
            lines.append(f"Could not save your drafts: {exc.strerror}")
        try:
            where = self.crash_dir or Path(tempfile.mkdtemp(prefix="mesh-tui-crash-"))
            self.crash_report = write_crash_report(where / CRASH_FILE, error)
            lines.append(f"The full report (readable only by you) is in {self.crash_report}")
        except OSError:
            pass
        self.crash_text = "\n".join(lines)
        self._exit_renderables.append(Text(self.crash_text))
        self.bell()
        self._close_messages_no_wait()


def search_index_for(mesh: Mesh, state: Path) -> SearchIndex | None:
    """The person's index file for this database (None: cannot be opened; search then
    uses an index in memory)."""
    import hashlib

    name = hashlib.sha256(str(mesh.path).encode()).hexdigest()[:16]
    try:
        return SearchIndex(state / "search" / f"{name}.db")
    except (OSError, sqlite3.Error):
        return None


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
    parser.add_argument(
        "--notify",
        choices=NOTIFY_CHOICES,
        default="off",
        help="desktop notification for a high or urgent message to you: osc (OSC 9/777, "
        "shown by iTerm2, WezTerm, Windows Terminal, GNOME Terminal) or notify-send",
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
    driver.install()
    state = state_dir()
    app = MeshApp(
        mesh,
        name=args.name,
        interval=args.interval,
        demo=args.demo,
        drafts=Drafts(None if args.demo else state / DRAFTS_FILE, str(mesh.path)),
        crash_dir=state,
        desktop_notify=args.notify,
        search=None if args.demo else search_index_for(mesh, state),
    )
    try:
        app.run()
    except MeshError as exc:
        print(f"mesh-tui: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        app.leave()  # already done unless it crashed before unmount
        mesh.close()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
