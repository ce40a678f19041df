"""Textual messages posted by the worker threads to the event loop.

Workers read and write the mesh off the event loop; widgets change only in the handlers
of these messages, on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message as TextualMessage
from textual.notifications import SeverityLevel

from mesh_core.models import Message
from mesh_core.participant import ArrivalKind
from mesh_core.views import MeshSnapshot, RosterRow, ThreadSummary

from .widgets.keyed_table import Row


@dataclass(frozen=True)
class ViewState:
    """Everything besides the snapshot that the tables' cells depend on."""

    show_stopped: bool
    filter_text: str
    about_width: int
    thread_width: int
    unseen: tuple[tuple[int, int], ...]  # (thread, delivered but not opened)


@dataclass(frozen=True)
class Prebuilt:
    """Table cells a refresh worker made for `view`, and the rows they show (so the
    event loop need not filter the roster again)."""

    view: ViewState
    roster: list[Row]
    threads: list[Row]
    roster_shown: list[RosterRow]
    threads_shown: list[ThreadSummary]


@dataclass
class SnapshotLoaded(TextualMessage):
    """A refresh finished: the roster and the thread list as read at `snapshot.taken_at`."""

    snapshot: MeshSnapshot
    built: Prebuilt | None = None  # table cells made in the worker, if it made them
    hits: tuple[str, list[ThreadSummary]] = ("", [])  # (filter, threads found by text)


@dataclass
class SearchDone(TextualMessage):
    """Threads whose message text contains `text`."""

    text: str
    hits: list[ThreadSummary]


class IndexCaughtUp(TextualMessage):
    """The search index has every message that was on the mesh when its run began."""


@dataclass
class ThreadLoaded(TextualMessage):
    """The messages of the open thread."""

    thread_id: int
    messages: list[Message]


@dataclass
class RefreshFailed(TextualMessage):
    """A read of the mesh failed (database unusable, say); shown, and retried next time."""

    error: str
    gate: bool = True  # a refresh (not a thread load) failed: the next one may start


@dataclass
class Arrived(TextualMessage):
    """What one poll of the participant found for the person (see Participant.Arrivals):
    waiting at start, new, or moved here by a hand-over. `waiting`: for "waiting", every
    unread message to the person by priority (the batch holds only the newest)."""

    kind: ArrivalKind
    messages: list[Message]
    waiting: dict[str, int] = field(default_factory=dict)


@dataclass
class MeshChanged(TextualMessage):
    """Another connection committed (data_version moved): worth a refresh."""


@dataclass
class Notice(TextualMessage):
    """A toast asked for by a worker thread (which must not touch widgets)."""

    text: str
    severity: SeverityLevel = "information"


@dataclass
class SendSucceeded(TextualMessage):
    """The send landed; `key` is the conversation whose draft it was."""

    message: Message
    key: str


@dataclass
class SendFailed(TextualMessage):
    """A send was refused by a mesh rule; `error` is the rule's message."""

    error: str
