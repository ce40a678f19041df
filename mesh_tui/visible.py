"""Which roster rows and threads the panes show for a view: plain functions, used by
the refresh worker (to build cells off the loop) and by the event loop alike."""

from __future__ import annotations

from collections.abc import Iterable

from mesh_core.models import Status
from mesh_core.views import MeshSnapshot, RosterRow, ThreadSummary
from mesh_tui.messages import ViewState


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
