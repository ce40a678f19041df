"""The file-system wake (mesh_core/watch.py): a participant sleeps until the database is
written, and still delivers when the watch cannot start or proves blind.

Every delivery test gives the timers (the data_version check, the inbox poll) a minute,
so a message arriving within the deadline was woken by a file event; the fall-back tests
shorten them again and check that polling took over. Commits come from real processes
on a real file: a Python one using mesh_core, and the plain `sqlite3` shell.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mesh_core import Mesh, MeshConfig, Message, Participant
from mesh_core.watch import CommitWatch, SafetyCheck

DEADLINE = 10.0  # far below every timer of SLOW: only an event delivers in time
SLOW = MeshConfig(
    heartbeat_interval=60.0, poll_interval=60.0, watch_interval=60.0, watch_safety_interval=60.0
)
POLLING = MeshConfig(
    heartbeat_interval=60.0, poll_interval=60.0, watch_interval=0.02, watch_safety_interval=0.2
)

SEND = """
import sys
from mesh_core import Mesh
mesh = Mesh(sys.argv[1])
me = mesh.register("outsider", cwd="/")
for text in sys.argv[3:]:
    print(mesh.send(me.session_id, sys.argv[2], text, new_thread=True).message_id, flush=True)
"""

PLAIN_COMMIT = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
conn.execute("INSERT INTO t VALUES (1)")
conn.commit()
conn.close()
"""


