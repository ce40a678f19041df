"""Every rule of docs/contract.md §3–§4 at its boundary, with the injected clock (no sleeps)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from seedfile import plain_rows

from mesh_core import FixedClock, Mesh, iso, parse_ts
from mesh_core.errors import (
    ContentTooLarge,
    EmptyContent,
    InvalidContent,
    InvalidName,
    InvalidPriority,
    MessageNotFound,
    NoBroadcastRecipients,
    RateLimited,
    SelfMessage,
    UnknownRecipient,
)
from mesh_core.models import Agent, Status

Register = Callable[..., Agent]


@pytest.fixture
def reg(mesh: Mesh, tmp_path: Path) -> Register:
    """Register a participant in a plain folder (no git repo around it)."""
    folder = tmp_path / "work"
    folder.mkdir(exist_ok=True)

    def register(name: str, kind: str = "agent") -> Agent:
        return mesh.register(name, kind=kind, cwd=folder)

    return register


def count_messages(db_path: Path) -> int:
    count: int = plain_rows(db_path, "SELECT count(*) FROM agent_messages")[0][0]
    return count


# -- §4.3 content ---------------------------------------------------------------------


def test_content_at_the_byte_cap_passes_and_one_byte_more_is_refused(
    mesh: Mesh, reg: Register, db_path: Path
) -> None:
    alice, _ = reg("alice"), reg("bob")
    sent = mesh.send(alice.session_id, "bob", "a" * 10_240)
    assert len(sent.content.encode()) == 10_240
    with pytest.raises(ContentTooLarge) as info:
        mesh.send(alice.session_id, "bob", "a" * 10_241)
    assert "10,241" in str(info.value) and "10,240" in str(info.value)
    assert (info.value.size, info.value.limit) == (10_241, 10_240)
    assert count_messages(db_path) == 1


@pytest.mark.parametrize(
    ("char", "width"), [("é", 2), ("€", 3), ("😀", 4)], ids=["2-byte", "3-byte", "4-byte"]
)
def test_multibyte_text_is_measured_in_utf8_bytes(
    mesh: Mesh, reg: Register, char: str, width: int
) -> None:
    alice, _ = reg("alice"), reg("bob")
    fits = char * (10_240 // width)
    fits += "a" * (10_240 - len(fits.encode()))
    assert len(fits.encode()) == 10_240
    assert mesh.send(alice.session_id, "bob", fits).content == fits
    # Fewer characters than the cap, but more bytes: refused with the byte count.
    over = char * (10_240 // width + 1)
    assert len(over) < 10_240 < len(over.encode())
    with pytest.raises(ContentTooLarge) as info:
        mesh.send(alice.session_id, "bob", over, new_thread=True)
    assert info.value.size == len(over.encode())


def test_nul_character_is_refused(mesh: Mesh, reg: Register, db_path: Path) -> None:
    alice, _ = reg("alice"), reg("bob")
    with pytest.raises(InvalidContent, match="NUL"):
        mesh.send(alice.session_id, "bob", "before\x00after")
    assert count_messages(db_path) == 0


@pytest.mark.parametrize("content", ["", " ", "\n\t  \r\n", "\u3000"])
def test_empty_or_whitespace_content_is_refused(
    mesh: Mesh, reg: Register, db_path: Path, content: str
) -> None:
    alice, _ = reg("alice"), reg("bob")
    with pytest.raises(EmptyContent):
        mesh.send(alice.session_id, "bob", content)
    assert count_messages(db_path) == 0


def test_content_keeps_its_whitespace_and_markup_as_written(mesh: Mesh, reg: Register) -> None:
    alice, bob = reg("alice"), reg("bob")
    text = "  [bold]x[/] \x1b[2J\n  indented"
    mesh.send(alice.session_id, "bob", text)
    assert [m.content for m in mesh.inbox(bob.session_id)] == [text]


# -- §4.4 priority --------------------------------------------------------------------


@pytest.mark.parametrize("priority", ["low", "normal", "high", "urgent"])
def test_each_priority_is_accepted_and_stored(
    mesh: Mesh, reg: Register, db_path: Path, priority: str
) -> None:
    alice, _ = reg("alice"), reg("bob")
    sent = mesh.send(alice.session_id, "bob", "hi", priority=priority)
    stored = plain_rows(
        db_path, "SELECT priority FROM agent_messages WHERE message_id = ?", (sent.message_id,)
    )
    assert sent.priority == stored[0][0] == priority


@pytest.mark.parametrize("priority", ["critical", "", "URGENT!", None, 1])
def test_unknown_priority_is_refused(
    mesh: Mesh, reg: Register, db_path: Path, priority: Any
) -> None:
    alice, _ = reg("alice"), reg("bob")
    with pytest.raises(InvalidPriority, match="low, normal, high, urgent"):
        mesh.send(alice.session_id, "bob", "hi", priority=priority)
    assert count_messages(db_path) == 0


# -- §4.5 rate limit ------------------------------------------------------------------


def test_ten_per_pair_per_minute_pass_and_the_eleventh_waits(
    mesh: Mesh, reg: Register, clock: FixedClock
) -> None:
    alice, _ = reg("alice"), reg("bob")
    for _ in range(10):
        mesh.send(alice.session_id, "bob", "tick")
        clock.advance(1)
    clock.advance(-0.5)  # t = 9.5 s; the oldest of the ten was sent at t = 0
    with pytest.raises(RateLimited) as info:
        mesh.send(alice.session_id, "bob", "one too many")
    assert info.value.retry_after == pytest.approx(50.5, abs=0.01)
    assert "51 s" in str(info.value)
    clock.advance(50.499)  # t = 59.999: the first message is still inside the window
    with pytest.raises(RateLimited) as info:
        mesh.send(alice.session_id, "bob", "still too early")
    assert 0 < info.value.retry_after <= 0.01
    clock.advance(0.001)  # t = 60: the window has moved past the first message
    mesh.send(alice.session_id, "bob", "now it passes")
    with pytest.raises(RateLimited):  # and the window is full again
        mesh.send(alice.session_id, "bob", "and full again")


def test_replies_count_toward_the_rate_limit(mesh: Mesh, reg: Register) -> None:
    alice, bob = reg("alice"), reg("bob")
    question = mesh.send(bob.session_id, "alice", "question")
    for _ in range(6):
        mesh.reply(alice.session_id, question.message_id, "answer")
    for _ in range(4):
        mesh.send(alice.session_id, "bob", "more")
    with pytest.raises(RateLimited):
        mesh.send(alice.session_id, "bob", "eleventh")
    with pytest.raises(RateLimited):
        mesh.reply(alice.session_id, question.message_id, "eleventh reply")


def test_rate_limit_is_per_ordered_pair(mesh: Mesh, reg: Register) -> None:
    alice, bob, carol = reg("alice"), reg("bob"), reg("carol")
    for _ in range(10):
        mesh.send(alice.session_id, "bob", "x")
    with pytest.raises(RateLimited):
        mesh.send(alice.session_id, "bob", "x")
    mesh.send(alice.session_id, "carol", "other recipient")
    mesh.send(carol.session_id, "bob", "other sender")
    mesh.send(bob.session_id, "alice", "the other direction")


# -- §4.2 self-message ----------------------------------------------------------------


def test_sending_to_yourself_is_refused(mesh: Mesh, reg: Register, db_path: Path) -> None:
    alice = reg("alice")
    with pytest.raises(SelfMessage):
        mesh.send(alice.session_id, alice.session_id, "me")
    with pytest.raises(SelfMessage):
        mesh.send(alice.session_id, "ALICE", "me by name")
    assert count_messages(db_path) == 0


# -- §4.1 recipient -------------------------------------------------------------------


def test_recipient_by_session_id(mesh: Mesh, reg: Register) -> None:
    alice, bob = reg("alice"), reg("bob")
    reg("bob")  # a second, newer session of the same workspace
    sent = mesh.send(alice.session_id, bob.session_id, "to that very session")
    assert sent.recipient_session_id == bob.session_id


def test_recipient_exact_name_beats_other_case(
    mesh: Mesh, reg: Register, clock: FixedClock
) -> None:
    alice, upper, lower = reg("alice"), reg("Bob"), reg("bob")
    clock.advance(5)
    mesh.heartbeat(upper.session_id)  # the other-case one has the latest heartbeat
    assert mesh.send(alice.session_id, "bob", "x").recipient_session_id == lower.session_id
    assert mesh.send(alice.session_id, "Bob", "x").recipient_session_id == upper.session_id


def test_recipient_case_insensitive_name(mesh: Mesh, reg: Register) -> None:
    alice, api = reg("alice"), reg("My-API")
    sent = mesh.send(alice.session_id, "my-api", "x")
    assert sent.recipient_session_id == api.session_id
    assert sent.recipient_name == "My-API"


def test_two_live_sessions_of_a_workspace_route_to_one_and_strand_nothing(
    mesh: Mesh, reg: Register, clock: FixedClock
) -> None:
    """Two terminals in one repo: mail goes to one of them, the same one whichever beat
    last; when it exits, its unread mail moves to the other."""
    alice, one, other = reg("alice"), reg("api"), reg("api")
    chosen = mesh.send(alice.session_id, "api", "1").recipient_session_id
    first, second = (one, other) if chosen == one.session_id else (other, one)
    clock.advance(5)
    mesh.heartbeat(second.session_id)  # the other one beat last: routing does not flip
    assert mesh.send(alice.session_id, "api", "2").recipient_session_id == first.session_id
    mesh.deregister(first.session_id)
    assert [m.content for m in mesh.inbox(second.session_id)] == ["1", "2"]
    assert mesh.send(alice.session_id, "api", "3").recipient_session_id == second.session_id
    clock.advance(5)
    mesh.deregister(second.session_id)  # both stopped: the one seen last waits for its mail
    assert mesh.send(alice.session_id, "api", "4").recipient_session_id == second.session_id


def test_stopped_recipient_gets_the_message_with_a_24h_expiry(
    mesh: Mesh, reg: Register, clock: FixedClock
) -> None:
    alice, old, recent = reg("alice"), reg("worker"), reg("worker")
    mesh.deregister(old.session_id)
    clock.advance(5)
    mesh.deregister(recent.session_id)
    clock.advance(5)
    sent = mesh.send(alice.session_id, "worker", "wait for me")
    assert sent.recipient_session_id == recent.session_id  # the most recently seen
    assert sent.expires_at == iso(clock.now() + timedelta(hours=24))
    assert any("stopped" in w for w in sent.warnings)


def test_unknown_recipient_names_the_workspaces_that_exist(
    mesh: Mesh, reg: Register, db_path: Path
) -> None:
    alice, _ = reg("alice"), reg("bob")
    with pytest.raises(UnknownRecipient) as info:
        mesh.send(alice.session_id, "carol", "x")
    assert "carol" in str(info.value)
    assert set(info.value.known) == {"alice", "bob"}
    assert "alice" in str(info.value) and "bob" in str(info.value)
    assert count_messages(db_path) == 0


# -- broadcast ------------------------------------------------------------------------


def test_broadcast_reaches_every_active_session_but_the_sender(
    mesh: Mesh, reg: Register, db_path: Path
) -> None:
    alice, bob, carol, dave = reg("alice"), reg("bob"), reg("carol"), reg("dave")
    mesh.deregister(dave.session_id)
    copies = mesh.broadcast(alice.session_id, "all hands")
    assert sorted(m.recipient_session_id for m in copies) == sorted(
        [bob.session_id, carol.session_id]
    )
    first = mesh.send(alice.session_id, "*", "again")
    assert first.recipient_session_id in {bob.session_id, carol.session_id}
    rows = plain_rows(db_path, "SELECT recipient_session_id FROM agent_messages")
    assert sorted(r[0] for r in rows) == sorted([bob.session_id, carol.session_id] * 2)


def test_broadcast_to_nobody_is_refused(mesh: Mesh, reg: Register) -> None:
    alice = reg("alice")
    with pytest.raises(NoBroadcastRecipients):
        mesh.send(alice.session_id, "*", "anyone?")


# -- §4.6 auto-thread -----------------------------------------------------------------


def test_auto_thread_joins_within_ten_minutes_either_way(
    mesh: Mesh, reg: Register, clock: FixedClock
) -> None:
    alice, bob = reg("alice"), reg("bob")
    root = mesh.send(alice.session_id, "bob", "root")
    assert root.original_message_id is None
    clock.advance(599)
    back = mesh.send(bob.session_id, "alice", "the other way")
    assert back.original_message_id == root.message_id
    clock.advance(600)  # exactly 10 min after the last message of the pair: still joins
    joined = mesh.send(alice.session_id, "bob", "on the edge")
    assert joined.original_message_id == root.message_id
    clock.advance(600.001)
    fresh = mesh.send(alice.session_id, "bob", "a new topic")
    assert fresh.original_message_id is None


def test_new_thread_starts_a_thread_and_later_messages_join_it(
    mesh: Mesh, reg: Register, clock: FixedClock
) -> None:
    alice, bob = reg("alice"), reg("bob")
    first = mesh.send(alice.session_id, "bob", "one")
    clock.advance(1)
    second = mesh.send(alice.session_id, "bob", "two", new_thread=True)
    assert second.original_message_id is None
    clock.advance(1)
    third = mesh.send(bob.session_id, "alice", "three")
    assert third.original_message_id == second.message_id != first.message_id


def test_auto_thread_is_per_pair(mesh: Mesh, reg: Register) -> None:
    alice, _, _ = reg("alice"), reg("bob"), reg("carol")
    mesh.send(alice.session_id, "bob", "to bob")
    assert mesh.send(alice.session_id, "carol", "to carol").original_message_id is None


# -- reply and thread -----------------------------------------------------------------


def test_reply_goes_to_the_other_party_in_the_root_thread(
    mesh: Mesh, reg: Register, clock: FixedClock
) -> None:
    alice, bob = reg("alice"), reg("bob")
    root = mesh.send(alice.session_id, "bob", "question")
    clock.advance(1)
    answer = mesh.reply(bob.session_id, root.message_id, "answer")
    assert (answer.recipient_session_id, answer.original_message_id) == (
        alice.session_id,
        root.message_id,
    )
    clock.advance(1)
    # Replying to a reply still points at the root; replying to your own message goes
    # to the other party.
    again = mesh.reply(alice.session_id, answer.message_id, "thanks")
    assert (again.recipient_session_id, again.original_message_id) == (
        bob.session_id,
        root.message_id,
    )
    own = mesh.reply(alice.session_id, root.message_id, "also")
    assert own.recipient_session_id == bob.session_id


def test_reply_to_unknown_message_is_refused(mesh: Mesh, reg: Register, db_path: Path) -> None:
    alice = reg("alice")
    with pytest.raises(MessageNotFound, match="message not found"):
        mesh.reply(alice.session_id, 999, "hello?")
    assert count_messages(db_path) == 0


def test_thread_is_root_first_and_marks_nothing_read(
    mesh: Mesh, reg: Register, clock: FixedClock, db_path: Path
) -> None:
    alice, bob = reg("alice"), reg("bob")
    root = mesh.send(alice.session_id, "bob", "root")
    clock.advance(1)
    r1 = mesh.reply(bob.session_id, root.message_id, "r1")
    clock.advance(1)
    r2 = mesh.reply(alice.session_id, r1.message_id, "r2")
    for probe in (root, r1, r2):
        thread = mesh.thread(probe.message_id)
        assert [m.message_id for m in thread] == [root.message_id, r1.message_id, r2.message_id]
    assert mesh.get(r1.message_id).read is False
    assert plain_rows(db_path, "SELECT count(*) FROM agent_messages WHERE read = 1")[0][0] == 0
    assert [m.message_id for m in mesh.inbox(bob.session_id)] == [root.message_id, r2.message_id]


# -- §4.7 queue depth -----------------------------------------------------------------


def test_queue_depth_warning_only_above_fifty_unread(
    mesh: Mesh, reg: Register, clock: FixedClock
) -> None:
    bob = reg("bob")
    senders = [reg(f"sender{i}") for i in range(6)]
    sent = []
    for n in range(51):
        sent.append(mesh.send(senders[n // 10].session_id, "bob", f"m{n}"))
    assert all(not any("unread" in w for w in m.warnings) for m in sent[:50])
    assert any("more than 50 unread" in w for w in sent[50].warnings)
    mesh.inbox(bob.session_id)
    assert not mesh.send(senders[5].session_id, "bob", "after reading").warnings


# -- inbox ----------------------------------------------------------------------------


def test_inbox_order_priority_then_oldest_and_marks_exactly_those(
    mesh: Mesh, reg: Register, clock: FixedClock, db_path: Path
) -> None:
    alice, bob, carol = reg("alice"), reg("bob"), reg("carol")
    ids = {}
    for label, priority in [
        ("low", "low"),
        ("normal-old", "normal"),
        ("high", "high"),
        ("urgent", "urgent"),
        ("normal-new", "normal"),
    ]:
        ids[label] = mesh.send(alice.session_id, "bob", label, priority=priority).message_id
        clock.advance(1)
    other = mesh.send(alice.session_id, "carol", "not for bob")
    got = mesh.inbox(bob.session_id)
    assert [m.content for m in got] == ["urgent", "high", "normal-old", "normal-new", "low"]
    assert all(m.read and m.read_at == iso(clock.now()) for m in got)
    rows = plain_rows(db_path, "SELECT message_id, read, read_at FROM agent_messages")
    read_ids = {r["message_id"] for r in rows if r["read"] == 1}
    assert read_ids == set(ids.values())
    assert all(r["read_at"] is None for r in rows if r["message_id"] == other.message_id)
    assert mesh.inbox(bob.session_id) == []
    later = mesh.send(carol.session_id, "bob", "later")
    assert [m.message_id for m in mesh.inbox(bob.session_id)] == [later.message_id]


def test_inbox_excludes_expired_messages(
    mesh: Mesh, reg: Register, clock: FixedClock, db_path: Path
) -> None:
    alice, bob = reg("alice"), reg("bob")
    mesh.deregister(bob.session_id)
    waiting = mesh.send(alice.session_id, "bob", "while you were out")
    clock.advance(24 * 3600 + 1)
    mesh.heartbeat(bob.session_id)  # back, but a day too late
    assert mesh.inbox(bob.session_id) == []
    row = plain_rows(
        db_path, "SELECT read FROM agent_messages WHERE message_id = ?", (waiting.message_id,)
    )
    assert row[0][0] == 0


# -- §4.9 hand-over -------------------------------------------------------------------


def test_new_session_of_a_workspace_takes_over_its_unread_mail(
    mesh: Mesh, reg: Register, clock: FixedClock, db_path: Path
) -> None:
    alice, old, other = reg("alice"), reg("worker"), reg("other")
    read_before = mesh.send(alice.session_id, "worker", "read before the restart")
    mesh.inbox(old.session_id)
    mesh.deregister(old.session_id)
    mesh.deregister(other.session_id)
    expired = mesh.send(alice.session_id, "worker", "too old", new_thread=True)
    clock.advance(24 * 3600 + 1)
    waiting = mesh.send(alice.session_id, "worker", "waiting")
    not_ours = mesh.send(alice.session_id, "other", "for another workspace")
    new = reg("worker")
    assert new.session_id != old.session_id
    got = mesh.inbox(new.session_id)
    assert [m.message_id for m in got] == [waiting.message_id]
    assert got[0].expires_at is None
    owner = {
        r["message_id"]: r["recipient_session_id"]
        for r in plain_rows(db_path, "SELECT * FROM agent_messages")
    }
    assert owner[read_before.message_id] == old.session_id
    assert owner[expired.message_id] == old.session_id
    assert owner[not_ours.message_id] == other.session_id


def test_reply_to_a_restarted_workspace_reaches_its_new_session(
    mesh: Mesh, reg: Register, clock: FixedClock
) -> None:
    alice, old = reg("alice"), reg("worker")
    question = mesh.send(old.session_id, "alice", "question")
    mesh.deregister(old.session_id)
    new = reg("worker")
    answer = mesh.reply(alice.session_id, question.message_id, "answer")
    assert answer.recipient_session_id == new.session_id and answer.expires_at is None


# -- §3 reported status and re-register -----------------------------------------------


def test_reported_status_active_stale_stopped(
    mesh: Mesh, reg: Register, clock: FixedClock, db_path: Path
) -> None:
    bob = reg("bob")
    clock.advance(30)
    assert mesh.agent(bob.session_id).status is Status.ACTIVE
    clock.advance(0.001)
    assert mesh.agent(bob.session_id).status is Status.STALE
    assert [a.session_id for a in mesh.agents("stale")] == [bob.session_id]
    assert mesh.agents("active") == []
    stored = plain_rows(db_path, "SELECT status FROM agent_sessions")[0][0]
    assert stored == "active"  # stale is reported, never stored
    mesh.heartbeat(bob.session_id)
    assert mesh.agent(bob.session_id).status is Status.ACTIVE
    mesh.deregister(bob.session_id)
    assert mesh.agent(bob.session_id).status is Status.STOPPED
    assert [a.session_id for a in mesh.agents("stopped")] == [bob.session_id]


def test_stopped_session_comes_back_active_with_its_mail(
    mesh: Mesh, reg: Register, clock: FixedClock
) -> None:
    alice, bob = reg("alice"), reg("bob")
    mesh.deregister(bob.session_id)
    waiting = mesh.send(alice.session_id, "bob", "hello")
    assert waiting.expires_at is not None
    clock.advance(60)
    again = mesh.register("bob", session_id=bob.session_id, cwd=bob.cwd)
    assert again.session_id == bob.session_id and again.status is Status.ACTIVE
    got = mesh.inbox(bob.session_id)
    assert [m.message_id for m in got] == [waiting.message_id]
    assert got[0].expires_at is None


def test_heartbeat_of_a_stopped_session_makes_it_active(
    mesh: Mesh, reg: Register, clock: FixedClock
) -> None:
    bob = reg("bob")
    mesh.deregister(bob.session_id)
    clock.advance(10)
    mesh.heartbeat(bob.session_id)
    assert mesh.agent(bob.session_id).status is Status.ACTIVE


# -- clean-up -------------------------------------------------------------------------


def test_cleanup_stops_sessions_silent_for_ten_minutes(
    mesh: Mesh, reg: Register, clock: FixedClock, db_path: Path
) -> None:
    alice, bob = reg("alice"), reg("bob")
    unread = mesh.send(alice.session_id, "bob", "unread")
    read = mesh.send(alice.session_id, "bob", "read", new_thread=True)
    mesh.inbox(bob.session_id)  # both read now
    unread = mesh.send(alice.session_id, "bob", "unread", new_thread=True)
    clock.advance(600)
    mesh.heartbeat(alice.session_id)
    assert mesh.cleanup().stopped_sessions == 0
    clock.advance(0.001)
    report = mesh.cleanup()
    assert report.stopped_sessions == 1
    assert mesh.agent(bob.session_id).status is Status.STOPPED
    assert mesh.agent(alice.session_id).status is not Status.STOPPED
    rows = {r["message_id"]: r for r in plain_rows(db_path, "SELECT * FROM agent_messages")}
    assert rows[unread.message_id]["expires_at"] == iso(clock.now() + timedelta(hours=24))
    assert rows[read.message_id]["expires_at"] is None


def test_cleanup_purges_read_messages_after_24_hours(
    mesh: Mesh, reg: Register, clock: FixedClock, db_path: Path
) -> None:
    alice, bob = reg("alice"), reg("bob")
    mesh.send(alice.session_id, "bob", "read me")
    mesh.inbox(bob.session_id)
    clock.advance(24 * 3600)
    for who in (alice, bob):
        mesh.heartbeat(who.session_id)
    assert mesh.cleanup().purged_read == 0
    assert count_messages(db_path) == 1
    clock.advance(0.001)
    assert mesh.cleanup().purged_read == 1
    assert count_messages(db_path) == 0


def test_cleanup_deletes_expired_unread_and_nothing_else(
    mesh: Mesh, reg: Register, clock: FixedClock, db_path: Path
) -> None:
    alice, bob, carol = reg("alice"), reg("bob"), reg("carol")
    mesh.deregister(carol.session_id)
    doomed = mesh.send(alice.session_id, "carol", "never read")
    kept = mesh.send(alice.session_id, "bob", "unread, recipient alive")
    clock.advance(24 * 3600 + 0.001)
    for who in (alice, bob):
        mesh.heartbeat(who.session_id)
    report = mesh.cleanup()
    assert report.expired_unread == 1
    ids = [r[0] for r in plain_rows(db_path, "SELECT message_id FROM agent_messages")]
    assert ids == [kept.message_id] and doomed.message_id not in ids
    # Sessions are never deleted, not even stopped ones.
    clock.advance(30 * 24 * 3600)
    mesh.cleanup()
    assert plain_rows(db_path, "SELECT count(*) FROM agent_sessions")[0][0] == 3
    assert [r[0] for r in plain_rows(db_path, "SELECT message_id FROM agent_messages")] == [
        kept.message_id
    ]


def test_maybe_cleanup_runs_at_most_once_a_minute_across_handles(
    mesh: Mesh, db_path: Path, clock: FixedClock
) -> None:
    other = Mesh(db_path, clock=clock)
    try:
        assert mesh.maybe_cleanup().ran
        assert not other.maybe_cleanup().ran
        clock.advance(59.999)
        assert not other.maybe_cleanup().ran
        clock.advance(0.001)
        assert other.maybe_cleanup().ran
        assert not mesh.maybe_cleanup().ran
    finally:
        other.close()


def test_maybe_cleanup_from_many_threads_at_once_runs_once(
    db_path: Path, clock: FixedClock
) -> None:
    handles = [Mesh(db_path, clock=clock) for _ in range(6)]
    try:
        for _ in range(5):
            clock.advance(61)
            start = threading.Barrier(len(handles))
            ran: list[bool] = []

            def go(handle: Mesh, start: threading.Barrier, ran: list[bool]) -> None:
                start.wait()
                ran.append(handle.maybe_cleanup().ran)

            threads = [threading.Thread(target=go, args=(h, start, ran)) for h in handles]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert sorted(ran) == [False] * (len(handles) - 1) + [True]
    finally:
        for handle in handles:
            handle.close()


# -- session_for (the CLI's --from) ---------------------------------------------------


def test_session_for_reuses_active_then_stopped_then_registers(
    mesh: Mesh, reg: Register, clock: FixedClock
) -> None:
    active = reg("cron")
    claim = mesh.session_for("cron")
    assert claim.agent.session_id == active.session_id and claim.was_active
    mesh.deregister(active.session_id)
    clock.advance(5)
    claim = mesh.session_for("cron")
    assert claim.agent.session_id == active.session_id and not claim.was_active
    assert claim.agent.status is Status.ACTIVE
    fresh = mesh.session_for("nobody-yet")
    assert fresh.agent.kind == "cli" and not fresh.was_active


def test_timestamps_are_to_iso_string_form(mesh: Mesh, reg: Register, db_path: Path) -> None:
    alice, _ = reg("alice"), reg("bob")
    sent = mesh.send(alice.session_id, "bob", "x")
    assert sent.created_at == "2026-11-23T14:00:00.000Z"
    assert parse_ts(sent.created_at) == FixedClock().now()


# -- wait_for_reply (`mesh send --wait`) ----------------------------------------------


def test_wait_for_reply_takes_the_reply_in_the_thread(
    mesh: Mesh, reg: Register, clock: FixedClock
) -> None:
    alice, bob = reg("alice"), reg("bob")
    question = mesh.send(alice.session_id, "bob", "question")
    assert mesh.wait_for_reply(alice.session_id, question.message_id, timeout=0) is None
    clock.advance(1)
    mesh.send(bob.session_id, "alice", "unrelated, but auto-threaded", new_thread=True)
    answer = mesh.reply(bob.session_id, question.message_id, "answer")
    got = mesh.wait_for_reply(alice.session_id, question.message_id, timeout=0)
    assert got is not None and (got.message_id, got.read) == (answer.message_id, True)
    assert [m.content for m in mesh.inbox(alice.session_id)] == ["unrelated, but auto-threaded"]


def test_wait_for_reply_takes_only_the_asked_partys_reply(
    mesh: Mesh, reg: Register, clock: FixedClock
) -> None:
    alice, bob, carol = reg("alice"), reg("bob"), reg("carol")
    question = mesh.send(alice.session_id, "bob", "question")
    clock.advance(1)
    # A third workspace answers in alice's thread: not the answer she waits for.
    intruder = mesh.reply(carol.session_id, question.message_id, "not bob")
    assert intruder.thread_id == question.thread_id
    assert mesh.wait_for_reply(alice.session_id, question.message_id, timeout=0) is None
    clock.advance(1)
    bob_again = mesh.register("bob", cwd=bob.cwd)  # any session of the asked workspace
    answer = mesh.reply(bob_again.session_id, question.message_id, "from bob")
    got = mesh.wait_for_reply(alice.session_id, question.message_id, timeout=0)
    assert got is not None and got.message_id == answer.message_id
    assert [m.message_id for m in mesh.inbox(alice.session_id)] == [intruder.message_id]


def test_wait_for_reply_wakes_for_a_reply_from_another_thread(
    db_path: Path, mesh: Mesh, reg: Register
) -> None:
    alice, bob = reg("alice"), reg("bob")
    question = mesh.send(alice.session_id, "bob", "question")

    def answer_later() -> None:
        with Mesh(db_path) as other:
            other.reply(bob.session_id, question.message_id, "later answer")

    timer = threading.Timer(0.3, answer_later)
    timer.start()
    try:
        got = mesh.wait_for_reply(alice.session_id, question.message_id, timeout=30)
    finally:
        timer.join(30)
    assert got is not None and got.content == "later answer"


# -- names and text that cannot be used -----------------------------------------------


@pytest.mark.parametrize("name", ["*", "a" * 129, "bad\x1bname", "tab\tname"])
def test_unusable_workspace_names_are_refused(mesh: Mesh, name: str) -> None:
    with pytest.raises(InvalidName):
        mesh.session_for(name)
    with pytest.raises(InvalidName):
        mesh.register(name)


def test_text_that_is_not_utf8_is_refused(mesh: Mesh, reg: Register, db_path: Path) -> None:
    alice, _ = reg("alice"), reg("bob")
    with pytest.raises(InvalidContent, match="UTF-8"):
        mesh.send(alice.session_id, "bob", "half a pair \ud800")
    assert count_messages(db_path) == 0


def test_a_message_is_a_frozen_value_with_every_field_set() -> None:
    """Message sets its fields in one go (not through the dataclass's __init__): it is
    still frozen, compares by value and is rebuilt by dataclasses.replace."""
    import dataclasses

    from mesh_core.models import Message

    fields = [f.name for f in dataclasses.fields(Message)]
    values = {name: f"v{n}" for n, name in enumerate(fields)}
    message = Message(**values)  # type: ignore[arg-type]
    assert [getattr(message, name) for name in fields] == list(values.values())
    assert message == Message(**values)  # type: ignore[arg-type]
    assert Message(**{**values, "warnings": ()}).warnings == ()  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.content = "changed"  # type: ignore[misc]
    assert dataclasses.replace(message, content="other").content == "other"
