"""The `mesh` command: JSON shapes, exit codes, identity (--from), stdin, --wait, --follow,
and hostile text shown literally. Most tests run the real command as a process on a real
file; the JSON-shape checks call `main()` in-process where that is all they need."""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import TIMEOUT, mesh_argv, wait_until

from mesh_cli.cli import main
from mesh_cli.render import ago
from mesh_core import FixedClock, Mesh

AGENT_KEYS = {
    "session_id",
    "stored_status",
    "agent_name",
    "agent_description",
    "cwd",
    "repo",
    "status",
    "registered_at",
    "last_heartbeat",
    "metadata",
    "unread",
}
MESSAGE_KEYS = {
    "message_id",
    "sender_session_id",
    "sender_name",
    "recipient_session_id",
    "recipient_name",
    "content",
    "original_message_id",
    "priority",
    "created_at",
    "read",
    "read_at",
    "expires_at",
}


def _env(name: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "FORCE_COLOR",
            "CLICOLOR_FORCE",
            "TTY_COMPATIBLE",
            "AGENT_MESH_DB",
            "PYTHONUNBUFFERED",
        }
    }
    env.update(AGENT_MESH_NAME=name, COLUMNS="120")
    return env


def run_mesh(
    db: Path,
    *args: str,
    name: str = "alice",
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real `mesh` as its own process, as user `name`."""
    result = subprocess.run(
        mesh_argv(db, *args),
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT,
        env=env or _env(name),
        check=False,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8"),
        result.stderr.decode("utf-8"),
    )


def start_mesh(db: Path, *args: str, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        mesh_argv(db, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(name),
    )


@pytest.fixture
def live(db_path: Path) -> Iterator[Mesh]:
    """A Mesh on the system clock: the CLI processes judge staleness by real time."""
    handle = Mesh(db_path)
    yield handle
    handle.close()


@pytest.fixture
def cli(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """`main()` in-process as user alice: (exit code, stdout, stderr)."""
    monkeypatch.setenv("AGENT_MESH_NAME", "alice")

    def call(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--db", str(db_path), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def sessions_named(mesh: Mesh, name: str) -> list[Any]:
    return [a for a in mesh.agents("all") if a.agent_name == name]


# -- JSON shapes --------------------------------------------------------------------------


def test_agents_json_shape_and_status_filters(live: Mesh, db_path: Path, cli: Any) -> None:
    live.register("bob", kind="agent")
    gone = live.register("dave", kind="agent")
    live.deregister(gone.session_id)
    minute_ago = datetime.now(UTC) - timedelta(seconds=60)
    with Mesh(db_path, clock=FixedClock(minute_ago)) as past:
        past.register("sleepy", kind="agent")

    code, out, _ = cli("agents", "--json")
    assert code == 0
    roster = json.loads(out)
    assert all(set(agent) == AGENT_KEYS for agent in roster)
    assert {a["agent_name"]: a["status"] for a in roster} == {"bob": "active", "sleepy": "stale"}
    assert isinstance(roster[0]["metadata"], dict) and roster[0]["metadata"]["kind"] == "agent"

    for status, expected in (
        ("stale", {"sleepy"}),
        ("stopped", {"dave"}),
        ("all", {"bob", "sleepy", "dave"}),
        ("active", {"bob"}),
    ):
        code, out, _ = cli("agents", "--status", status, "--json")
        assert code == 0
        assert {a["agent_name"] for a in json.loads(out)} == expected, status


def test_db_and_json_are_accepted_before_and_after_the_command(live: Mesh, db_path: Path) -> None:
    live.register("bob")
    before = run_mesh(db_path, "--json", "agents")
    after = subprocess.run(
        [sys.executable, "-m", "mesh_cli", "agents", "--db", str(db_path), "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env("alice"),
        check=False,
    )
    assert before.returncode == after.returncode == 0
    assert json.loads(before.stdout) == json.loads(after.stdout)
    assert [a["agent_name"] for a in json.loads(after.stdout)] == ["bob"]


def test_send_reply_show_inbox_json_shapes(live: Mesh, cli: Any) -> None:
    bob = live.register("bob")
    code, out, _ = cli("send", "bob", "hello bob", "--priority", "high", "--json")
    assert code == 0
    sent = json.loads(out)
    assert set(sent) == MESSAGE_KEYS | {"warnings"}
    assert (sent["content"], sent["recipient_name"], sent["sender_name"], sent["priority"]) == (
        "hello bob",
        "bob",
        "alice",
        "high",
    )
    assert sent["warnings"] == [] and sent["read"] is False

    answer = live.reply(bob.session_id, sent["message_id"], "hi alice")
    code, out, _ = cli("reply", str(answer.message_id), "thanks", "--json")
    assert code == 0
    replied = json.loads(out)
    assert set(replied) == MESSAGE_KEYS | {"warnings"}
    assert replied["original_message_id"] == sent["message_id"]
    assert replied["recipient_session_id"] == bob.session_id

    code, out, _ = cli("show", str(answer.message_id), "--json")
    assert code == 0
    shown = json.loads(out)
    assert set(shown) == {"thread_id", "messages"}
    assert shown["thread_id"] == sent["message_id"]
    assert [m["content"] for m in shown["messages"]] == ["hello bob", "hi alice", "thanks"]
    assert all(set(m) == MESSAGE_KEYS for m in shown["messages"])
    # Looking marks nothing read: bob still has both of his messages waiting.
    assert [m.content for m in live.peek_inbox(bob.session_id)] == ["hello bob", "thanks"]

    code, out, _ = cli("inbox", "--json")
    assert code == 0
    taken = json.loads(out)
    assert [m["content"] for m in taken] == ["hi alice"]
    assert all(set(m) == MESSAGE_KEYS and m["read"] is True for m in taken)
    code, out, _ = cli("inbox", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_broadcast_prints_one_json_message_per_recipient(live: Mesh, cli: Any) -> None:
    bob, carol = live.register("bob"), live.register("carol")
    code, out, _ = cli("send", "*", "stand-up in 5", "--json")
    assert code == 0
    copies = json.loads(out)
    assert isinstance(copies, list) and all(set(m) == MESSAGE_KEYS | {"warnings"} for m in copies)
    assert sorted(m["recipient_name"] for m in copies) == ["bob", "carol"]
    for agent in (bob, carol):
        assert [m.content for m in live.peek_inbox(agent.session_id)] == ["stand-up in 5"]


def test_new_thread_starts_a_thread_that_auto_threading_would_have_joined(
    live: Mesh, cli: Any
) -> None:
    live.register("bob")
    first = json.loads(cli("send", "bob", "one", "--json")[1])
    second = json.loads(cli("send", "bob", "two", "--json")[1])
    third = json.loads(cli("send", "bob", "three", "--new-thread", "--json")[1])
    assert second["original_message_id"] == first["message_id"]
    assert third["original_message_id"] is None


def test_status_and_cleanup_json(live: Mesh, cli: Any, db_path: Path) -> None:
    live.register("bob")
    code, out, _ = cli("status", "--json")
    assert code == 0
    stats = json.loads(out)
    assert set(stats) == {
        "db_path",
        "schema_version",
        "db_bytes",
        "wal_bytes",
        "sessions",
        "messages",
        "unread",
        "last_cleanup",
        "stale",
        "flooded",
    }
    assert stats["db_path"] == str(db_path) and stats["sessions"]["active"] == 1
    code, out, _ = cli("cleanup", "--json")
    assert code == 0
    assert set(json.loads(out)) == {"ran", "stopped_sessions", "purged_read", "expired_unread"}


# -- exit codes ---------------------------------------------------------------------------


def test_exit_codes_of_the_real_process(live: Mesh, db_path: Path) -> None:
    live.register("bob")
    done = run_mesh(db_path, "send", "bob", "hi")
    assert (done.returncode, done.stderr) == (0, "")
    assert "sent #1 to bob" in done.stdout

    refused = run_mesh(db_path, "send", "nobody", "hi")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1  # one line saying why
    assert "unknown recipient 'nobody'" in refused.stderr and "bob" in refused.stderr

    usage = run_mesh(db_path, "send", "bob")
    assert usage.returncode == 2 and "usage: mesh send" in usage.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "why"),
    [
        (("send", "nobody", "hi"), None, "unknown recipient"),
        (("send", "alice", "hi"), None, "cannot send a message to yourself"),
        (("send", "bob", "-"), b"x" * 10_241, "10,241 bytes, over the 10,240-byte limit"),
        (("send", "bob", "   "), None, "message is empty"),
        (("send", "bob", "hi", "--priority", "asap"), None, "unknown priority 'asap'"),
        (("show", "999"), None, "message not found"),
        (("reply", "999", "hi"), None, "message not found"),
        (("show", "abc"), None, "invalid message id 'abc'"),
        (("send", "*", "anyone?"), None, "broadcast `*` reached nobody"),
    ],
)
def test_refusals_exit_1_with_one_line_and_send_nothing(
    db_path: Path, live: Mesh, args: tuple[str, ...], stdin: bytes | None, why: str
) -> None:
    if args[0] != "send" or args[1] != "*":
        live.register("bob")
    result = run_mesh(db_path, *args, stdin=stdin)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("mesh: ") and result.stderr.count("\n") == 1
    assert why in result.stderr
    assert live.stats()["messages"] == 0


def test_content_of_exactly_the_limit_is_sent(live: Mesh, db_path: Path) -> None:
    bob = live.register("bob")
    result = run_mesh(db_path, "send", "bob", "-", stdin="é".encode() * 5_120)
    assert result.returncode == 0, result.stderr
    assert [len(m.content.encode()) for m in live.peek_inbox(bob.session_id)] == [10_240]


def test_the_eleventh_message_in_a_minute_is_rate_limited(live: Mesh, cli: Any) -> None:
    live.register("bob")
    for number in range(10):
        code, _, err = cli("send", "bob", f"message {number}")
        assert code == 0, err
    code, out, err = cli("send", "bob", "one too many")
    assert code == 1 and out == ""
    assert "rate limit: 10 messages to 'bob'" in err and "try again in" in err
    assert live.stats()["messages"] == 10


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("send", "bob"),
        ("agents", "--status", "sleeping"),
        ("send", "bob", "hi", "--wait", "-1"),
        ("send", "bob", "hi", "--wait", "soon"),
        ("send", "*", "hi", "--wait", "5"),
        ("frobnicate",),
    ],
)
def test_usage_errors_exit_2(db_path: Path, args: tuple[str, ...]) -> None:
    result = run_mesh(db_path, *args)
    assert result.returncode == 2
    assert "usage: mesh" in result.stderr and "Traceback" not in result.stderr


def _write_sqlite(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def _not_sqlite(path: Path) -> None:
    path.write_text("these are my notes, not a database\n" * 20)


def _corrupt(path: Path) -> None:
    _write_sqlite(path, "CREATE TABLE t (x)", "INSERT INTO t VALUES (1)")
    data = bytearray(path.read_bytes())
    data[100:] = b"\xff" * (len(data) - 100)  # keep the header, ruin every page
    path.write_bytes(bytes(data))


def _newer_schema(path: Path) -> None:
    with Mesh(path):
        pass
    _write_sqlite(path, "PRAGMA user_version = 99")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_not_sqlite, "not an SQLite database"),
        (_corrupt, "cannot be read as SQLite"),
        (_newer_schema, "schema version 99 is newer"),
    ],
    ids=["not-sqlite", "corrupt", "newer-schema"],
)
def test_unusable_database_exits_3_and_is_left_untouched(
    tmp_path: Path, make: Callable[[Path], None], reason: str
) -> None:
    path = tmp_path / "other.db"
    make(path)
    before = path.read_bytes()
    siblings = sorted(p.name for p in tmp_path.iterdir())
    for args in (("agents",), ("send", "bob", "hi"), ("inbox", "--json")):
        result = run_mesh(path, *args)
        assert result.returncode == 3, result.stderr
        assert result.stdout == ""
        assert f"cannot use database {path}: " in result.stderr and reason in result.stderr
        assert "Traceback" not in result.stderr
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == siblings


# -- identity -----------------------------------------------------------------------------


def test_from_borrows_a_session_and_reuses_it_on_the_next_run(live: Mesh, db_path: Path) -> None:
    """The cron job's round trip: ask on one run, take the answer on the next."""
    bob = live.register("bob")
    asked = run_mesh(
        db_path,
        "send",
        "bob",
        "nightly build red?",
        "--from",
        "cron",
        "--json",
        name="someone-else",
    )
    assert asked.returncode == 0, asked.stderr
    question = json.loads(asked.stdout)
    assert question["sender_name"] == "cron"
    [cron] = sessions_named(live, "cron")
    assert cron.status.value == "stopped"  # borrowed: not shown as a live agent
    assert cron.kind == "cli" and cron.metadata["client"] == "mesh-cli"

    live.reply(bob.session_id, question["message_id"], "yes, flaky test")
    taken = run_mesh(db_path, "inbox", "--from", "cron", "--json", name="someone-else")
    assert taken.returncode == 0, taken.stderr
    assert [m["content"] for m in json.loads(taken.stdout)] == ["yes, flaky test"]
    [again] = sessions_named(live, "cron")  # the same session, not a second one
    assert again.session_id == cron.session_id and again.status.value == "stopped"


def test_an_empty_from_is_refused_not_taken_as_the_login_user(
    live: Mesh, db_path: Path, cli: Any
) -> None:
    """`--from ""` (an unset variable in a script) must not quietly act as the person."""
    live.register("bob")
    code, out, err = cli("send", "bob", "hello", "--from", "")
    assert code == 1 and "name" in err and out == ""
    # Run as a process with a time-out: acting as the person, it would follow forever.
    follow = run_mesh(db_path, "inbox", "--follow", "--from", "")
    assert follow.returncode == 1 and "name" in follow.stderr and follow.stdout == ""
    assert sessions_named(live, "alice") == [] and live.unread_counts() == {}


def test_an_already_active_session_is_used_and_left_running(live: Mesh, db_path: Path) -> None:
    """The person's TUI is running as alice: the CLI acts as it and must not stop it."""
    tui = live.register("alice", kind="human")
    live.register("bob")
    result = run_mesh(db_path, "send", "bob", "from my shell", "--json", name="alice")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sender_session_id"] == tui.session_id
    [alice] = sessions_named(live, "alice")
    assert alice.status.value == "active" and alice.kind == "human"


# -- stdin --------------------------------------------------------------------------------


def test_content_dash_reads_stdin(live: Mesh, db_path: Path) -> None:
    bob = live.register("bob")
    body = "line one\nzweite Zeile — ü ✓\n\n  indented\n"
    result = run_mesh(db_path, "send", "bob", "-", stdin=body.encode("utf-8"))
    assert result.returncode == 0, result.stderr
    [message] = live.peek_inbox(bob.session_id)
    assert message.content == body.rstrip("\n")


def test_invalid_utf8_on_stdin_is_refused_and_nothing_is_sent(live: Mesh, db_path: Path) -> None:
    bob = live.register("bob")
    result = run_mesh(db_path, "send", "bob", "-", stdin=b"caf\xe9 latin-1 text", name="cron")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "standard input is not valid UTF-8 (byte 0xe9 at offset 3)" in result.stderr
    assert "iconv" in result.stderr
    assert live.peek_inbox(bob.session_id) == []
    assert sessions_named(live, "cron") == []  # refused before acting as anyone


# -- waiting and following ----------------------------------------------------------------


def test_send_wait_prints_the_reply_from_another_process(live: Mesh, db_path: Path) -> None:
    bob = live.register("bob")
    asker = start_mesh(
        db_path, "send", "bob", "which port?", "--wait", "30", "--json", name="alice"
    )
    try:
        [question] = wait_until(lambda: live.peek_inbox(bob.session_id), "the question")
        answer = run_mesh(db_path, "reply", str(question.message_id), "8080", name="bob")
        assert answer.returncode == 0, answer.stderr
        out, err = asker.communicate(timeout=TIMEOUT)
    finally:
        asker.kill()
    assert asker.returncode == 0, err
    result = json.loads(out)
    assert set(result) == MESSAGE_KEYS | {"warnings", "reply"}
    assert result["message_id"] == question.message_id
    assert set(result["reply"]) == MESSAGE_KEYS
    assert (result["reply"]["content"], result["reply"]["sender_name"]) == ("8080", "bob")
    assert result["reply"]["read"] is True


def test_send_wait_times_out_with_exit_1(live: Mesh, db_path: Path) -> None:
    live.register("bob")
    result = run_mesh(db_path, "send", "bob", "anyone?", "--wait", "0.3")
    assert result.returncode == 1
    assert "no reply to message 1 within 0.3 s" in result.stderr
    assert "mesh show 1" in result.stderr
    [alice] = sessions_named(live, "alice")
    assert alice.status.value == "stopped"


def test_send_wait_heartbeats_while_it_waits(live: Mesh, db_path: Path) -> None:
    """A long wait must not show the asker as stale (nor stop a session it did not borrow)."""
    minute_ago = datetime.now(UTC) - timedelta(seconds=60)
    with Mesh(db_path, clock=FixedClock(minute_ago)) as past:
        past.register("alice", kind="human")
    bob = live.register("bob")
    assert sessions_named(live, "alice")[0].status.value == "stale"
    asker = start_mesh(db_path, "send", "bob", "still there?", "--wait", "60", name="alice")
    try:
        [question] = wait_until(lambda: live.peek_inbox(bob.session_id), "the question")
        wait_until(
            lambda: sessions_named(live, "alice")[0].status.value == "active",
            "the waiting session's heartbeat",
        )
        live.reply(bob.session_id, question.message_id, "yes")
        out, err = asker.communicate(timeout=TIMEOUT)
    finally:
        asker.kill()
    assert asker.returncode == 0, err
    assert "yes" in out and "bob → alice" in out
    assert sessions_named(live, "alice")[0].status.value == "active"


def test_ctrl_c_exits_130_without_a_traceback_and_releases_the_session(
    live: Mesh, db_path: Path
) -> None:
    bob = live.register("bob")
    asker = start_mesh(db_path, "send", "bob", "waiting…", "--wait", "60", name="alice")
    try:
        wait_until(lambda: live.peek_inbox(bob.session_id), "the question")
        asker.send_signal(signal.SIGINT)
        _, err = asker.communicate(timeout=TIMEOUT)
    finally:
        asker.kill()
    assert asker.returncode == 130
    assert "Traceback" not in err and "interrupted" in err
    [alice] = sessions_named(live, "alice")
    assert alice.status.value == "stopped"


CTRL_C_IN_EXEC = """
import os, signal, sys
import mesh_cli.cli as cli

def status(args, mesh):
    # ctrl+c lands while code built from source text runs, as in a dataclass's methods
    # being made during an import
    exec("os.kill(os.getpid(), signal.SIGINT)\\nwhile True: pass", {"os": os, "signal": signal})

cli.cmd_status = status
sys.exit(cli.main(["--db", sys.argv[1], "status"]))
"""


def test_ctrl_c_inside_exec_of_source_text_still_exits_130(db_path: Path, tmp_path: Path) -> None:
    """CPython marks the process to die by SIGINT when a KeyboardInterrupt leaves an
    `exec` of source text, caught or not (seen at exit when run with `-m`, as
    `python -m mesh_cli` is); `mesh` raises its own exception instead."""
    (tmp_path / "ctrl_c_probe.py").write_text(CTRL_C_IN_EXEC, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "ctrl_c_probe", str(db_path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and "interrupted" in done.stderr


def _lines(stream: Any) -> queue.Queue[str]:
    """Read `stream` line by line in a thread, so a test can wait with a time-out."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _bob_now(db_path: Path) -> Any:
    """Bob's session, read with a connection that is closed again at once."""
    with Mesh(db_path) as mesh:
        [bob] = sessions_named(mesh, "bob")
        return bob, mesh.peek_inbox(bob.session_id)


def test_inbox_follow_json_prints_each_message_as_it_arrives(db_path: Path) -> None:
    # No connection stays open in this process: the follower alone must hold the WAL,
    # as it does on a real machine once every short-lived `mesh` command has exited.
    with Mesh(db_path) as setup:
        old = setup.register("bob")
        setup.send(setup.register("carol").session_id, "bob", "waiting since before")
        setup.deregister(old.session_id)
    follower = start_mesh(db_path, "inbox", "--follow", "--json", name="bob")
    try:
        lines = _lines(follower.stdout)
        first = json.loads(lines.get(timeout=TIMEOUT))
        assert first["content"] == "waiting since before" and set(first) == MESSAGE_KEYS
        bob = _bob_now(db_path)[0]
        # The stopped agent session is re-activated as it was (still an agent), now
        # naming this process.
        assert (bob.status.value, bob.kind) == ("active", "agent")
        assert bob.metadata["pid"] == follower.pid
        # Other processes come and go: the follower must keep seeing their commits.
        assert run_mesh(db_path, "agents").returncode == 0
        assert run_mesh(db_path, "status").returncode == 0
        sent = run_mesh(db_path, "send", "bob", "are you there?", "--json", name="alice")
        assert sent.returncode == 0, sent.stderr
        second = json.loads(lines.get(timeout=TIMEOUT))
        assert second["message_id"] == json.loads(sent.stdout)["message_id"]
        assert second["read"] is True
        follower.send_signal(signal.SIGTERM)
        _, err = follower.communicate(timeout=TIMEOUT)
    finally:
        follower.kill()
    assert follower.returncode == 128 + signal.SIGTERM and "Traceback" not in err
    bob, waiting = _bob_now(db_path)
    assert bob.status.value == "stopped"  # it borrowed the stopped session: stopped again
    assert waiting == []


def test_inbox_follow_leaves_an_active_session_running(live: Mesh, db_path: Path) -> None:
    tui = live.register("bob", kind="human")
    follower = start_mesh(db_path, "inbox", "--follow", "--json", name="bob")
    try:
        lines = _lines(follower.stdout)
        live.send(live.register("carol").session_id, "bob", "hi bob")
        assert json.loads(lines.get(timeout=TIMEOUT))["content"] == "hi bob"
        follower.send_signal(signal.SIGINT)
        follower.communicate(timeout=TIMEOUT)
    finally:
        follower.kill()
    assert follower.returncode == 130
    [bob] = sessions_named(live, "bob")
    assert (bob.session_id, bob.status.value, bob.kind) == (tui.session_id, "active", "human")


# -- what people see ----------------------------------------------------------------------


def test_hostile_names_and_bodies_are_shown_literally(live: Mesh, db_path: Path) -> None:
    evil = live.register("[bold]x[/]", kind="agent", description="[/] \x1b]0;pwned\x07")
    live.register("[/]", kind="agent")
    body = "\x1b[2J[red]boom[/red] \x9b31m"
    alice = live.register("alice")
    sent = live.send(evil.session_id, alice.session_id, body)

    roster = run_mesh(db_path, "agents")
    assert roster.returncode == 0, roster.stderr
    assert "[bold]x[/]" in roster.stdout and "[/] ␛]0;pwned␇" in roster.stdout
    assert "\x1b" not in roster.stdout and "\x07" not in roster.stdout

    for args in (("show", str(sent.message_id)), ("inbox",)):
        result = run_mesh(db_path, *args)
        assert result.returncode == 0, result.stderr
        assert "␛[2J[red]boom[/red] <U+009B>31m" in result.stdout
        assert "[bold]x[/] → alice" in result.stdout
        assert "\x1b" not in result.stdout and "\x9b" not in result.stdout


def test_wide_content_in_a_narrow_pipe_does_not_crash(live: Mesh, db_path: Path) -> None:
    bob = live.register("b" * 120, description="d" * 300)
    live.register("alice")
    live.send(bob.session_id, "alice", "x" * 9_000)
    env = _env("alice") | {"COLUMNS": "30"}
    for args in (("agents",), ("inbox",), ("show", "1"), ("status",)):
        result = run_mesh(db_path, *args, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip()
        assert "\x1b" not in result.stdout


@pytest.mark.parametrize("mode", [(), ("--json",)], ids=["table", "json"])
def test_a_reader_that_goes_away_ends_the_command_quietly(
    live: Mesh, db_path: Path, mode: tuple[str, ...]
) -> None:
    """`mesh show 1 | head -1`: exit 141 (as a shell reports SIGPIPE), no traceback."""
    alice, bob = live.register("alice"), live.register("bob")
    for _ in range(10):  # ~100 KB of table, ~200 KB of JSON: more than a pipe holds
        live.send(alice.session_id, bob.session_id, "✓" * 3_400)
    reader = subprocess.Popen(
        mesh_argv(db_path, "show", "1", *mode),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        env=_env("alice"),
    )
    try:
        assert reader.stdout is not None and reader.stderr is not None
        assert len(reader.stdout.read(10)) == 10  # unbuffered: exactly what we asked for
        reader.stdout.close()
        err = reader.stderr.read().decode()
        reader.wait(timeout=TIMEOUT)
    finally:
        reader.kill()
    assert reader.returncode == 141 and "Traceback" not in err and "Exception" not in err


def test_roster_table_shows_kind_unread_and_heartbeat_age(live: Mesh, cli: Any) -> None:
    bob = live.register("bob", kind="agent", description="# the payments API")
    live.send(live.register("carol", kind="human").session_id, "bob", "ping")
    code, out, _ = cli("agents")
    assert code == 0
    [line] = [row for row in out.splitlines() if " bob " in row]
    assert "●" in line and "agent" in line and " 1 " in line and "s ago (active)" in line
    assert bob.agent_description in out


def test_ago_is_short_and_relative() -> None:
    now = datetime(2026, 11, 23, 14, 0, 0, tzinfo=UTC)
    assert ago("2026-11-23T13:59:48.000Z", now) == "12s ago"
    assert ago("2026-11-23T13:57:00.000Z", now) == "3m ago"
    assert ago("2026-11-23T12:00:00.000Z", now) == "2h ago"
    assert ago("2026-11-19T14:00:00.000Z", now) == "4d ago"
    assert ago("2026-11-23T14:00:05.000Z", now) == "just now"
    assert ago("last tuesday\x1b[2J", now) == "last tuesday␛[2J"
