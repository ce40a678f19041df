"""Moving around: selection in the lists, the filter, scope, stopped agents, the agent
detail view, help and the command palette."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from textual import on, work
from textual.app import SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Input

from mesh_core.errors import MeshError
from mesh_core.text import safe_line
from mesh_core.views import RosterRow
from mesh_tui.control.composing import ComposingPart
from mesh_tui.format import local_stamp
from mesh_tui.messages import MeshChanged, Notice
from mesh_tui.screens.agent import AgentDetail
from mesh_tui.screens.confirm import Confirm
from mesh_tui.screens.help import HelpScreen
from mesh_tui.search import MIN_QUERY
from mesh_tui.visible import earlier_selves, visible_threads
from mesh_tui.widgets.composer import Composer
from mesh_tui.widgets.conversation import Conversation
from mesh_tui.widgets.keyed_table import KeyedTable
from mesh_tui.widgets.roster import Roster
from mesh_tui.widgets.threads import ThreadList

INTERVAL_CHOICES = (2.0, 5.0, 10.0, 30.0, 60.0)


class NavigationPart(ComposingPart):
    """Selection, the filter and the actions that move between views."""

    @on(DataTable.RowHighlighted, "#threads")
    def _thread_highlighted(self) -> None:
        key = self.query_one(ThreadList).selected_key
        thread_id = int(key) if key is not None else None
        if thread_id is None or thread_id == self.open_thread:
            return
        self.open_thread = thread_id

    def watch_open_thread(self, thread_id: int | None) -> None:
        if thread_id is not None:
            self.load_thread(thread_id)

    def watch_scope(self) -> None:
        """The thread list's title names the scope at once; its rows follow the read."""
        self._say_matches(self.query_one(ThreadList).row_count, self.query_one(Roster).row_count)
        self.request_refresh()

    def watch_show_stopped(self) -> None:
        self._render_snapshot()

    def watch_filter_text(self, text: str) -> None:
        self._render_snapshot()
        if len(text) >= MIN_QUERY and self.search_hits[0] != text:
            self.search_threads(text, self.me)

    @on(DataTable.RowSelected, "#roster")
    def _agent_selected(self) -> None:
        """enter on an agent: list its threads."""
        key = self.query_one(Roster).selected_key
        if key is None:
            return
        if not self._in_composer():
            self.query_one(ThreadList).focus()
        self.scope = key

    @on(DataTable.RowSelected, "#threads")
    def _thread_selected(self) -> None:
        """enter on a thread: read it (unless keys typed since moved on to the composer:
        never take focus from a draft being written)."""
        if not self._in_composer():
            self.query_one(Conversation).focus()

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
            elif choice == "forget":
                self.confirm_forget(row)

        self.push_screen(
            AgentDetail(row, threads, self.snapshot.taken_at, key == self.me, earlier), then
        )

    def confirm_forget(self, row: RosterRow) -> None:
        name = safe_line(row.agent.agent_name, 40)
        question = (
            f"Forget the stopped session of {name} (since "
            f"{local_stamp(row.agent.last_heartbeat, self.mesh.clock.now())})? It leaves the "
            "roster; its messages stay in their threads."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.forget_session(row.agent.session_id, name)

        self.push_screen(Confirm(question, yes="forget", no="keep"), answered)

    @work(thread=True, exit_on_error=False, group="forget")
    def forget_session(self, session_id: str, name: str) -> None:
        """Off the event loop; the core's refusal (live again, mail waiting) is shown."""
        try:
            self.mesh.forget_session(session_id)
        except (MeshError, sqlite3.Error) as exc:
            self.post_message(Notice(f"Not forgotten: {exc}", severity="error"))
            return
        self.post_message(Notice(f"Forgot the stopped session of {name}"))
        self.post_message(MeshChanged())

    def action_all_threads(self) -> None:
        self.scope = None

    def action_refresh_now(self) -> None:
        self.request_refresh()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_sections(), left=3))

    def key_sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """(pane, [(key, description)]) from the bindings of every pane; the help shows
        the first three on its left."""

        def keys(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
            return [(b.key, b.description) for b in bindings if isinstance(b, Binding)]

        app_keys = keys(self.BINDINGS) + [(self.COMMAND_PALETTE_BINDING, "Command palette")]
        return [
            ("Everywhere", app_keys),
            ("Agent details", keys(AgentDetail.BINDINGS)),
            ("Filter", [("enter", "Keep the filter, back to the roster")]),
            (
                "Agents and threads",
                keys(KeyedTable.BINDINGS)
                + [("up,down", "Move in the list")]
                + [(k, f"Agents: {d}") for k, d in keys(Roster.BINDINGS)]
                + [(k, f"Threads: {d}") for k, d in keys(ThreadList.BINDINGS)],
            ),
            ("Conversation", keys(Conversation.BINDINGS)),
            ("Composer", keys(Composer.BINDINGS) + [("tab", "Priority picker")]),
        ]

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("-visible")
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()

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
        self.query_one(Roster).focus()

    def action_toggle_stopped(self) -> None:
        self.show_stopped = not self.show_stopped

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
        self.show_stopped = True
        roster = self.query_one(Roster)
        if not roster.select_key(session_id):
            self.filter_text = ""
            self.query_one("#filter", Input).value = ""
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
