"""Faults: processes killed mid-write, a crowd on two cores, the database pulled away.

Real processes on a real file, nothing mocked. Each child is forked from a small
driver (or from a fresh interpreter), opens its own connections, and is killed with
SIGKILL at a random moment, so kills land before, inside and after SQLite's commit.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_until

from mesh_core import Mesh, MeshConfig, Message, Participant
from mesh_core.errors import DatabasePermission, DatabaseUnusable

# Rate limit and auto-threading are not what these tests are about: lift the cap.
BULK = MeshConfig(rate_limit=10**9)
FAST = MeshConfig(rate_limit=10**9, heartbeat_interval=0.3, poll_interval=0.3, watch_interval=0.02)
ROUNDS = int(os.environ.get("MESH_KILL_ROUNDS", "200"))
SOAK_SECONDS = float(os.environ.get("MESH_SOAK_SECONDS", "20"))


def payload(tag: str) -> str:
    """A body whose length and text follow from its tag, so a torn row shows."""
    size = 50 + (sum(map(ord, tag)) * 7919) % 6000
    return f"{tag}|" + ("abcdefghij" * (size // 10 + 1))[:size]


def run_python(code: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def read_ids(log: Path) -> list[int]:
    """Ids a child wrote after the call returned; a line cut by the kill is dropped."""
    text = log.read_text() if log.exists() else ""
    lines = text.split("\n")
    return [int(line) for line in lines[:-1] if line]  # the last piece has no newline yet


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


# -- SIGKILL in the middle of a send --------------------------------------------------

KILL_DRIVER = """
import os, random, signal, sys, time
from mesh_core import Mesh, MeshConfig

db, sender, log_dir, rounds, mode = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
config = MeshConfig(rate_limit=10**9)
rng = random.Random(1234)

