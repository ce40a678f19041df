"""`Mesh`: the public Python API, a small facade over the core's modules.

Each rule lives once, in `rules` (validation, ranking, limits), `sessions`
(participants), `messaging` (send, reply, take, read), `maintenance` (clean-up, status);
`store` holds the connections. The CLI, the MCP server, the hooks and the TUI call these
methods and nothing below them. See docs/contract.md §6 for the API.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Self

from . import host_sessions, mailbox, maintenance, messaging, sessions
from .clock import Clock
from .config import MeshConfig
from .models import Agent, CleanupReport, Message, Status
from .rows import AgentMemo
from .rules import BROADCAST, RateLimit, reported_status
from .sessions import SessionClaim
from .store import Store

__all__ = ["BROADCAST", "Mesh", "SessionClaim"]


class Mesh:
    """A handle on one mesh database. Thread-safe: each thread gets its own connection."""

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        config: MeshConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = Store(db_path, config, clock)

    # -- the store --------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.store.path

    @property
    def config(self) -> MeshConfig:
        return self.store.config

    @property
    def clock(self) -> Clock:
        return self.store.clock

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections must stay on one thread)."""
        return self.store.connection()

    def file_changed(self) -> bool:
        """True when the path no longer names the file this Mesh holds open."""
        return self.store.file_changed()

    def reconnect(self) -> None:
        """Drop every connection; each thread opens the path afresh on its next call."""
        self.store.reconnect()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def data_version(self) -> int:
        """Changes whenever another connection commits: the cheap "anything new?" check."""
        return self.store.data_version()

    def now(self) -> str:
        return self.store.now()

    # -- participants -----------------------------------------------------------------

    def register(
        self,
        name: str | None = None,
        kind: str = "agent",
        *,
        client: str | None = None,
        description: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        repo: str | None = None,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Agent:
        """Register (or re-activate) a session; hand it the workspace's waiting mail."""
        return sessions.register(
            self.store,
            name,
            kind,
            client=client,
            description=description,
            cwd=cwd,
            repo=repo,
            session_id=session_id,
            metadata=metadata,
        )

    def heartbeat(self, session_id: str) -> None:
        """Mark `session_id` alive; a stopped session that beats again is active again."""
        sessions.heartbeat(self.store, session_id)

    def deregister(self, session_id: str) -> None:
        """A clean exit: stopped at once; its unread mail now expires in 24 h."""
        sessions.deregister(self.store, session_id)

    def forget_session(self, session_id: str) -> Agent:
        """Remove a stopped session from the roster; its messages stay. Refused while it
        is not stopped or mail waits for it (see sessions.forget_session)."""
        return sessions.forget_session(self.store, session_id)

    def session_for(
        self,
        name: str,
        kind: str = "cli",
        client: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> SessionClaim:
        """Act as workspace `name`: its session (the active one first), else a new one."""
        return sessions.session_for(self.store, name, kind, client, cwd)

    def host_session(
        self, name: str | None, host_pid: int, host_session_id: str | None = None
    ) -> Agent | None:
        """The live session (of workspace `name`, or any) that the hooks of host session
        `host_session_id` of host tool `host_pid` act as (mesh_core.host_sessions)."""
        return host_sessions.hook_host_session(self.store, name, host_pid, host_session_id)

    def host_sessions(self, name: str | None, host_pid: int) -> list[Agent]:
        """Every live session (of workspace `name`, or any) the host tool `host_pid` runs."""
        return host_sessions.host_sessions(self.store, name, host_pid)

    def bind_host_session(
        self, session_id: str, host_pid: int, host_session_id: str, *, bound: bool = True
    ) -> list[str]:
        """`session_id` runs host session `host_session_id`: record it and take over the
        sessions its hooks registered; returns their ids."""
        return host_sessions.bind_host_session(
            self.store, session_id, host_pid, host_session_id, bound=bound
        )

    def agent(self, session_id: str) -> Agent:
        return sessions.agent(self.store, session_id)

    def agents(self, status: str = "active", memo: AgentMemo | None = None) -> list[Agent]:
        """The roster: active | stale | stopped | all | online (active and stale).
        `memo`: a caller's decode cache, for one that reads the roster again and again."""
        return sessions.agents(self.store, status, memo)

    def reported_status(self, stored: str | None, last_heartbeat: str | None) -> Status:
        return reported_status(stored, last_heartbeat, self.clock.now(), self.config)

    def unread_counts(self) -> dict[str, int]:
        """Unread messages per recipient session."""
        return sessions.unread_counts(self.store)

    def names(self, session_ids: Iterable[str]) -> dict[str, str | None]:
        """Workspace names of these sessions."""
        return sessions.names(self.store, session_ids)

    # -- messages ---------------------------------------------------------------------

    def dispatch(
        self,
        sender_session_id: str,
        target: str,
        content: str,
        priority: str = "normal",
        new_thread: bool = False,
    ) -> list[Message]:
        """Send to a session id or workspace name, or `*` for everyone active: every copy."""
        return messaging.send(self.store, sender_session_id, target, content, priority, new_thread)

    def send(
        self,
        sender_session_id: str,
        target: str,
        content: str,
        priority: str = "normal",
        new_thread: bool = False,
    ) -> Message:
        """Send `content` to a session id or workspace name. `*` broadcasts and returns
        the first copy (`dispatch` and `broadcast` return all of them)."""
        copies = messaging.send(
            self.store, sender_session_id, target, content, priority, new_thread
        )
        return copies[0]

    def broadcast(
        self,
        sender_session_id: str,
        content: str,
        priority: str = "normal",
        new_thread: bool = False,
    ) -> list[Message]:
        """One copy to every active session but the sender, each under every rule."""
        return self.dispatch(sender_session_id, BROADCAST, content, priority, new_thread)

    def reply(
        self, sender_session_id: str, message_id: int, content: str, priority: str = "normal"
    ) -> Message:
        """Reply in the thread of `message_id`, to the other party of that message."""
        return messaging.reply(self.store, sender_session_id, message_id, content, priority)

    def inbox(self, session_id: str) -> list[Message]:
        """Take this session's unread, unexpired messages, marking exactly those read."""
        return mailbox.inbox(self.store, session_id)

    def take(
        self,
        session_id: str,
        render: Callable[[Message], str],
        max_count: int | None = None,
        max_bytes: int | None = None,
    ) -> mailbox.Take:
        """A bounded take: render each message inside the transaction that marks it read."""
        return mailbox.take(self.store, session_id, render, max_count, max_bytes)

    def offer(
        self,
        session_id: str,
        render: Callable[[Message], str],
        max_count: int | None = None,
        max_bytes: int | None = None,
    ) -> mailbox.Take:
        """The batch a take would hand over, rendered, marking nothing read."""
        return mailbox.offer(self.store, session_id, render, max_count, max_bytes)

    def hand_over(
        self,
        session_id: str,
        render: Callable[[Message], str],
        deliver: Callable[[mailbox.Take], bool],
        max_count: int | None = None,
        max_bytes: int | None = None,
    ) -> tuple[mailbox.Take, bool]:
        """Offer a bounded batch to `deliver`; mark it read only if it says delivered."""
        return mailbox.hand_over(self.store, session_id, render, deliver, max_count, max_bytes)

    def mark_read(self, session_id: str, message_ids: Iterable[int]) -> list[int]:
        """Mark messages read once their reader has them (a host's ack, a drained pipe)."""
        return mailbox.mark_read(self.store, session_id, message_ids)

    def unread_after(self, session_id: str, after: int | None, limit: int = 100) -> list[Message]:
        """Unread messages to `session_id` with ids above `after` (None: the newest),
        marking nothing read."""
        return mailbox.unread_after(self.store, session_id, after, limit)

    def unread_ids_up_to(self, session_id: str, up_to: int) -> set[int]:
        """Ids of the unread messages to `session_id` at or below `up_to`."""
        return mailbox.unread_ids_up_to(self.store, session_id, up_to)

    def unread_by_id(self, session_id: str, message_ids: Sequence[int]) -> list[Message]:
        """Those of these messages still unread for `session_id`, marking nothing read."""
        return mailbox.unread_by_id(self.store, session_id, message_ids)

    def max_message_id(self) -> int:
        """The highest message id on the mesh (0 when none)."""
        return mailbox.max_message_id(self.store)

    def workspace_states(self, name: str) -> frozenset[tuple[str, str]]:
        """(session id, status) of workspace `name`'s sessions (see sessions.workspace_states)."""
        return sessions.workspace_states(self.store, name)

    def peek_inbox(self, session_id: str, limit: int = 100) -> list[Message]:
        """This session's unread messages in delivery order, marking nothing read."""
        return mailbox.peek_inbox(self.store, session_id, limit)

    def get(self, message_id: int) -> Message:
        return mailbox.get(self.store, message_id)

    def thread(self, message_id: int) -> list[Message]:
        """The whole thread holding `message_id`, root first. Marks nothing read."""
        return mailbox.thread(self.store, message_id)

    def take_reply(self, session_id: str, message_id: int) -> Message | None:
        """The reply to `message_id` that reached `session_id`, if any, marked read."""
        return mailbox.take_reply(self.store, session_id, message_id)

    def wait_for_reply(
        self,
        session_id: str,
        message_id: int,
        timeout: float = 60.0,
        should_stop: Callable[[], bool] | None = None,
    ) -> Message | None:
        """Block until a reply to `message_id` reaches `session_id` (None on time-out)."""
        return mailbox.wait_for_reply(self.store, session_id, message_id, timeout, should_stop)

    # -- clean-up and status ----------------------------------------------------------

    def cleanup(self, *, only_if_due: bool = False) -> CleanupReport:
        """Stop silent sessions, purge old read mail, drop expired unread mail."""
        return maintenance.cleanup(self.store, only_if_due=only_if_due)

    def maybe_cleanup(self) -> CleanupReport:
        """Run the clean-up unless any participant ran it in the last minute."""
        return maintenance.maybe_cleanup(self.store)

    def rate_limit(self) -> RateLimit:
        """The mesh's rate limit: its file's, the same for every participant."""
        return messaging.read_rate_limit(self.store)

    def set_rate_limit(self, limit: int, window: float = 60.0) -> RateLimit:
        """Change the mesh's rate limit for everyone on the file (an operator's call)."""
        return messaging.set_rate_limit(self.store, limit, window)

    def stats(self) -> dict[str, Any]:
        """What `mesh status` shows."""
        return maintenance.stats(self.store)
