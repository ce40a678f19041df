"""The loop a long-running client embeds (MCP server, TUI, `mesh inbox --follow`).

It registers at once (so the session is visible before anything else happens), then in a
background thread: sleeps until the file system reports a write to the database (see
watch.py), confirms with `PRAGMA data_version` that another connection committed, and
polls the inbox at once. It checks data_version on a timer anyway (an event the watch
missed): every `watch_safety_interval`, lengthened while nothing happens up to
`watch_safety_max` (SafetyCheck); every `watch_interval` when the file system cannot be
watched or proved blind (a commit seen with no event, twice in a row). It polls the
inbox every `poll_interval` whatever happens; heartbeats every `heartbeat_interval`;
runs the shared clean-up at most once a minute. It marks the session stopped on a clean
exit and on SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, Literal, Self

from .errors import MeshError, SessionNotFound
from .mesh import Mesh
from .models import Agent, Message
from .sessions import new_session_id
from .store import database_gone
from .watch import CommitWatch, SafetyCheck, Settle, next_on_grid

log = logging.getLogger(__name__)

MAX_ERROR_BACKOFF = 5.0
# How often the loop checks that the path still names the file it has open (deleted,
# moved or replaced databases are noticed then). A watching loop does not wake for it: it
# checks in its next round, at the latest after the safety check's sleep.
FILE_CHECK_SECONDS = 2.0
# Commits in a row found by the timer with no file-system event for them: the watch is
# blind on this file system (a network share, say), so the loop polls instead.
MISSES_BEFORE_POLLING = 2
# mark_read False: at most this many new unread messages one poll reads.
PEEK_LIMIT = 500

ArrivalKind = Literal["waiting", "new", "moved"]


@dataclass(frozen=True)
class Arrivals:
    """What one poll found for a client that leaves mail unread (mark_read=False).

    `kind`: "waiting", unread when the session started (the first look: the newest
    PEEK_LIMIT of them); "new", arrived since the last poll; "moved", mail a
    hand-over moved to this session since (older ids than the newest seen: a stopped
    session of the workspace left it unread)."""

    kind: ArrivalKind
    messages: list[Message]


class Participant:
    """One session on the mesh, kept alive by a background thread."""

    def __init__(
        self,
        mesh: Mesh,
        name: str | None = None,
        kind: str = "agent",
        *,
        client: str | None = None,
        description: str | None = None,
        cwd: str | None = None,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        on_message: Callable[[Message], None] | None = None,
        on_arrivals: Callable[[Arrivals], None] | None = None,
        on_change: Callable[[], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        take_inbox: bool = True,
        mark_read: bool = True,
        file_events: bool = True,
        acknowledge: bool = False,
    ) -> None:
        """`take_inbox` False: no inbox polls at all. `acknowledge=True`: the loop hands
        each unread message to `on_message` once, marking nothing read; the consumer
        calls `acknowledge(id)` once it has handed the message on (written out), and only
        then is it marked read. A message never acknowledged stays unread for the next
        route (docs/contract.md §4.12). `mark_read=False`: each new unread message is
        handed on once and left unread, with no acknowledgement awaited, for a client
        that marks it read itself much later, once a person has seen it (mesh-tui); a
        poll reads only what arrived since the last one (ids above the highest handed
        on), never the whole unread inbox, which may hold thousands. The first poll
        hands on the newest PEEK_LIMIT; mail moved to this session later by a hand-over
        (older ids) is not handed on, but stays unread in its threads."""
        self.mesh = mesh
        self._register_args: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "client": client,
            "description": description,
            "cwd": cwd,
            # Chosen now, not by `register`: a signal that lands after the row is
            # committed but before `register` returns can still mark it stopped.
            "session_id": session_id or new_session_id(),
            "metadata": metadata,
        }
        self.on_message = on_message
        self.on_arrivals = on_arrivals
        self.on_change = on_change
        self.on_error = on_error
        self.take_inbox = take_inbox
        self.mark_read = mark_read
        self._handed_up_to: int | None = None  # mark_read False: highest id handed on
        # mark_read False: the unread ids at or below _handed_up_to already handed on or
        # waiting at the first look; one unread and not in it was moved here (hand-over)
        self._known: set[int] = set()
        self._workspace: frozenset[tuple[str, str]] | None = None  # its sessions' states
        self.acknowledges = acknowledge
        self._offered: set[int] = set()  # handed to on_message, until gone from the inbox
        self._acked: set[int] = set()  # of those, acknowledged (marked read)
        self._offered_lock = threading.Lock()
        self.agent: Agent | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # the loop's one sleep: set to end it early
        self._poll_asked = False  # poll_now() was called (not merely a file event)
        # Created here, started by the loop: the library's import stays off the path
        # between process start and the session being registered.
        self.watch: CommitWatch | None = (
            CommitWatch(mesh.path, self._wake.set) if file_events else None
        )
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._registering = False  # start() has begun writing the session
        self._failing: str | None = None  # the error being reported, until recovery
        self._rejoin = False  # the database was replaced: register in the new one

    @property
    def session_id(self) -> str:
        if self.agent is None:
            raise SessionNotFound("(not started)")
        return self.agent.session_id

    def start(self, *, loop: bool = True) -> Agent:
        """Register now, synchronously, then keep the session alive in the background
        (with `loop=False`, only from `start_loop()` on)."""
        self._registering = True
        self.agent = self.mesh.register(**self._register_args)
        if loop:
            self.start_loop()
        return self.agent

    def start_loop(self) -> None:
        """Start the background loop, once, after `start`."""
        if self._thread is not None or self._stopped or self.agent is None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"mesh-participant-{self.agent.agent_name}", daemon=True
        )
        self._thread.start()

    def acknowledge(self, message_id: int) -> bool:
        """The consumer handed this offered message on: mark it read (True if it is read
        now; False if it was no longer this session's to mark)."""
        marked = message_id in self.mesh.mark_read(self.session_id, [message_id])
        with self._offered_lock:
            self._acked.add(message_id)
            drained = self._offered <= self._acked
        if drained:
            self.poll_now()  # more may wait beyond the batch: offer them now
        return marked

    def poll_now(self) -> None:
        """Ask the loop to poll at once (after this process sent something, say)."""
        self._poll_asked = True
        self._wake.set()

    @property
    def watching(self) -> bool:
        """True while the loop sleeps until the file system reports a write."""
        return self.watch is not None and self.watch.active

    def stop(self, deregister: bool = True) -> None:
        """End the loop; mark the session stopped (a clean exit)."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            # Bounded: the loop may wait on an import lock that this thread's signal
            # handler holds; it is a daemon thread and the session is deregistered below.
            self._thread.join(timeout=2)
        if self.watch is not None:
            self.watch.close()
        if deregister and self._registering:
            # Also when a signal handler stops us inside start(): the row may be
            # committed already. Before the commit the row does not exist (or the
            # transaction is still open on this thread): the error is only logged.
            sid = self._register_args["session_id"]
            try:
                self.mesh.deregister(sid)
            except (MeshError, sqlite3.Error) as exc:
                log.warning("could not mark session %s stopped: %s", sid, exc)

    def __enter__(self) -> Self:
        if self.agent is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def install_signal_handlers(self) -> None:
        """SIGTERM (and SIGHUP) end the process cleanly: the session is marked stopped."""
        if threading.current_thread() is not threading.main_thread():
            return

        def handle(signum: int, frame: FrameType | None) -> None:
            self.stop()
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, handle)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, handle)

    # -- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        cfg = self.mesh.config
        if self.watch is not None:
            self.watch.start()
        now = time.monotonic()
        next_poll = now  # poll at once: mail may be waiting (hand-over)
        next_beat = now + cfg.heartbeat_interval
        next_cleanup = now
        next_file_check = now + FILE_CHECK_SECONDS
        last_version: int | None = None
        events_seen = 0
        misses = 0
        settle = Settle()  # looks after an event data_version did not confirm (yet)
        backoff = 0.0
        safety = SafetyCheck(cfg.watch_safety_interval, cfg.watch_safety_max)
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_file_check or self._failing is not None:
                    next_file_check = now + FILE_CHECK_SECONDS
                    if self._check_file():
                        safety.restart()
                self._wake.clear()  # whatever woke us, data_version says what changed
                asked, self._poll_asked = self._poll_asked, False
                version = self.mesh.data_version()
                now = time.monotonic()
                changed = last_version is not None and version != last_version
                last_version = version
                evented = missed = False
                if self.watch is not None and self.watch.active:
                    evented = self.watch.events != events_seen
                    if not settle.active:  # a settle look's find is an earlier event's commit
                        missed = changed and not evented
                        misses = self._audit_watch(changed, events_seen, misses)
                    events_seen = self.watch.events
                    safety.after_round(evented=evented, changed=changed, missed=missed)
                settle.after_look(evented=evented, changed=changed)
                if changed or asked or now >= next_poll:
                    self._poll(timer=now >= next_poll)
                    if now >= next_poll:  # a poll for a commit keeps the timer's grid
                        next_poll = next_on_grid(next_poll, cfg.poll_interval, now)
                    if (changed or asked) and self.on_change is not None:
                        try:
                            self.on_change()
                        except Exception:  # a callback's bug must not kill the session
                            log.exception("on_change callback failed")
                if now >= next_beat:
                    try:
                        self.mesh.heartbeat(self.session_id)
                    except SessionNotFound:  # another client deleted our row: rejoin
                        self.agent = self.mesh.register(**self._register_args)
                    next_beat = next_on_grid(next_beat, cfg.heartbeat_interval, now)
                if now >= next_cleanup:
                    self.mesh.maybe_cleanup()
                    next_cleanup = next_on_grid(next_cleanup, cfg.cleanup_every, now)
                backoff = 0.0
                if self._failing is not None:
                    log.info("mesh participant: working again after: %s", self._failing)
                    self._failing = None
            except Exception as exc:  # the loop must outlive any bug or odd row
                backoff = min(MAX_ERROR_BACKOFF, max(0.1, backoff * 2))
                # A bug, or a value nothing decoded: keep the trace in the log, and keep
                # beating and polling (a frozen heartbeat would look alive).
                unexpected = not isinstance(exc, MeshError | sqlite3.Error | OSError)
                if unexpected and f"{type(exc).__name__}: {exc}" != self._failing:
                    log.exception("mesh participant: unexpected error (retrying)")
                self._report(exc)
                # Retry the writes too, so that "working again" means a write worked
                # (a full or read-only disk still answers reads).
                next_poll = next_beat = 0.0
                self._stop.wait(backoff)
                continue
            if self.watching:
                # Sleep until an event, or until the next thing due: no wake-up for nothing.
                due = min(next_poll, next_beat, next_cleanup)
                timeout = min(safety.interval, max(0.0, due - time.monotonic()))
                timeout = min(timeout, settle.delay)
            else:
                timeout = cfg.watch_interval
            self._wake.wait(timeout)

    def _audit_watch(self, changed: bool, events_before: int, misses: int) -> int:
        """Count commits the timer found with no file event since the last check; after
        MISSES_BEFORE_POLLING in a row the watch is blind here and polling takes over."""
        assert self.watch is not None
        if not changed:
            return misses
        if self.watch.events != events_before:
            return 0
        misses += 1
        if misses >= MISSES_BEFORE_POLLING:
            self.watch.give_up(
                "another process's commits raised no file-system event (a network or "
                "unusual file system?)"
            )
        return misses

    def _report(self, exc: Exception) -> None:
        """Log and hand on an error once per episode, not on every retry: a database
        that stays unusable for an hour must not flood the log or the callback."""
        text = f"{type(exc).__name__}: {exc}"
        if text == self._failing:
            return
        self._failing = text
        log.warning("mesh participant: %s (retrying until it works)", exc)
        if self.on_error is not None:
            try:
                self.on_error(exc)
            except Exception:  # a callback's bug must not kill the session
                log.exception("on_error callback failed")

    def _check_file(self) -> bool:
        """Notice a database deleted, moved or replaced under us: SQLite would go on
        using the old, unlinked file and nobody would see this session. Wait while the
        path is empty (it is not ours to recreate); once a file is back, reopen it and
        register again so the session is visible there. True when it reopened the file."""
        reopened = False
        if self.mesh.file_changed():
            if not self.mesh.path.exists():
                raise database_gone(self.mesh.path)
            self._rejoin = True  # stays set until a register in the new file worked
            self._handed_up_to = None  # another file: its ids start again
            self._known = set()
            self._workspace = None
            self.mesh.reconnect()
            reopened = True
            if self.watch is not None and self.watch.reason is None:
                self.watch.stop()  # the folder may be a new one too: watch it afresh
                self.watch.start()
        if self._rejoin:
            self.agent = self.mesh.register(**self._register_args)
            self._rejoin = False
            self._wake.set()  # poll at once: hand-over may have brought mail
        return reopened

    def _poll(self, timer: bool = False) -> None:
        if not self.take_inbox:
            return
        if self.acknowledges:
            self._hand_on(self._offer())
        elif self.mark_read:
            self._hand_on(self.mesh.inbox(self.session_id))
        else:
            for found in self._look(timer):
                if self.on_arrivals is not None:
                    try:
                        self.on_arrivals(found)
                    except Exception:  # a callback's bug must not kill the session
                        log.exception("on_arrivals callback failed")
                else:
                    self._hand_on(found.messages)

    def _hand_on(self, taken: list[Message]) -> None:
        for message in taken:
            if self.on_message is not None:
                try:
                    self.on_message(message)
                except Exception:  # a callback's bug must not kill the session
                    log.exception("on_message callback failed for message %s", message.message_id)

    def _look(self, timer: bool) -> list[Arrivals]:
        """mark_read False: the unread messages not handed on yet. Those above the newest
        id seen are new; below it, only a hand-over brings any, so they are looked for
        (the unread ids, compared with the known ones) when a session of the workspace
        changed state, and on the timer's poll in case another client moved mail some
        other way."""
        sid = self.session_id
        name = self.agent.agent_name if self.agent is not None else None
        if self._handed_up_to is None:  # the first look: everything unread is waiting
            workspace = self.mesh.workspace_states(name) if name else None
            newest_id = self.mesh.max_message_id()
            self._known = self.mesh.unread_ids_up_to(sid, newest_id)
            taken = self.mesh.unread_after(sid, None, PEEK_LIMIT)
            self._known.update(m.message_id for m in taken)
            self._handed_up_to = max([newest_id, *(m.message_id for m in taken)])
            self._workspace = workspace
            return [Arrivals("waiting", taken)] if taken else []
        found: list[Arrivals] = []
        taken = self.mesh.unread_after(sid, self._handed_up_to, PEEK_LIMIT)
        if taken:
            self._handed_up_to = max([self._handed_up_to, *(m.message_id for m in taken)])
            self._known.update(m.message_id for m in taken)
            if len(taken) >= PEEK_LIMIT:
                self.poll_now()  # a full page: the rest comes with the next poll
            found.append(Arrivals("new", taken))
        workspace = self.mesh.workspace_states(name) if name else None
        if timer or workspace != self._workspace:
            self._workspace = workspace
            unread = self.mesh.unread_ids_up_to(sid, self._handed_up_to)
            moved = sorted(unread - self._known)[-PEEK_LIMIT:]
            self._known = unread  # read ones leave it: it stays the size of the inbox
            arrived = self.mesh.unread_by_id(sid, moved) if moved else []
            if arrived:
                found.append(Arrivals("moved", arrived))
        return found

    def _offer(self) -> list[Message]:
        """The unread messages not yet handed to on_message (acknowledge mode), bounded
        like a take. Offered ones taken elsewhere or expired are forgotten; a message
        that cannot be built is skipped (logged), never marked read."""
        batch = self.mesh.offer(self.session_id, lambda m: "")
        for note in batch.set_aside:
            log.warning("mesh participant: %s", note)
        with self._offered_lock:
            waiting = {m.message_id for m in batch.messages}
            # Forget what left the inbox: an acknowledged message as soon as it is gone
            # (this read began after its mark, or it would still be here), any other only
            # when the batch is the whole inbox (taken elsewhere, or expired).
            gone = self._offered - waiting
            self._offered -= gone if not batch.more else gone & self._acked
            self._acked &= self._offered
            fresh = [m for m in batch.messages if m.message_id not in self._offered]
            self._offered.update(m.message_id for m in fresh)
        return fresh