def payload(tag):
    size = 50 + (sum(map(ord, tag)) * 7919) % 6000
    return f"{tag}|" + ("abcdefghij" * (size // 10 + 1))[:size]

def child(round_no):
    log = open(os.path.join(log_dir, f"{round_no}.log"), "a")
    mesh = Mesh(db, config=config)
    i = 0
    while True:
        if mode == "send":
            message = mesh.send(sender, "bob", payload(f"r{round_no}-{i}"))
            taken = [message.message_id]
        else:
            taken = [m.message_id for m in mesh.inbox(sender)]
        if taken:
            log.write("".join(f"{t}\\n" for t in taken))
            log.flush()
            os.fsync(log.fileno())
        i += 1

for round_no in range(rounds):
    if mode == "poll":  # give the poller something to take in this round
        feeder = Mesh(db, config=config)
        alice = feeder.session_for("alice").agent.session_id
        for i in range(rng.randint(1, 30)):
            feeder.send(alice, "bob", payload(f"p{round_no}-{i}"))
        feeder.close()
    pid = os.fork()
    if pid == 0:
        try:
            child(round_no)
        finally:
            os._exit(1)
    time.sleep(rng.uniform(0.0, 0.06))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
print("rounds", rounds)
"""


@pytest.mark.slow
def test_sender_killed_mid_send_loses_and_tears_nothing(tmp_path: Path) -> None:
    db = tmp_path / "mesh.db"
    with Mesh(db, config=BULK) as mesh:
        alice = mesh.register("alice").session_id
        mesh.register("bob")
    logs = tmp_path / "logs"
    logs.mkdir()
    run_python(KILL_DRIVER, str(db), alice, str(logs), str(ROUNDS), "send")

    returned = [i for log in logs.glob("*.log") for i in read_ids(log)]
    assert len(returned) > ROUNDS, "the children barely sent anything: kills came too early"
    assert integrity(db) == "ok"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT message_id, content FROM agent_messages").fetchall()
    stored = {mid: content for mid, content in rows}
    # Every send that returned is stored, exactly once (ids are keys; tags are unique).
    assert len(returned) == len(set(returned))
    assert set(returned) <= set(stored)
    tags = Counter(content.split("|", 1)[0] for content in stored.values())
    assert max(tags.values()) == 1
    # No half-written row: each body is exactly what its tag says.
    assert all(content == payload(content.split("|", 1)[0]) for content in stored.values())
    # At most one committed-but-unlogged send per round (the kill between the two).
    assert len(stored) - len(returned) <= ROUNDS


@pytest.mark.slow
def test_poller_killed_mid_poll_never_loses_a_taken_message(tmp_path: Path) -> None:
    """The guarantee (README, "Guarantees"): a message is either unread, or it was handed
    to one caller of inbox(). Killing that caller after the commit but before it used
    the result is the only way a read message goes unlogged: at most one take a round."""
    db = tmp_path / "mesh.db"
    with Mesh(db, config=BULK) as mesh:
        mesh.register("alice")
        bob = mesh.register("bob").session_id
    logs = tmp_path / "logs"
    logs.mkdir()
    run_python(KILL_DRIVER, str(db), bob, str(logs), str(ROUNDS), "poll")

    assert integrity(db) == "ok"
    taken = [i for log in logs.glob("*.log") for i in read_ids(log)]
    assert len(taken) == len(set(taken)), "a message was handed out twice"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT message_id, read, read_at FROM agent_messages").fetchall()
    assert len(rows) > ROUNDS
    read = {mid: read_at for mid, is_read, read_at in rows if is_read}
    assert set(taken) <= set(read), "a returned message is not marked read"
    unlogged_takes = {read[mid] for mid in set(read) - set(taken)}  # one read_at per take
    assert len(unlogged_takes) <= ROUNDS
    assert len(taken) > 0 and len(read) - len(taken) < len(taken)


# -- a crowd on two cores ---------------------------------------------------------------

CROWD_WRITER = """
import sys, time
from mesh_core import Mesh, MeshConfig
db, me, targets, seconds, out = sys.argv[1], sys.argv[2], sys.argv[3].split(","), float(sys.argv[4]), sys.argv[5]
mesh = Mesh(db, config=MeshConfig(rate_limit=10**9))
sent = []
deadline = time.monotonic() + seconds
i = 0
while time.monotonic() < deadline:
    sent.append(mesh.send(me, targets[i % len(targets)], f"{me}-{i}").message_id)
    if i % 50 == 0:
        mesh.heartbeat(me)
        mesh.maybe_cleanup()
    i += 1
open(out, "w").write("\\n".join(map(str, sent)))
"""

CROWD_POLLER = """
import os, sys, time
from mesh_core import Mesh
db, me, done, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
mesh = Mesh(db)
got = []
while True:
    finished = os.path.exists(done)  # read before the poll: nothing is sent after it
    batch = mesh.inbox(me)
    got.extend(m.message_id for m in batch)
    mesh.heartbeat(me)
    if finished and not batch:
        break
    time.sleep(0.005)
open(out, "w").write("\\n".join(map(str, got)))
"""


@pytest.mark.slow
def test_crowd_of_writers_and_pollers_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """8 writers and 8 pollers (two per inbox) on one file for MESH_SOAK_SECONDS."""
    db = tmp_path / "mesh.db"
    with Mesh(db) as mesh:
        mesh.set_rate_limit(10**9)  # the mesh's limit: the writers' own config does not count
        writers = [mesh.register(f"writer-{i}").session_id for i in range(8)]
        inboxes = [mesh.register(f"inbox-{i}").session_id for i in range(4)]
    done = tmp_path / "done"
    procs: list[tuple[subprocess.Popen[str], Path]] = []

    def start(code: str, *args: str, out: Path) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), *args, str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append((proc, out))

    targets = ",".join(f"inbox-{i}" for i in range(4))
    for i, sid in enumerate(writers):
        start(CROWD_WRITER, str(db), sid, targets, str(SOAK_SECONDS), out=tmp_path / f"w{i}")
    for i in range(8):
        start(CROWD_POLLER, str(db), inboxes[i % 4], str(done), out=tmp_path / f"p{i}")

    writer_procs, poller_procs = procs[:8], procs[8:]
    stderr: list[str] = []
    for proc, _ in writer_procs:
        stderr.append(proc.communicate(timeout=SOAK_SECONDS + 180)[1])
    done.touch()
    for proc, _ in poller_procs:
        stderr.append(proc.communicate(timeout=180)[1])

    assert not any("locked" in text.lower() for text in stderr), stderr
    assert [proc.returncode for proc, _ in procs] == [0] * 16, stderr

    def ids(path: Path) -> list[int]:
        return [int(x) for x in path.read_text().split()]

    sent = [i for _, out in writer_procs for i in ids(out)]
    received = [i for _, out in poller_procs for i in ids(out)]
    assert len(sent) > 100
    assert len(received) == len(set(received)), "a message was delivered twice"
    assert sorted(received) == sorted(sent), "a message was lost (or came from nowhere)"
    assert integrity(db) == "ok"
    print(f"crowd: {len(sent)} messages in {SOAK_SECONDS:g} s, 16 processes")


# -- the database pulled away from a running participant ---------------------------


class Watcher:
    """A Participant with its errors and messages collected for the test to check."""

    def __init__(self, db: Path, name: str = "watcher") -> None:
        self.errors: list[Exception] = []
        self.messages: list[Message] = []
        self.mesh = Mesh(db, config=FAST)
        self.participant = Participant(
            self.mesh, name, on_message=self.messages.append, on_error=self.errors.append
        )
        self.participant.start()

    def close(self) -> None:
        self.participant.stop(deregister=False)
        self.mesh.close()


@pytest.fixture
def watcher(tmp_path: Path) -> Iterator[Watcher]:
    folder = tmp_path / "mesh"
    handle = Watcher(folder / "mesh.db")
    yield handle
    handle.close()


def reaches(db: Path, name: str, watcher: Watcher, text: str) -> bool:
    """Once the watcher is (again) registered in the file at `db`, a message sent there
    by another handle arrives in the watcher's loop."""
    with Mesh(db, config=FAST) as other:

        def visible() -> bool:
            """the watcher to be registered in the file"""
            return name in [a.agent_name for a in other.agents("all")]

        wait_until(visible)
        sender = other.session_for("tester").agent.session_id
        other.send(sender, name, text)
    wait_until(lambda: any(m.content == text for m in watcher.messages))
    return True


def reported_once(watcher: Watcher, says: str) -> Exception:
    """The fault is reported, and still only once after more file checks and retries."""
    wait_until(lambda: watcher.errors)
    time.sleep(2.5)
    assert len(watcher.errors) == 1, watcher.errors
    assert says in str(watcher.errors[0])
    return watcher.errors[0]


def db_files(db: Path) -> list[Path]:
    return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]


def test_deleted_database_is_reported_once_and_rejoined_when_back(
    watcher: Watcher, caplog: pytest.LogCaptureFixture
) -> None:
    db = watcher.mesh.path
    caplog.set_level(logging.WARNING, logger="mesh_core.participant")
    for path in db_files(db):
        path.unlink(missing_ok=True)

    error = reported_once(watcher, "deleted, moved or replaced")
    assert isinstance(error, DatabaseUnusable)
    assert not db.exists(), "a running participant must not resurrect a deleted database"
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1

    Mesh(db).close()  # any mesh command creates the file again
    assert reaches(db, "watcher", watcher, "after the file came back")
    assert len(watcher.errors) == 1


def test_reopening_after_the_file_was_deleted_never_creates_a_new_one(tmp_path: Path) -> None:
    """The race CI once hit: a thread opening its connection just as the file is deleted
    must fail, not leave an empty database where the old one was."""
    db = tmp_path / "mesh.db"
    with Mesh(db) as mesh:
        for path in db_files(db):
            path.unlink(missing_ok=True)
        with pytest.raises(DatabaseUnusable):
            mesh.reconnect()
        assert not db.exists()


def test_moved_database_is_reported_and_used_again_when_moved_back(
    watcher: Watcher, tmp_path: Path
) -> None:
    db = watcher.mesh.path
    aside = tmp_path / "aside"
    shutil.move(db.parent, aside)
    reported_once(watcher, "deleted, moved or replaced")
    shutil.move(aside, db.parent)
    assert reaches(db, "watcher", watcher, "after the move back")
    assert len(watcher.errors) == 1


def test_replaced_database_is_reopened_and_the_session_registered_again(
    watcher: Watcher, tmp_path: Path
) -> None:
    db = watcher.mesh.path
    # Another process puts a new mesh file in place (a restore from backup, say).
    replacement = tmp_path / "new.db"
    with Mesh(replacement) as other:
        other.register("someone-else")
    for path in db_files(db):
        path.unlink(missing_ok=True)
    os.replace(replacement, db)
    assert reaches(db, "watcher", watcher, "in the replacement")
    assert watcher.errors == []  # a replacement that works is not an error


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _can_mount(tmp_path: Path) -> str | None:
    """Why mounting is impossible here, or None. Root ignores file modes, so a
    read-only or full disk can only be made real with a mount."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return "needs root and mount(8) to make a real read-only or full file system"
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe))
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"cannot mount here ({exc})"
    subprocess.run(["umount", str(probe)], check=True)
    return None


def test_read_only_file_system_is_reported_and_recovered(watcher: Watcher, tmp_path: Path) -> None:
    reason = _can_mount(tmp_path)
    if reason:
        pytest.skip(reason)
    db = watcher.mesh.path
    folder = db.parent
    # A replacement arrives, and the file system goes read-only before it is reopened.
    with Mesh(tmp_path / "new.db") as other:
        other.register("someone-else")
    for path in db_files(db):
        path.unlink(missing_ok=True)
    os.replace(tmp_path / "new.db", db)
    before = db.read_bytes()
    _mount("--bind", str(folder), str(folder))
    try:
        _mount("-o", "remount,ro,bind", str(folder))
        assert isinstance(reported_once(watcher, "read-only"), DatabasePermission)
        # A new opener gets the same clear refusal, and the file is unchanged.
        with pytest.raises(DatabasePermission), Mesh(db) as newcomer:
            newcomer.register("newcomer")
        assert db.read_bytes() == before
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)
    assert reaches(db, "watcher", watcher, "writable again")
    assert len(watcher.errors) == 1


def test_full_disk_is_reported_once_and_recovered(tmp_path: Path) -> None:
    reason = _can_mount(tmp_path)
    if reason:
        pytest.skip(reason)
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk))
    watcher: Watcher | None = None
    try:
        db = disk / "mesh.db"
        watcher = Watcher(db)
        sender_mesh = Mesh(db, config=FAST)
        sender = sender_mesh.register("sender").session_id
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        for chunk in (65536, 4096, 1):  # take every free byte
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
        os.close(fd)
        with pytest.raises(DatabaseUnusable, match="full"):
            for i in range(200):  # the WAL has some slack: write until it is used up
                sender_mesh.send(sender, "watcher", "x" * 10_000)
        reported_once(watcher, "full")

        filler.unlink()
        sender_mesh.send(sender, "watcher", "space again")
        wait_until(
            lambda: (
                watcher is not None and any(m.content == "space again" for m in watcher.messages)
            )
        )
        assert len(watcher.errors) == 1
        assert integrity(db) == "ok"
        sender_mesh.close()
    finally:
        if watcher is not None:
            watcher.close()
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_row_deleted_by_another_client_registers_again(watcher: Watcher) -> None:
    """The original Node.js extension deletes sessions; ours must come back on its next beat."""
    db = watcher.mesh.path
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM agent_sessions WHERE agent_name = 'watcher'")
    with Mesh(db) as other:

        def visible() -> bool:
            """the watcher to register again"""
            return "watcher" in [a.agent_name for a in other.agents("all")]

        wait_until(visible)
    assert watcher.errors == []


# -- a signal, not a kill -------------------------------------------------------------


def test_sigterm_marks_the_session_stopped(tmp_path: Path) -> None:
    db = tmp_path / "mesh.db"
    code = """
        import sys, time
        from mesh_core import Mesh, Participant
        p = Participant(Mesh(sys.argv[1]), "terminated")
        p.start()
        p.install_signal_handlers()
        print("ready", flush=True)
        while True:
            time.sleep(0.1)
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), str(db)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    with Mesh(db) as mesh:
        assert [a.status.value for a in mesh.agents("all")] == ["stopped"]


