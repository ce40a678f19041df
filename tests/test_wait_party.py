"""`wait_for_reply` / `mesh send --wait` return only a reply from the party asked.

CORE TEST, written by the host-suite work (issue 10, item 6) and left failing on
purpose: the party filter belongs in mesh_core's `take_reply`/`wait_for_reply`, which
another engineer owns after the split. A third workspace that answers in the asker's
thread must not be taken as the answer, and its message must stay in the inbox.
"""

from __future__ import annotations

from mesh_core import Mesh


def test_a_third_partys_message_in_the_thread_is_not_the_reply(mesh: Mesh) -> None:
    alice = mesh.register("alice")
    bob = mesh.register("bob")
    carol = mesh.register("carol")
    question = mesh.send(alice.session_id, "bob", "which port?")
    intruder = mesh.reply(carol.session_id, question.message_id, "9999, trust me")
    assert intruder.recipient_session_id == alice.session_id  # lands in alice's thread

    got = mesh.wait_for_reply(alice.session_id, question.message_id, timeout=0.2)
    assert got is None or got.sender_session_id == bob.session_id, (
        "wait_for_reply took carol's message as bob's answer (needs the core's party "
        "filter: only the asked workspace's sessions may answer)"
    )
    assert not mesh.get(intruder.message_id).read, "carol's message must stay unread"

    answer = mesh.reply(bob.session_id, question.message_id, "8080")
    got = mesh.wait_for_reply(alice.session_id, question.message_id, timeout=5)
    assert got is not None and got.message_id == answer.message_id
