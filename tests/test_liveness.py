"""Only live sessions receive mail, and a take marks read only what it handed over.

Real processes on a real file: a session whose process was SIGKILLed must not keep its
workspace's mail; a take renders inside its transaction and is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mesh_agents.hooks import run_hook
from mesh_core import Mesh, Message
from mesh_core.liveness import is_dead, process_facts
from mesh_core.models import Status

REGISTER_AND_SLEEP = textwrap.dedent(
    """
    import sys, time
    from mesh_core import Mesh
    mesh = Mesh(sys.argv[1])
    agent = mesh.register("api", cwd=sys.argv[2])
    print(agent.session_id, flush=True)
    time.sleep(600)
    """
)


def _start_api(db: Path, cwd: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", REGISTER_AND_SLEEP, str(db), str(cwd)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def test_a_killed_sessions_mail_goes_to_the_restarted_one(tmp_path: Path) -> None:
    db = tmp_path / "mesh.db"
    with Mesh(db) as mesh:
        alice = mesh.register("alice", cwd=tmp_path).session_id
        proc, killed = _start_api(db, tmp_path)
        try:
            waiting = mesh.send(alice, "api", "before the crash")
            assert waiting.recipient_session_id == killed
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        # The next send notices the dead process at once (not after 10 minutes).
        later = mesh.send(alice, "api", "after the crash")
        assert mesh.agent(killed).status is Status.STOPPED
        assert later.expires_at is not None  # waits for the next session of "api"
        restarted = mesh.register("api", cwd=tmp_path).session_id
        got = [m.content for m in mesh.inbox(restarted)]
        assert got == ["before the crash", "after the crash"]


def test_a_reused_pid_is_not_taken_for_the_old_process() -> None:
    mine = process_facts(os.getpid())
    assert not is_dead(mine)
    assert is_dead({**mine, "pid_start": "1"})  # same pid, another start time
    assert not is_dead({**mine, "host": "another-machine"})  # never judged from here


def test_a_take_sets_aside_what_it_cannot_render_and_delivers_the_rest(mesh: Mesh) -> None:
    alice = mesh.register("alice").session_id
    bob = mesh.register("bob").session_id
    for text in ("one", "boom", "three"):
        mesh.send(alice, "bob", text, new_thread=True)

    def render(message: Message) -> str:
        if message.content == "boom":
            raise ValueError("cannot show this one")
        return message.content

    taken = mesh.take(bob, render)
    assert list(taken.rendered) == ["one", "three"]
    assert len(taken.set_aside) == 1 and "stays unread" in taken.set_aside[0]
    assert [m.content for m in mesh.peek_inbox(bob)] == ["boom"]  # not lost


def test_a_failing_render_marks_nothing_read(mesh: Mesh) -> None:
    alice = mesh.register("alice").session_id
    bob = mesh.register("bob").session_id
    mesh.send(alice, "bob", "hello")

    def render(message: Message) -> str:
        raise KeyboardInterrupt  # not an Exception: the whole take rolls back

    with pytest.raises(KeyboardInterrupt):
        mesh.take(bob, render)
    assert [m.content for m in mesh.peek_inbox(bob)] == ["hello"]


def test_a_take_is_bounded_by_count_and_bytes_and_says_how_many_wait(mesh: Mesh) -> None:
    senders = [mesh.register(f"s{n}").session_id for n in range(3)]
    bob = mesh.register("bob").session_id
    for n in range(30):
        mesh.send(senders[n % 3], "bob", f"m{n:02d} " + "x" * 100, new_thread=True)
    first = mesh.take(bob, lambda m: m.content, max_count=20)
    assert (len(first.messages), first.more) == (20, 10)
    assert first.more_note("call check_inbox again") == (
        "10 more messages wait: call check_inbox again"
    )
    by_bytes = mesh.take(bob, lambda m: m.content, max_bytes=350)
    assert (len(by_bytes.messages), by_bytes.more) == (3, 7)
    rest = mesh.take(bob, lambda m: m.content)
    assert (len(rest.messages), rest.more) == (7, 0)
    seen = [m.content[:3] for m in (*first.messages, *by_bytes.messages, *rest.messages)]
    assert sorted(seen) == [f"m{n:02d}" for n in range(30)]  # each exactly once


def test_mark_read_marks_only_the_sessions_own_messages(mesh: Mesh) -> None:
    alice = mesh.register("alice").session_id
    bob = mesh.register("bob").session_id
    to_bob = mesh.send(alice, "bob", "for bob").message_id
    to_alice = mesh.send(bob, "alice", "for alice").message_id
    assert mesh.mark_read(bob, [to_bob, to_alice]) == [to_bob]
    assert not mesh.get(to_alice).read


def test_a_hook_never_revives_a_stopped_session(tmp_path: Path, mesh: Mesh) -> None:
    repo = tmp_path / "hostrepo"
    repo.mkdir()
    old = mesh.register("hostrepo", cwd=repo)
    alice = mesh.register("alice").session_id
    mesh.deregister(old.session_id)
    mesh.send(alice, "hostrepo", "waiting since before")
    output = run_hook(mesh, "SessionStart", {"cwd": str(repo)})
    assert mesh.agent(old.session_id).status is Status.STOPPED  # nobody runs it
    assert output is not None
    context = json.dumps(output)
    assert "waiting since before" in context
    live = [a for a in mesh.agents("active") if a.agent_name == "hostrepo"]
    assert len(live) == 1 and live[0].session_id != old.session_id
    assert live[0].metadata["pid"] == live[0].metadata["host_pid"]  # lives as its host


def test_mesh_inbox_takes_a_bounded_batch_and_says_how_many_more(tmp_path: Path) -> None:
    db = tmp_path / "mesh.db"
    with Mesh(db) as mesh:
        senders = [mesh.register(f"s{n}").session_id for n in range(3)]
        mesh.register("bob")
        for n in range(25):
            mesh.send(senders[n % 3], "bob", f"m{n}", new_thread=True)
    done = subprocess.run(
        [sys.executable, "-m", "mesh_cli", "--db", str(db), "inbox", "--from", "bob", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    taken = json.loads(done.stdout)
    assert len(taken) == 20 and all(m["read"] for m in taken)
    assert "5 more messages wait: run `mesh inbox` again" in done.stderr
    with Mesh(db) as mesh:
        assert len(mesh.peek_inbox(mesh.session_for("bob").agent.session_id)) == 5


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="pidfds are Linux's")
def test_held_processes_are_bounded_and_their_exit_is_seen_by_the_next_check() -> None:
    """A live process is held by a pidfd (the next check is one poll): at most KEEP are
    held, and a held process that exits (a zombie, not yet reaped) is dead at once."""
    from mesh_core.liveness import _HELD

    procs = [subprocess.Popen(["sleep", "600"]) for _ in range(_HELD.KEEP + 5)]
    try:
        before = len(os.listdir("/proc/self/fd"))
        facts = [process_facts(p.pid) for p in procs]
        assert not any(is_dead(f) for f in facts)
        assert not any(is_dead(f) for f in facts)  # held ones answer from their pidfd
        assert len(os.listdir("/proc/self/fd")) <= before + _HELD.KEEP
        last = procs[-1]
        os.kill(last.pid, signal.SIGKILL)
        os.waitid(os.P_PID, last.pid, os.WEXITED | os.WNOWAIT)  # exited, still a zombie
        assert is_dead(facts[-1])
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