def test_random_kills_keep_the_file_usable_for_the_next_process(tmp_path: Path) -> None:
    """After many torn processes, a brand-new process opens the file and works."""
    db = tmp_path / "mesh.db"
    with Mesh(db, config=BULK) as mesh:
        alice = mesh.register("alice").session_id
        mesh.register("bob")
    code = """
        import sys
        from mesh_core import Mesh, MeshConfig
        m = Mesh(sys.argv[1], config=MeshConfig(rate_limit=10**9))
        while True:
            m.send(sys.argv[2], "bob", "x" * 5000)
    """
    rng = random.Random(7)
    for _ in range(10):
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(db), alice])
        time.sleep(rng.uniform(0.2, 0.6))
        proc.kill()
        proc.wait()
    assert integrity(db) == "ok"
    with Mesh(db, config=BULK) as after:
        bob = after.session_for("bob").agent.session_id
        after.send(alice, "bob", "still works")
        assert after.inbox(bob)[-1].content == "still works"


# -- access: what someone else's loose umask left behind -----------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_loose_wal_and_shm_left_by_another_client_are_tightened(tmp_path: Path) -> None:
    """The sqlite3 shell under umask 022 leaves db, -wal and -shm 0644 while it is open.
    The -wal holds recent messages in clear, so tightening only the db file is not
    enough: every open tightens all three."""
    db = tmp_path / "mesh.db"
    Mesh(db).close()
    other = sqlite3.connect(db)  # another client keeps the WAL and shared memory alive
    try:
        other.execute("SELECT count(*) FROM agent_sessions").fetchone()
        for path in db_files(db):
            path.touch()
            os.chmod(path, 0o644)
        with Mesh(db) as mesh:
            mesh.register("alice")
            assert {str(p): _mode(p) for p in db_files(db)} == {str(p): 0o600 for p in db_files(db)}
    finally:
        other.close()


def test_someone_elses_readable_file_is_warned_about_not_changed(tmp_path: Path) -> None:
    """We tighten what we own; a file owned by another user that others can read is
    used (its owner decides) with a warning that says how to fix it."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file to another user")
    db = tmp_path / "mesh.db"
    Mesh(db).close()
    os.chown(db, 65534, 65534)
    os.chmod(db, 0o644)
    with pytest.warns(UserWarning, match=r"can be read by other users.*chmod 600"), Mesh(db):
        pass
    assert _mode(db) == 0o644 and db.stat().st_uid == 65534