def send_from_another_process(db: Path, to: str, *texts: str) -> list[int]:
    done = subprocess.run(
        [sys.executable, "-c", SEND, str(db), to, *texts],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [int(line) for line in done.stdout.split()]


class Inbox:
    """What a participant's on_message received, with a wait on it."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = threading.Condition()

    def __call__(self, message: Message) -> None:
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = DEADLINE) -> list[Message]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)


Start = Callable[..., tuple[Participant, "Inbox"]]


@pytest.fixture
def start() -> Iterator[Start]:
    """Start a participant on `db` with `config`; stopped (and its Mesh closed) after."""
    started: list[tuple[Participant, Mesh]] = []

    def run(db: Path, name: str, config: MeshConfig, **kwargs: object) -> tuple[Participant, Inbox]:
        mesh = Mesh(db, config=config)
        inbox = Inbox()
        participant = Participant(mesh, name, cwd="/", on_message=inbox, **kwargs)  # type: ignore[arg-type]
        started.append((participant, mesh))
        participant.start()
        wait(lambda: participant.watching or participant.watch is None or participant.watch.reason)
        return participant, inbox

    yield run
    for participant, mesh in started:
        participant.stop()
        mesh.close()


def wait(condition: Callable[[], object], timeout: float = DEADLINE) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.01)


# -- the watch itself -------------------------------------------------------------------


def test_watch_fires_for_a_commit_from_another_process(tmp_path: Path) -> None:
    db = tmp_path / "mesh.db"
    Mesh(db).close()
    woken = threading.Event()
    watch = CommitWatch(db, woken.set)
    assert watch.start()
    try:
        subprocess.run([sys.executable, "-c", PLAIN_COMMIT, str(db)], check=True, timeout=60)
        assert woken.wait(DEADLINE), "no wake for another process's commit"
        assert watch.events > 0
    finally:
        watch.stop()


def test_watch_survives_the_wal_deleted_and_recreated(tmp_path: Path) -> None:
    """The last connection to close deletes -wal; the next writer creates a new one. A
    watch on the -wal file itself would go deaf here; the folder watch does not."""
    db = tmp_path / "mesh.db"
    Mesh(db).close()
    woken = threading.Event()
    watch = CommitWatch(db, woken.set)
    assert watch.start()
    try:
        for round_ in range(3):
            woken.clear()
            subprocess.run([sys.executable, "-c", PLAIN_COMMIT, str(db)], check=True, timeout=60)
            assert not Path(f"{db}-wal").exists(), "the closing writer should delete -wal"
            assert woken.wait(DEADLINE), f"no wake after -wal was recreated (round {round_})"
    finally:
        watch.stop()


def test_watch_ignores_other_files_in_the_folder(tmp_path: Path) -> None:
    db = tmp_path / "mesh.db"
    Mesh(db).close()
    woken = threading.Event()
    watch = CommitWatch(db, woken.set)
    assert watch.start()
    try:
        (tmp_path / "notes.txt").write_text("not the database")
        (tmp_path / "other.db-wal").write_text("nor its log")
        time.sleep(0.3)  # events, if they were taken, arrive in well under a millisecond
        assert not woken.is_set() and watch.events == 0
    finally:
        watch.stop()


def test_an_unwatchable_path_says_so_once_and_reports_false(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-such-folder" / "mesh.db"
    watch = CommitWatch(missing, lambda: None)
    with caplog.at_level(logging.WARNING, logger="mesh_core.watch"):
        assert watch.start() is False
        assert watch.start() is False
    assert not watch.active and watch.reason and "no-such-folder" in caplog.text
    assert len([r for r in caplog.records if "not watching" in r.getMessage()]) == 1


# -- a participant woken by it ----------------------------------------------------------


def test_participant_wakes_for_a_message_from_another_process(tmp_path: Path, start: Start) -> None:
    db = tmp_path / "mesh.db"
    participant, inbox = start(db, "listener", SLOW)
    assert participant.watching
    time.sleep(0.2)  # the start-up poll is over: what follows must be event-driven
    ids = send_from_another_process(db, "listener", "ping")
    got = inbox.wait_for(1)
    assert [(m.message_id, m.content, m.sender_name) for m in got] == [(ids[0], "ping", "outsider")]


def test_participant_keeps_waking_after_a_truncating_checkpoint(
    tmp_path: Path, start: Start
) -> None:
    db = tmp_path / "mesh.db"
    participant, inbox = start(db, "listener", SLOW)
    send_from_another_process(db, "listener", "before")
    inbox.wait_for(1)
    checkpoint = sqlite3.connect(db)
    try:
        busy, _, _ = checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        checkpoint.close()
    assert busy == 0 and Path(f"{db}-wal").stat().st_size == 0
    send_from_another_process(db, "listener", "after")
    got = inbox.wait_for(2)
    assert [m.content for m in got] == ["before", "after"]
    assert participant.watching


def test_participant_sees_a_message_from_the_plain_sqlite3_shell(
    tmp_path: Path, start: Start
) -> None:
    db = tmp_path / "mesh.db"
    participant, inbox = start(db, "listener", SLOW)
    assert participant.watching
    me = participant.session_id
    sql = (
        "INSERT INTO agent_messages (sender_session_id, recipient_session_id, content, "
        f"created_at) VALUES ('shell-user', '{me}', 'from the shell', "
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));"
    )
    shell = shutil.which("sqlite3")
    if shell is not None:
        # a busy timeout, as any sane client sets: our participant's own writes may hold
        # the lock for a moment (the shell's default is none: "database is locked")
        command = [shell, "-cmd", ".timeout 10000", str(db), sql]
    else:  # no shell installed: the same plain statement through Python's sqlite3
        command = [
            sys.executable,
            "-c",
            (
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=10); "
                "c.execute(sys.argv[2]); c.commit()"
            ),
            str(db),
            sql,
        ]
    subprocess.run(command, check=True, timeout=60, capture_output=True)
    got = inbox.wait_for(1)
    assert [(m.content, m.sender_session_id) for m in got] == [("from the shell", "shell-user")]


def test_a_commit_published_well_after_its_wal_write_is_still_seen(
    tmp_path: Path, start: Start
) -> None:
    """A writer descheduled between its last -wal write (the event) and publishing the
    commit in -shm (no event) on a loaded machine: the reader's data_version stays old
    for longer than one settle look. It looks again, later, instead of sleeping until the
    safety check (60 s here). The delay is made by holding back the value this
    participant's `data_version` returns for 80 ms after the send."""
    db = tmp_path / "mesh.db"
    participant, inbox = start(db, "listener", SLOW)
    assert participant.watching
    real = participant.mesh.data_version
    seen: dict[int, int] = {}  # data_version is per connection, a connection per thread
    release = [0.0]

    def late_data_version() -> int:
        thread = threading.get_ident()
        if thread not in seen or time.monotonic() >= release[0]:
            seen[thread] = real()
        return seen[thread]

    participant.mesh.data_version = late_data_version  # type: ignore[method-assign]
    with Mesh(db) as other:
        sender = other.register("late-writer").session_id
        time.sleep(0.7)  # the registration's looks are over
        release[0] = time.monotonic() + 0.08
        other.send(sender, "listener", "published late")
    got = inbox.wait_for(1)
    assert [m.content for m in got] == ["published late"]


def test_participant_polls_when_the_watch_library_is_missing(
    tmp_path: Path, start: Start, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "watchdog.observers", None)  # import fails
    db = tmp_path / "mesh.db"
    with caplog.at_level(logging.WARNING, logger="mesh_core.watch"):
        participant, inbox = start(db, "listener", POLLING)
        assert not participant.watching
        ids = send_from_another_process(db, "listener", "one", "two")
        got = inbox.wait_for(2)
    assert [m.message_id for m in got] == ids
    assert "watchdog package is not installed" in caplog.text
    assert len([r for r in caplog.records if "not watching" in r.getMessage()]) == 1


def test_participant_polls_when_its_folder_cannot_be_watched(
    tmp_path: Path, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """The watch fails to start (here: it is pointed at a folder that does not exist, as
    the library reports an unwatchable one); delivery goes on by polling."""
    db = tmp_path / "mesh.db"
    mesh = Mesh(db, config=POLLING)
    inbox = Inbox()
    participant = Participant(mesh, "listener", cwd="/", on_message=inbox)
    participant.watch = CommitWatch(tmp_path / "gone" / "mesh.db", participant._wake.set)
    with caplog.at_level(logging.WARNING, logger="mesh_core.watch"):
        participant.start()
        try:
            wait(lambda: participant.watch is not None and participant.watch.reason)
            assert not participant.watching
            ids = send_from_another_process(db, "listener", "still delivered")
            assert [m.message_id for m in inbox.wait_for(1)] == ids
        finally:
            participant.stop()
            mesh.close()
    assert "not watching" in caplog.text


def test_participant_polls_once_the_watch_proves_blind(
    tmp_path: Path, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """A watch that runs but raises no event for the database's writes (a network file
    system, say; here: watching another folder) is given up after commits it missed."""
    db = tmp_path / "mesh.db"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    mesh = Mesh(db, config=POLLING)
    inbox = Inbox()
    participant = Participant(mesh, "listener", cwd="/", on_message=inbox)
    participant.watch = CommitWatch(elsewhere / "mesh.db", participant._wake.set)
    with caplog.at_level(logging.WARNING, logger="mesh_core.watch"):
        participant.start()
        try:
            wait(lambda: participant.watching)
            ids = []
            for n in range(4):
                ids += send_from_another_process(db, "listener", f"message {n}")
                inbox.wait_for(n + 1)
                if not participant.watching:
                    break
            assert not participant.watching, "the blind watch was never given up"
            ids += send_from_another_process(db, "listener", "after giving up")
            assert [m.message_id for m in inbox.wait_for(len(ids))] == ids
        finally:
            participant.stop()
            mesh.close()
    assert "raised no file-system event" in caplog.text


def test_the_stop_race_of_the_library_is_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """watchdog logs an ERROR when stopped between reading and queueing an event (every
    short wait_for_reply can hit it); a started watch drops exactly that line, not others."""
    watch = CommitWatch(tmp_path / "mesh.db", lambda: None)
    assert watch.start()
    watch.close()
    inotify_log = logging.getLogger("watchdog.observers.inotify")
    with caplog.at_level(logging.ERROR, logger="watchdog.observers.inotify"):
        inotify_log.error("InotifyEmitter.queue_events() called when the thread is inactive")
        inotify_log.error("something else went wrong")
    assert [r.getMessage() for r in caplog.records] == ["something else went wrong"]


# -- quiet while idle: the safety check backs off ---------------------------------------


def test_the_safety_check_backs_off_only_once_the_watch_reported_a_write() -> None:
    safety = SafetyCheck(1.0, 5.0)

    def step(evented: bool = False, changed: bool = False) -> float:
        return safety.after_round(evented=evented, changed=changed, missed=changed and not evented)

    assert [step() for _ in range(3)] == [1.0, 1.0, 1.0]  # nothing proven yet
    assert step(evented=True) == 1.0  # our own write's event: proven
    assert [step() for _ in range(5)] == [2.0, 4.0, 5.0, 5.0, 5.0]
    assert step(evented=True, changed=True) == 5.0  # a commit delivered by the watch
    assert step(changed=True) == 1.0  # a commit found by the timer alone: a miss
    assert step() == 2.0
    safety.restart()  # a new watch (the file was replaced) has to prove itself again
    assert step() == 1.0
    assert SafetyCheck(60.0, 5.0).after_round(evented=True, changed=False, missed=False) == 60.0


IDLE = MeshConfig(
    heartbeat_interval=60.0,
    poll_interval=60.0,
    watch_interval=60.0,
    watch_safety_interval=0.05,
    watch_safety_max=0.8,
)


def test_an_idle_participant_checks_data_version_less_and_less_often(
    tmp_path: Path, start: Start
) -> None:
    """Once its watch delivered a commit, an idle participant's timer lengthens its sleep
    up to watch_safety_max: over 3 s a fixed 50 ms check would look 60 times."""
    db = tmp_path / "mesh.db"
    participant, inbox = start(db, "listener", IDLE)
    checks: list[int] = []
    data_version = participant.mesh.data_version

    def counted() -> int:
        checks.append(data_version())
        return checks[-1]

    participant.mesh.data_version = counted  # type: ignore[method-assign]
    send_from_another_process(db, "listener", "proves the watch")
    inbox.wait_for(1)
    checks.clear()
    time.sleep(3.0)
    # 0.1 + 0.2 + 0.4 + 0.8 s, then every 0.8 s: about 7 looks in 3 s.
    assert 1 <= len(checks) <= 15, f"{len(checks)} data_version checks in 3 s of idle"


def test_the_backed_off_timer_still_finds_a_commit_the_watch_missed(
    tmp_path: Path, start: Start
) -> None:
    """A watch that stops raising events after it proved itself: the next commit is
    found by the timer, whose sleep stays bounded by watch_safety_max."""
    db = tmp_path / "mesh.db"
    config = IDLE.with_overrides(watch_safety_max=0.5)
    participant, inbox = start(db, "listener", config)
    send_from_another_process(db, "listener", "proves the watch")
    inbox.wait_for(1)
    time.sleep(1.5)  # backed off to the longest sleep
    watch = participant.watch
    assert watch is not None and participant.watching
    watch._wake = lambda: None  # deaf from now on (events are still counted)
    send_from_another_process(db, "listener", "missed by the watch")
    assert [m.content for m in inbox.wait_for(2)][1:] == ["missed by the watch"]
