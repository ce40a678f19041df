"""Wake a participant the moment another process writes the database: the file system's
own change events (inotify, FSEvents, ReadDirectoryChangesW, kqueue) through `watchdog`.

The watch is on the database's folder, not on the files: SQLite deletes and recreates
the `-wal` file (a `TRUNCATE` checkpoint empties it, the last connection to close
deletes it), and a folder watch sees the new file like the old one. An event only says
"look now"; the participant confirms a real commit with `PRAGMA data_version` and keeps
a slow poll as the safety net. When the watch cannot start (the library is missing, the
folder cannot be watched, the watch limit is reached) it says so once in the log and the
participant polls as it did before.

`watchfiles` was measured first: its only way to wait (`RustNotify.watch`) wakes every
`step_ms` to look for changes, so it cannot be both quiet when idle and quick to wake.
`watchdog` blocks in the kernel until an event comes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# watchdog's inotify emitter logs this at ERROR when it is stopped between reading an event
# and queueing it: a harmless race of every stop, which would otherwise print on stderr
# of a `mesh send --wait` (logging's last-resort handler) each time a wait ends.
_STOP_RACE = "InotifyEmitter.queue_events() called when the thread is inactive"


class _DropStopRace(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _STOP_RACE


_STOP_RACE_FILTER = _DropStopRace()

# The files whose writes mean "maybe a commit": the database and its write-ahead log.
# (-shm is written through mmap, which raises no event; a rollback journal is not used.)
WATCHED_SUFFIXES = ("", "-wal")
# SQLite writes a commit's last -wal frame, then publishes it in the -shm wal-index
# (mmap: no event). A reader woken by that last write can read data_version a moment too
# early, and a writer descheduled in between (a loaded machine) can publish later than
# one look: the reader looks again after each of these delays, until data_version moves
# or they run out, instead of sleeping until the safety check.
SETTLE_STEPS = (0.02, 0.1, 0.5)


class Settle:
    """The looks that follow a file event data_version did not confirm (yet)."""

    def __init__(self) -> None:
        self._step: int | None = None

    @property
    def active(self) -> bool:
        return self._step is not None

    @property
    def delay(self) -> float:
        """How long to sleep at most before the next look (inf when not settling)."""
        return SETTLE_STEPS[self._step] if self._step is not None else float("inf")

    def after_look(self, *, evented: bool, changed: bool) -> None:
        """Record one look: an unconfirmed event starts the looks, a change ends them,
        a look that found nothing moves to the next delay."""
        if changed:
            self._step = None
        elif evented:
            self._step = 0
        elif self._step is not None:
            self._step = self._step + 1 if self._step + 1 < len(SETTLE_STEPS) else None


class CommitWatch:
    """Calls `wake` (on a watcher thread) for each write to the database or its -wal.

    `active` is True while events come; `events` counts the writes seen, so a caller can
    tell a commit the watch missed (a file system that raises no events for it)."""

    def __init__(self, db_path: Path, wake: Callable[[], None]) -> None:
        # Events name the folder as given to the watch; compare against the same form.
        self.folder = Path(os.path.abspath(db_path)).parent
        self._names = {os.fsencode(str(self.folder / (db_path.name + s))) for s in WATCHED_SUFFIXES}
        self._wake = wake
        self._observer: Any = None
        self._lock = threading.Lock()
        self._closed = False  # close() was called: never start again
        self.events = 0
        self.reason: str | None = None  # why the watch is not running, once it is known

    @property
    def active(self) -> bool:
        return self._observer is not None

    def start(self) -> bool:
        """Start watching; False (logged once) when file-system events are not to be had."""
        with self._lock:
            if self._observer is not None:
                return True
            if self._closed:
                return False
            try:
                from watchdog.events import FileCreatedEvent, FileModifiedEvent
                from watchdog.observers import Observer
            except ImportError as exc:
                return self._fail(f"the watchdog package is not installed ({exc})")
            if self._closed:  # closed while the library was being imported
                return False
            inotify_log = logging.getLogger("watchdog.observers.inotify")
            if _STOP_RACE_FILTER not in inotify_log.filters:
                inotify_log.addFilter(_STOP_RACE_FILTER)
            observer = Observer()
            handler: Any = _Handler(self)  # watchdog only calls its dispatch()
            try:
                observer.start()
                observer.schedule(
                    handler,
                    str(self.folder),
                    recursive=False,
                    # Only writes and new files: reads (IN_ACCESS, IN_OPEN) raise no event,
                    # or every poll would wake every participant.
                    event_filter=[FileModifiedEvent, FileCreatedEvent],
                )
            except OSError as exc:
                _stop_observer(observer)
                return self._fail(_explain(exc, self.folder))
            except (RuntimeError, ValueError) as exc:  # the library's own: poll, never crash
                _stop_observer(observer)
                return self._fail(f"{type(exc).__name__}: {exc}")
            self._observer = observer
            self.reason = None
            return True

    def stop(self) -> None:
        with self._lock:
            observer, self._observer = self._observer, None
        if observer is not None:
            _stop_observer(observer)

    def close(self) -> None:
        """Stop for good, without waiting on a `start` that is still importing the
        library: a signal handler that closes us may have interrupted an import on this
        very thread and hold the import lock that `start` waits for."""
        self._closed = True
        if not self._lock.acquire(timeout=0.5):
            return  # start() sees _closed after its import and does not start
        try:
            observer, self._observer = self._observer, None
        finally:
            self._lock.release()
        if observer is not None:
            _stop_observer(observer)

    def give_up(self, reason: str) -> None:
        """Stop for good because the events proved unreliable; polling takes over."""
        self.stop()
        self._fail(reason)

    def _fail(self, reason: str) -> bool:
        if self.reason != reason:
            log.warning(
                "agent-mesh: not watching %s for changes (%s); checking for new messages "
                "by polling instead",
                self.folder,
                reason,
            )
        self.reason = reason
        return False

    def _seen(self, path: bytes | str) -> None:
        if os.fsencode(path) in self._names:
            self.events += 1
            self._wake()


def next_on_grid(due: float, interval: float, now: float) -> float:
    """The first time after `now` on the grid `due + k * interval`: timers of equal
    intervals started together stay in one wake-up instead of drifting apart."""
    if interval <= 0:
        return now
    return due + ((now - due) // interval + 1) * interval


class SafetyCheck:
    """How long a watching loop sleeps, with no event, before it checks data_version.

    It starts at `first`. Once the watch has reported a write (this process's own
    heartbeat will do: every connection to a WAL file is on this machine, so another
    process's writes reach the same kernel and raise the same events), each round that
    finds nothing new doubles it, up to `longest`. A commit the timer found with no event
    for it (a miss) brings it back to `first`; commits that came with their events prove
    the watch works and leave it as it is. A watch that never reported anything keeps
    `first`, so a blind one is still found out (the participant's MISSES_BEFORE_POLLING)
    at that pace."""

    def __init__(self, first: float, longest: float) -> None:
        self.first = first
        self.longest = max(first, longest)
        self.interval = first
        self.proven = False

    def after_round(self, *, evented: bool, changed: bool, missed: bool) -> float:
        """The interval after a round that saw `evented` (new file events), `changed`
        (another connection committed) and `missed` (a commit with no event for it)."""
        if evented:
            self.proven = True
        if missed:
            self.interval = self.first
        elif not evented and not changed and self.proven:
            self.interval = min(self.longest, self.interval * 2)
        return self.interval

    def restart(self) -> None:
        """A new watch (the file was replaced): nothing proven about it yet."""
        self.interval = self.first
        self.proven = False


class _Handler:
    """The watchdog handler: dispatch() is all the observer calls."""

    def __init__(self, watch: CommitWatch) -> None:
        self._watch = watch

    def dispatch(self, event: Any) -> None:
        if not event.is_directory:
            self._watch._seen(event.src_path)
            if event.event_type == "moved":
                self._watch._seen(event.dest_path)


def _stop_observer(observer: Any) -> None:
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(timeout=5)
    except Exception:  # a half-started observer: nothing more to release
        log.debug("stopping the file watch failed", exc_info=True)


def _explain(exc: OSError, folder: Path) -> str:
    """What the OS said, in words a person can act on."""
    import errno

    if exc.errno == errno.ENOSPC:
        return (
            "the limit of watched folders is reached; raise it with "
            "`sysctl fs.inotify.max_user_watches=524288`"
        )
    if exc.errno == errno.EMFILE:
        return (
            "the limit of file watchers is reached; raise it with "
            "`sysctl fs.inotify.max_user_instances=1024`"
        )
    return f"{exc.strerror or exc} for {folder}"
