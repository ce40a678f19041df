"""Reading a thread: where it opens, moving in it, copying, and each message's delivery
state."""

from __future__ import annotations

import re
from pathlib import Path

from tui_fixtures import screen_text, settle, use_utc

from mesh_core import FixedClock, Mesh
from mesh_tui.app import MeshApp
from mesh_tui.widgets.conversation import Conversation
from mesh_tui.widgets.threads import ThreadList


def long_thread(path: Path) -> tuple[Mesh, str, int, int]:
    """Older talk, then a 120-line message to the person that they have not read."""
    use_utc()
    clock = FixedClock("2026-11-23T14:00:00.000Z")
    mesh = Mesh(path, clock=clock)
    me = mesh.register("alice", kind="human").session_id
    bot = mesh.register("api-server").session_id
    root = mesh.send(me, "api-server", "Status of the outage?", new_thread=True)
    for n in range(6):
        clock.advance(5)
        mesh.reply(bot, root.message_id, f"update {n}\n" + "detail\n" * 8)
        clock.advance(5)
        mesh.reply(me, root.message_id, f"thanks {n}")
    mesh.inbox(me)
    clock.advance(5)
    long = mesh.reply(
        bot, root.message_id, "LOG START\n" + "\n".join(f"line {i}" for i in range(120))
    )
    return mesh, me, root.message_id, long.message_id


async def test_thread_opens_at_first_unread_with_its_header_in_view(tmp_path: Path) -> None:
    mesh, me, root, long_id = long_thread(tmp_path / "m.db")
    app = MeshApp(mesh, live=False, session_id=me, name="alice")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        threads = app.query_one(ThreadList)
        threads.focus()
        threads.select_key(str(root))
        await settle(pilot)
        await pilot.pause()
        text = screen_text(app)
        assert "unread for you" in text
        assert f"#{long_id}" in text and "LOG START" in text  # header and first line
        assert "line 119" not in text  # not at its end
        conversation = app.query_one(Conversation)
        assert conversation.current() is not None
        assert conversation.current().message_id == long_id  # type: ignore[union-attr]
        conversation.focus()
        await pilot.press("G")
        await pilot.pause()
        assert "line 119" in screen_text(app)
        await pilot.press("g")
        await pilot.pause()
        assert "Status of the outage?" in screen_text(app)
        assert conversation.current().message_id == root  # type: ignore[union-attr]
        await pilot.press("j", "c")
        await pilot.pause()
        assert app.clipboard == "update 0\n" + "detail\n" * 8
        await pilot.press("pagedown")
        await pilot.pause()
        assert conversation.scroll_y > 0
    mesh.close()


async def delivery_states(tmp_path: Path, size: tuple[int, int]) -> dict[str, str]:
    """What the screen shows of three threads of the person's, one answered, one
    delivered (2 minutes ago), one waiting, at `size`."""
    use_utc()
    clock = FixedClock("2026-11-23T14:00:00.000Z")
    mesh = Mesh(tmp_path / "m.db", clock=clock)
    me = mesh.register("alice", kind="human").session_id
    bot = mesh.register("bot").session_id
    mesh.register("idle")
    answered = mesh.send(me, "bot", "are you there?", new_thread=True)
    clock.advance(30)
    mesh.inbox(bot)
    mesh.reply(bot, answered.message_id, "yes")
    clock.advance(30)
    delivered = mesh.send(me, "bot", "second question", new_thread=True)
    clock.advance(60)
    mesh.inbox(bot)
    waiting = mesh.send(me, "idle", "hello idle", new_thread=True)
    clock.advance(120)
    app = MeshApp(mesh, live=False, session_id=me, name="alice")
    states = {}
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        threads = app.query_one(ThreadList)
        threads.focus()
        for name, thread_id in (
            ("answered", answered.message_id),
            ("delivered", delivered.thread_id),
            ("waiting", waiting.thread_id),
        ):
            threads.select_key(str(thread_id))
            await settle(pilot)
            states[name] = screen_text(app)
    mesh.close()
    return states


async def test_each_message_says_whether_it_was_delivered_or_answered(tmp_path: Path) -> None:
    states = await delivery_states(tmp_path, (120, 36))
    assert "↩ answered" in states["answered"]
    assert "✓ delivered 2m ago" in states["delivered"]
    assert "waiting to be read" in states["waiting"]


async def test_at_80_columns_a_header_keeps_its_delivery_state(tmp_path: Path) -> None:
    """The conversation pane is 38 columns wide at 80×24: the header drops the id and
    the seconds and shortens the state rather than cutting the state off."""
    states = await delivery_states(tmp_path, (80, 24))
    # (the screenshot's text drops the spaces between differently styled runs)
    assert re.search(r"alice → bot\s*14:00:00\s*↩ answered", states["answered"])
    assert re.search(r"alice → bot\s*14:01\s*✓ 2m", states["delivered"])
    assert re.search(r"alice → idle\s*14:02\s*… waiting", states["waiting"])
