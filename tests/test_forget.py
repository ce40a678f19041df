"""Forgetting a stopped session: gone from the roster, its messages stay readable, and
refused (nothing changed) for a live session or one that mail still waits for."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_core import FixedClock, Mesh
from mesh_core.errors import CannotForget, SessionNotFound


def test_a_stopped_session_is_forgotten_and_its_messages_stay(tmp_path: Path) -> None:
    with Mesh(tmp_path / "m.db") as mesh:
        bob = mesh.register("bob").session_id
        old = mesh.register("old-run").session_id
        sent = mesh.send(old, "bob", "from the old run", new_thread=True)
        reply = mesh.reply(bob, sent.message_id, "got it")
        mesh.inbox(old)  # nothing waits for it
        mesh.deregister(old)
        forgotten = mesh.forget_session(old)
        assert forgotten.session_id == old and forgotten.agent_name == "old-run"
        assert old not in {a.session_id for a in mesh.agents("all")}
        with pytest.raises(SessionNotFound):
            mesh.agent(old)
        thread = mesh.thread(sent.message_id)
        assert [m.content for m in thread] == ["from the old run", "got it"]
        assert mesh.get(reply.message_id).recipient_session_id == old
        with pytest.raises(SessionNotFound):
            mesh.forget_session(old)  # once


def test_a_live_session_is_not_forgotten(tmp_path: Path) -> None:
    clock = FixedClock("2026-11-23T14:00:00.000Z")
    with Mesh(tmp_path / "m.db", clock=clock) as mesh:
        alive = mesh.register("alive").session_id
        with pytest.raises(CannotForget, match="it is active; only a stopped session"):
            mesh.forget_session(alive)
        clock.advance(mesh.config.stale_after + 1)  # stale is not stopped either
        with pytest.raises(CannotForget, match="it is stale"):
            mesh.forget_session(alive)
        assert mesh.agent(alive).agent_name == "alive"


def test_not_while_mail_waits_for_it(tmp_path: Path) -> None:
    with Mesh(tmp_path / "m.db") as mesh:
        bob = mesh.register("bob").session_id
        gone = mesh.register("gone").session_id
        mesh.deregister(gone)
        waiting = mesh.send(bob, "gone", "for your next session")
        with pytest.raises(CannotForget, match="1 unread message waits for"):
            mesh.forget_session(gone)
        nxt = mesh.register("gone").session_id  # the next session takes it over
        assert [m.message_id for m in mesh.inbox(nxt)] == [waiting.message_id]
        mesh.forget_session(gone)
        assert {a.session_id for a in mesh.agents("all")} == {bob, nxt}


def test_a_process_started_after_the_forget_still_names_its_messages(tmp_path: Path) -> None:
    """The name is kept in the file, not only in the memory of the process that forgot."""
    with Mesh(tmp_path / "m.db") as mesh:
        bob = mesh.register("bob").session_id
        old = mesh.register("old-run").session_id
        sent = mesh.send(old, "bob", "from the old run", new_thread=True)
        mesh.deregister(old)
        mesh.forget_session(old)
    with Mesh(tmp_path / "m.db") as later:
        (message,) = later.thread(sent.message_id)
        assert message.sender_name == "old-run" and message.recipient_session_id == bob
        assert later.names([old, bob]) == {old: "old-run", bob: "bob"}


def test_names_of_more_sessions_than_one_in_list_holds(tmp_path: Path) -> None:
    """`names` reads its ids in chunks (SQLite caps a statement's parameters): 1,200
    sessions, a third of them forgotten, all named, in a process started afterwards."""
    from mesh_core.store import IN_CHUNK

    mesh = Mesh(tmp_path / "m.db")
    ids = [mesh.register(f"ws-{n}", cwd="/").session_id for n in range(1200)]
    for sid in ids[::3]:
        mesh.deregister(sid)
        mesh.forget_session(sid)
    mesh.close()
    later = Mesh(tmp_path / "m.db")
    assert len(ids) > 2 * IN_CHUNK
    assert later.names(ids) == {sid: f"ws-{n}" for n, sid in enumerate(ids)}
    later.close()
