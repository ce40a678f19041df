"""Marked read only once the reader has it: `mesh inbox` (and `--follow`) into pipes whose
reader stops early or never reads, real processes on a real file, asserted on the
database; the pipe hand-over itself on real pipes; and the participant's acknowledge
mode (docs/contract.md §4.12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import TIMEOUT, mesh_argv, wait_until

from mesh_core import Mesh
from mesh_core.handover import hand_over, reader_gone, unread_bytes
from mesh_core.models import Message
from mesh_core.participant import Participant

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="a pipe's fill level is read on Linux only"
)

SLOW_READER = """
import sys, time
for _ in range(int(sys.argv[1])):
    time.sleep(0.3)
    line = sys.stdin.readline()
    sys.stdout.write(line)
    sys.stdout.flush()
"""
NEVER_READS = "import time; time.sleep(1.5)"


def _env(name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"AGENT_MESH_DB", "FORCE_COLOR"}}
    return env | {"AGENT_MESH_NAME": name, "COLUMNS": "120"}


def _waiting(db: Path, count: int) -> list[int]:
    """`count` messages from carol to bob, whose session is stopped (the command borrows
    it); no connection stays open in this process."""
    with Mesh(db) as mesh:
        bob = mesh.register("bob", kind="agent")
        senders = [mesh.register(f"carol-{i}").session_id for i in range(count // 10 + 1)]
        # One sender per ten messages: the rate limit is per sender and recipient.
        ids = [mesh.send(senders[i // 10], "bob", f"note {i}").message_id for i in range(count)]
        mesh.deregister(bob.session_id)
    return ids


def _read_ids(db: Path) -> set[int]:
    with Mesh(db) as mesh:
        rows = mesh.store.read("SELECT message_id FROM agent_messages WHERE read = 1")
    return {int(r[0]) for r in rows}


def _pipeline(db: Path, mesh_args: tuple[str, ...], reader: list[str]) -> tuple[str, int]:
    """`mesh … | reader`: the reader's output and the mesh command's exit code."""
    producer = subprocess.Popen(
        mesh_argv(db, *mesh_args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env("bob")
    )
    assert producer.stdout is not None
    consumer = subprocess.Popen(reader, stdin=producer.stdout, stdout=subprocess.PIPE, text=True)
    producer.stdout.close()  # the reader alone holds the read end, as in a shell
    try:
        out, _ = consumer.communicate(timeout=TIMEOUT)
        _, err = producer.communicate(timeout=TIMEOUT)
    finally:
        producer.kill()
        consumer.kill()
    assert b"Traceback" not in err, err.decode()
    return out, producer.returncode


@linux_only
def test_follow_into_head_marks_read_only_the_line_head_printed(db_path: Path) -> None:
    _waiting(db_path, 30)
    out, code = _pipeline(db_path, ("inbox", "--follow", "--json"), ["head", "-n", "1"])
    [line] = out.splitlines()
    printed = json.loads(line)["message_id"]
    assert code == 141  # it noticed the reader had gone, without another message
    assert _read_ids(db_path) == {printed}


@linux_only
def test_follow_into_a_slow_reader_marks_read_exactly_what_it_read(db_path: Path) -> None:
    _waiting(db_path, 30)
    reader = [sys.executable, "-c", SLOW_READER, "3"]
    out, code = _pipeline(db_path, ("inbox", "--follow", "--json"), reader)
    printed = {json.loads(line)["message_id"] for line in out.splitlines()}
    assert len(printed) == 3 and code == 141
    assert _read_ids(db_path) == printed


@linux_only
def test_inbox_into_a_reader_that_never_reads_marks_nothing(db_path: Path) -> None:
    ids = _waiting(db_path, 30)
    out, code = _pipeline(db_path, ("inbox", "--json"), [sys.executable, "-c", NEVER_READS])
    assert (out, code) == ("", 141)
    assert _read_ids(db_path) == set()
    # A reader that reads it all gets the bounded batch, and exactly that is read.
    out, code = _pipeline(db_path, ("inbox", "--json"), ["cat"])
    batch = [m["message_id"] for m in json.loads(out)]
    assert code == 0 and batch == ids[:20]
    assert _read_ids(db_path) == set(batch)


def test_inbox_into_a_file_is_delivered_on_write(db_path: Path, tmp_path: Path) -> None:
    ids = _waiting(db_path, 3)
    target = tmp_path / "out.json"
    with target.open("wb") as file:
        done = subprocess.run(
            mesh_argv(db_path, "inbox", "--json"),
            check=False,
            stdout=file,
            env=_env("bob"),
            timeout=TIMEOUT,
        )
    assert done.returncode == 0
    assert [m["message_id"] for m in json.loads(target.read_text())] == ids
    assert _read_ids(db_path) == set(ids)


# -- the hand-over on real pipes ----------------------------------------------------------


def _pipe_writer() -> tuple[int, object]:
    read_end, write_end = os.pipe()
    return read_end, os.fdopen(write_end, "w")


@linux_only
def test_hand_over_waits_for_the_reader_to_drain_the_pipe() -> None:
    read_end, stream = _pipe_writer()
    got: list[bytes] = []

    def read_later() -> None:
        time.sleep(0.3)
        got.append(os.read(read_end, 100))

    reader = threading.Thread(target=read_later)
    reader.start()
    try:
        assert hand_over(stream, "one line\n")  # type: ignore[arg-type]
        assert got == [b"one line\n"]  # it returned only once the reader had the line
        assert unread_bytes(stream.fileno()) == 0  # type: ignore[attr-defined]
    finally:
        reader.join()
        os.close(read_end)
        stream.close()  # type: ignore[attr-defined]


@linux_only
def test_hand_over_to_a_reader_that_closed_unread_is_not_delivered() -> None:
    read_end, stream = _pipe_writer()
    assert not reader_gone(stream)  # type: ignore[arg-type]
    closer = threading.Timer(0.2, os.close, (read_end,))
    closer.start()
    try:
        assert not hand_over(stream, "never read\n")  # type: ignore[arg-type]
        assert reader_gone(stream)  # type: ignore[arg-type]
        assert not hand_over(stream, "after it left\n")  # type: ignore[arg-type]
    finally:
        closer.join()
        try:
            stream.close()  # type: ignore[attr-defined]
        except BrokenPipeError:
            pass


# -- the participant's acknowledge mode ---------------------------------------------------


def test_acknowledge_mode_marks_read_only_what_the_consumer_acknowledged(
    db_path: Path,
) -> None:
    with Mesh(db_path) as setup:
        senders = [setup.register(f"carol-{i}").session_id for i in range(3)]
    got: list[Message] = []
    lock = threading.Lock()

    def on_message(message: Message) -> None:
        with lock:
            got.append(message)

    mesh = Mesh(db_path)
    participant = Participant(mesh, "bob", cwd="/", on_message=on_message, acknowledge=True)
    participant.start()
    try:
        with Mesh(db_path) as other:
            sent = [other.send(senders[i // 10], "bob", f"m{i}").message_id for i in range(25)]
        participant.poll_now()
        first = wait_until(lambda: list(got) if len(got) >= 20 else None, "the first batch")
        time.sleep(0.3)
        participant.poll_now()
        time.sleep(0.3)
        with lock:
            offered = [m.message_id for m in got]
        # Offered once each, in order, bounded like a take; nothing is read yet.
        assert offered == sent[:20] and all(m.read for m in first)
        assert _read_ids(db_path) == set()
        assert participant.acknowledge(sent[0]) and _read_ids(db_path) == {sent[0]}
        for message_id in sent[1:20]:
            participant.acknowledge(message_id)
        # The batch acknowledged: the rest are offered at once.
        wait_until(lambda: len(got) == 25, "the rest")
        assert [m.message_id for m in got] == sent
        assert _read_ids(db_path) == set(sent[:20])
    finally:
        participant.stop()
        mesh.close()
    # Never acknowledged: still unread, for the next route.
    with Mesh(db_path) as after:
        bob = next(a for a in after.agents("all") if a.agent_name == "bob")
        assert [m.message_id for m in after.peek_inbox(bob.session_id)] == sent[20:]
