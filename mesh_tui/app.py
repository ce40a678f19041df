"""mesh-tui: watch every agent and thread on the mesh, and take part as a person.

The app registers the person as a `human` participant, takes only the messages addressed
to it, and reads everything else through `mesh_core.views` (which marks nothing read).
Reads and writes run in thread workers; widgets change only in message handlers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Static, TextArea

from mesh_agents.simulated import Demo
from mesh_core import views
from mesh_core.errors import MeshError
from mesh_core.participant import Arrivals, Participant
from mesh_core.rules import CLIENT_TUI
from mesh_core.text import safe_line
from mesh_tui.control.navigation import NavigationPart
from mesh_tui.control.reading import INDEX_EVERY
from mesh_tui.control.view import NARROW_BELOW
from mesh_tui.messages import Arrived, MeshChanged, Notice
from mesh_tui.screens.confirm import Confirm
from mesh_tui.state import CRASH_FILE, crash_summary, write_crash_report
from mesh_tui.widgets.composer import Composer
from mesh_tui.widgets.conversation import Conversation
from mesh_tui.widgets.footer import FittingFooter
from mesh_tui.widgets.roster import Roster
from mesh_tui.widgets.threads import ThreadList

__all__ = ["MeshApp", "main"]

# below this the panes cannot show a row each: a message asks for a larger terminal
MIN_WIDTH, MIN_HEIGHT = 60, 16
# SIGTERM / SIGHUP: if the orderly exit has not finished by then, leave at once (seconds)
SIGNAL_EXIT_DEADLINE = 1.5

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


class MeshApp(NavigationPart):
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
        yield FittingFooter(compact=True)

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
            self.set_interval(INDEX_EVERY, self.index_backlog)
            self._exit_on_signals()
        if self.demo:
            self._demo_thread = threading.Thread(target=self._run_demo, daemon=True, name="demo")
            self._demo_thread.start()
        self.request_refresh()  # the search index starts once its result is on screen

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
                on_arrivals=self._arrived,
                on_change=self._changed,
                mark_read=False,  # read once shown: see ReadingPart._mark_shown
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

    def _arrived(self, found: Arrivals) -> None:
        """Participant thread: messages for the person were found unread (left so until
        shown). For those waiting at start, every unread one is counted here, off the
        event loop, for the summary."""
        waiting = {}
        if found.kind == "waiting" and self.me is not None:
            try:
                waiting = views.unread_by_priority(self.mesh, self.me)
            except (MeshError, sqlite3.Error):
                pass  # the summary counts the batch instead
        self.post_message(Arrived(found.kind, found.messages, waiting))

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
        was_small = screen.has_class("-too-small")
        if small and not was_small and screen is self.screen:
            self._focus_before_small = self.focused  # hiding the panes drops the focus
        screen.set_class(small, "-too-small")
        if was_small and not small:
            before, self._focus_before_small = self._focus_before_small, None
            if before is not None and before.is_attached:
                self.call_after_refresh(before.focus)  # back in the draft, say
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
        self._refresh_notifications()  # no toast over the notice, nor over the composer

    # -- leaving ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """q does nothing while the composer (its draft or priority picker) has focus;
        nor, while a text field has focus, does any app key that types a character there
        (n, r, /, …): the field takes the character, so the footer must not offer it."""
        if action == "quit" and self._in_composer():
            return False
        return not (action in _TYPED_KEY_ACTIONS and isinstance(self.focused, Input | TextArea))

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
        self._index_stop.set()
        self.search.interrupt()  # a batch in progress ends now, not when it is done
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


# The app's actions bound to keys a text field takes as characters ("slash" is "/").
_TYPED_KEY_ACTIONS = frozenset(
    b.action
    for b in MeshApp.BINDINGS
    if isinstance(b, Binding) and (len(b.key) == 1 or b.key in ("slash", "question_mark"))
)


def main(argv: list[str] | None = None) -> int:
    """The `mesh-tui` command (kept here: installed entry points name it)."""
    from mesh_tui.launch import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
