"""The app's state, and the small look-ups every part of it shares.

MeshApp is assembled from parts (mesh_tui/control/): each is an App subclass so that
Textual's `@on` handlers and `@work` workers work in it, and each builds on the ones
below: core -> view -> noticing -> reading -> composing -> navigation -> MeshApp.
"""

from __future__ import annotations

import threading
from pathlib import Path

from rich.text import Text
from textual.app import App
from textual.reactive import var
from textual.timer import Timer
from textual.widget import Widget

from mesh_core import views
from mesh_core.identity import default_person_name
from mesh_core.mesh import Mesh
from mesh_core.models import Message
from mesh_core.participant import Participant
from mesh_core.rows import AgentMemo
from mesh_core.views import MeshSnapshot, ThreadSummary
from mesh_tui.notices import LoggedNotice
from mesh_tui.search import SearchIndex
from mesh_tui.state import Drafts
from mesh_tui.target import Target
from mesh_tui.widgets.composer import Composer
from mesh_tui.widgets.conversation import Conversation


class AppCore(App[None]):
    """State shared by every part of the app.

    The view state is reactive: setting it re-renders or re-reads (the watchers are in
    NavigationPart), so no action has to remember to. `init=False`: nothing runs before
    the panes exist."""

    scope: var[str | None] = var(None, init=False, always_update=True)
    """Session whose threads are listed; None = all. Choosing it again reads again."""
    open_thread: var[int | None] = var(None, init=False)
    """The thread in the conversation pane."""
    show_stopped: var[bool] = var(True, init=False)
    filter_text: var[str] = var("", init=False)

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
        self.agent_memo = AgentMemo()  # session rows decoded before, reused while unchanged
        self.unseen: dict[int, set[int]] = {}  # thread -> delivered, not yet opened
        self._open_messages: list[Message] = []  # of open_thread, as last loaded
        self._marker: tuple[int, int | None] | None = None  # (thread, first unread id)
        self._target: Target | None = None
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
        self._index_stop = threading.Event()  # set: stop indexing (the app is leaving)
        self._conversation_pane: Conversation | None = None
        self._bars: dict[str, Text] = {}  # bars and pane titles, as last shown
        # The thread indexing message text (one at a time; see ReadingPart.index_backlog),
        # how far its current run has got (a fraction; None: not running), and whether
        # the first run has been started (after the first screen).
        self._index_thread: threading.Thread | None = None
        self.index_progress: float | None = None
        self._index_started = False
        self._toast_heights: dict[str, int] = {}  # toast holder id -> rows it takes
        self._focus_before_small: Widget | None = None  # focus when the screen got too small

    def _panes_gone(self) -> bool:
        """Worker results that arrive while the app shuts down have no panes to go to.
        (The pane found last time is asked first: a query walks the whole DOM.)"""
        pane = self._conversation_pane
        if pane is not None and pane.is_attached:
            return False
        found = self.query(Conversation)
        self._conversation_pane = found.first() if found else None
        return self._conversation_pane is None

    def _agent_name(self, session_id: str) -> str:
        if self.snapshot is not None:
            for row in self.snapshot.roster:
                if row.agent.session_id == session_id:
                    return row.agent.agent_name
        return session_id[:8]

    def _in_composer(self) -> bool:
        focused = self.focused
        composer = self.query(Composer)
        return (
            focused is not None
            and bool(composer)
            and composer.first() in focused.ancestors_with_self
        )
