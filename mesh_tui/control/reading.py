"""Reading the mesh off the event loop: refreshes, the open thread, search, and the
messages the participant takes for the person."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import sys
import threading
import time

from rich.text import Text
from textual import work

from mesh_core import views
from mesh_core.errors import MeshError
from mesh_core.models import Message, Status
from mesh_core.present import PRESSING
from mesh_core.text import safe_line
from mesh_core.views import MeshSnapshot, ThreadSummary
from mesh_tui.control.noticing import NoticingPart
from mesh_tui.messages import (
    Arrived,
    IndexCaughtUp,
    MeshChanged,
    Prebuilt,
    RefreshFailed,
    SearchDone,
    SnapshotLoaded,
    ThreadLoaded,
    ViewState,
)
from mesh_tui.notices import MAX_TOASTS
from mesh_tui.search import MIN_QUERY
from mesh_tui.visible import earlier_selves, visible_roster, visible_threads
from mesh_tui.widgets.conversation import Conversation, first_unread
from mesh_tui.widgets.roster import roster_rows
from mesh_tui.widgets.threads import thread_rows

# A commit by another process asks for a refresh; at most this often (seconds).
CHANGE_REFRESH_GAP = 0.5
# How often the search index catches up and drops what the mesh's clean-up purged.
INDEX_EVERY = 60.0
# The index thread's niceness (Linux, where a thread has its own): a first build of a big
# mesh takes a core for a while, and the person's keys and other programs come first.
INDEX_NICENESS = 10


class ReadingPart(NoticingPart):
    """Workers that read the mesh, and the handlers of what they read."""

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
            snapshot = views.snapshot(
                self.mesh, me, scope, activity=self.activity, memo=self.agent_memo
            )
            if scope is not None and scope == me:
                snapshot = self._with_earlier_selves(snapshot, me)
            messages = views.thread_messages(self.mesh, thread_id) if thread_id else None
            taken = snapshot.taken_at
            hits = self._search(view.filter_text, me)
            shown = visible_roster(snapshot, view, me)
            listed = visible_threads(snapshot, view, hits)
            built = Prebuilt(
                view,
                roster_rows(shown, taken, me, self.mesh.config.flood_threshold, view.about_width),
                thread_rows(listed, taken, dict(view.unseen), view.thread_width),
                shown,
                listed,
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
        """Worker thread: threads whose message text contains `text`. The index catches
        up by one batch first, unless the index thread is running: it is on its way,
        and the search must not queue behind its batches (`index_progress` says how
        much the partial answer covers; a search runs again when the run ends)."""
        if len(text) < MIN_QUERY:
            return []
        if not self.indexing:
            self.search.catch_up(self.mesh)
        return views.summarise(self.mesh, self.search.threads_matching(text), me)

    @property
    def indexing(self) -> bool:
        """The index thread is running (the first build of a big mesh takes a while)."""
        return self._index_thread is not None and self._index_thread.is_alive()

    @work(thread=True, exit_on_error=False, group="search", exclusive=True)
    def search_threads(self, text: str, me: str | None) -> None:
        try:
            hits = self._search(text, me)
        except (MeshError, sqlite3.Error) as exc:
            self.post_message(RefreshFailed(f"search: {exc}", gate=False))
            return
        self.post_message(SearchDone(text, hits))

    def index_backlog(self) -> None:
        """Index every message already on the mesh, then drop what a clean-up purged
        since the last time, in a thread of its own (not a worker: worker threads are
        pooled, and this one runs at a lower priority). Run once the first screen is
        shown, then every INDEX_EVERY seconds; a run still going makes this a no-op."""
        if self.indexing or self._index_stop.is_set():
            return
        self._index_thread = threading.Thread(
            target=self._index_run, name="mesh-tui-index", daemon=True
        )
        self._index_thread.start()

    def _index_run(self) -> None:
        """The index thread: batch after batch until caught up or the app leaves."""
        if sys.platform.startswith("linux"):
            try:  # on Linux a thread id names this thread alone
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), INDEX_NICENESS)
            except OSError:
                pass
        indexed = 0
        try:
            start = self.search.indexed_up_to(self.mesh)
            goal = self.search.newest(self.mesh)
            while not self._index_stop.is_set():
                done = self.search.catch_up(self.mesh)
                if not done:
                    break
                indexed += done
                if goal > start:
                    reached = self.search.indexed_up_to(self.mesh)
                    self.index_progress = min(1.0, (reached - start) / (goal - start))
            if not self._index_stop.is_set():
                self.search.prune(self.mesh)
        except (MeshError, sqlite3.Error):
            return  # the next run (or search) catches up again
        finally:
            self.index_progress = None
        if indexed and not self._index_stop.is_set():
            self.post_message(IndexCaughtUp())

    def on_index_caught_up(self, _: IndexCaughtUp) -> None:
        """A search made while the index was being built covered only part of the
        mesh: run it again now that the index has everything."""
        if len(self.filter_text) >= MIN_QUERY and not self._panes_gone():
            self.search_threads(self.filter_text, self.me)

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
        if not self._index_started:
            # the search index's first run waits for the first screen: a big mesh's
            # first build must not compete with the read the person is waiting for
            self._index_started = True
            self.call_after_refresh(self.index_backlog)
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
            if row.agent.status is Status.STALE and was.agent.status is Status.ACTIVE:
                name = safe_line(row.agent.agent_name, 40)
                self.notify(
                    f"{name} turned stale: no heartbeat for {self.mesh.config.stale_after:g} s",
                    severity="warning",
                    markup=False,
                )
            if row.flooded and not was.flooded:
                name = safe_line(row.agent.agent_name, 40)
                self.notify(
                    f"{name} is flooded: {row.agent.unread} unread messages",
                    severity="warning",
                    markup=False,
                )

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
        self._set_title("#conversation", title)
        self._mark_shown(event.messages)

    def _mark_shown(self, messages: list[Message]) -> None:
        """The person's unread messages just put on screen are read now, and only now:
        the participant leaves them unread when it takes them (nothing is marked read
        that the person has not had on screen)."""
        screen = self.screen_stack[0] if self.screen_stack else None
        if screen is None or self.screen is not screen or screen.has_class("-too-small"):
            return  # covered or hidden: the next load after it shows again marks them
        ids = [m.message_id for m in messages if m.recipient_session_id == self.me and not m.read]
        if ids and self.me is not None:
            self.mark_read(self.me, ids)

    @work(thread=True, exit_on_error=False, group="mark")
    def mark_read(self, me: str, message_ids: list[int]) -> None:
        try:
            self.mesh.mark_read(me, message_ids)
        except (MeshError, sqlite3.Error) as exc:
            self.post_message(RefreshFailed(f"marking read: {exc}", gate=False))

    def on_arrived(self, event: Arrived) -> None:
        """Messages for the person: each counts unseen until its thread is opened. New
        ones toast one by one; the mail waiting at start (one summary, however many)
        and a hand-over's (one by one if few) do not flood the toasts or the log. The
        bell and the desktop notification come once per batch."""
        messages = event.messages
        if self._panes_gone() or not messages:
            return
        for message in messages:
            if message.thread_id != self.open_thread:
                self.unseen.setdefault(message.thread_id, set()).add(message.message_id)
        summary = (event.kind == "waiting" and len(messages) > 1) or (
            event.kind == "moved" and len(messages) > MAX_TOASTS
        )
        if summary:
            self._summarise(event)
        else:
            for message in messages:
                self._toast_message(message, moved=event.kind == "moved")
        pressing = [m for m in messages if m.priority in PRESSING]
        if pressing:
            self._alert(max(pressing, key=lambda m: m.message_id))
        self._update_title()
        self.request_refresh()

    def _toast_message(self, message: Message, moved: bool) -> None:
        sender = safe_line(message.sender_name or message.sender_session_id[:8], 30)
        first = safe_line(message.content, 80)
        urgent = message.priority in PRESSING
        kind = f"{message.priority} message" if urgent else "message"
        self.notify(
            f"{sender}: {first}",
            title=f"{kind} handed over to you" if moved else f"new {kind}",
            markup=False,
            severity="warning" if urgent else "information",
        )

    def _summarise(self, event: Arrived) -> None:
        """One toast for many messages: how many, how many pressing, where to go."""
        counts = dict(event.waiting)
        if not counts:  # moved mail, or the count failed: the batch itself
            for message in event.messages:
                counts[message.priority] = counts.get(message.priority, 0) + 1
        total = sum(counts.values())
        pressing = [f"{counts[p]} {p}" for p in PRESSING if counts.get(p)]
        what = f"{total:,} unread message{'s' if total != 1 else ''}"
        if event.kind == "moved":
            what = f"{total:,} unread messages handed over from an earlier session"
        self.notify(
            f"{what}{' — ' + ', '.join(pressing) if pressing else ''}. "
            "u opens the next unread thread, ctrl+n shows the notifications.",
            title="mail for you",
            markup=False,
            severity="warning" if pressing else "information",
        )
