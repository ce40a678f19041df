"""Putting a snapshot on screen: the roster, the thread list, the top and status bars."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from mesh_core.text import safe_line
from mesh_core.views import roster_counts
from mesh_tui.control.core import AppCore
from mesh_tui.messages import Prebuilt, ViewState
from mesh_tui.visible import visible_roster, visible_threads
from mesh_tui.widgets.roster import Roster
from mesh_tui.widgets.threads import ThreadList

NARROW_BELOW = 100


class ViewPart(AppCore):
    """Renders the snapshot into the panes."""

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
            built.roster_shown if built else visible_roster(snapshot, view, self.me),
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
            built.threads_shown if built else visible_threads(snapshot, view, hits),
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
        scope = "all" if self.scope is None else safe_line(self._agent_name(self.scope), 30)
        if not self.filter_text:
            self._set_title("#threads", Text(f"Threads · {scope}"))
            self._set_title("#roster-pane", Text("Agents"))
            return
        needle = safe_line(self.filter_text, 30)
        progress = self.index_progress
        building = f" · text index {progress:.0%} built" if progress is not None else ""
        self._set_title(
            "#threads",
            Text(
                (
                    f"Threads · {thread_rows} matching “{needle}”"
                    if thread_rows
                    else f"Threads · no matches for “{needle}”"
                )
                + building
            ),
        )
        self._set_title(
            "#roster-pane",
            Text(f"Agents · {roster_rows} matching" if roster_rows else "Agents · no matches"),
        )

    def _set_title(self, selector: str, title: Text) -> None:
        """Set a pane's border title only when it changed: each set repaints the pane."""
        if self._bars.get(selector) == title:
            return
        self._bars[selector] = title
        self.query_one(selector).border_title = title

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
        self._set_bar("#topbar", top)
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
        self._set_bar("#statusbar", status)

    def _set_bar(self, selector: str, text: Text) -> None:
        """Repaint a one-line bar only when its text changed, and never lay the screen
        out again for it (its height is fixed): a layout re-renders every pane."""
        if self._bars.get(selector) == text:
            return
        self._bars[selector] = text
        self.query_one(selector, Static).update(text, layout=False)
