"""The roster: one row per person across restarts, the cursor never starts on you, and
an agent's details."""

from __future__ import annotations

import html
import re
from pathlib import Path

from tui_fixtures import settle, use_utc

from mesh_core import FixedClock, Mesh
from mesh_tui.app import MeshApp
from mesh_tui.screens.agent import AgentDetail
from mesh_tui.widgets.roster import Roster
from mesh_tui.widgets.threads import ThreadList


def mesh_with_restarts(path: Path) -> tuple[Mesh, str, list[str], str]:
    """root ran mesh-tui three times before; this is the fourth."""
    use_utc()
    clock = FixedClock("2026-11-23T14:00:00.000Z")
    mesh = Mesh(path, clock=clock)
    bot = mesh.register("aaa-bot", description="sorts first", cwd="/src/shop", repo="shop")
    old = []
    for _ in range(3):
        clock.advance(60)
        session = mesh.register("root", kind="human").session_id
        mesh.send(session, "aaa-bot", "hello from an earlier run", new_thread=True)
        mesh.deregister(session)
        old.append(session)
    clock.advance(60)
    me = mesh.register("root", kind="human").session_id
    return mesh, me, old, bot.session_id


async def test_one_row_for_the_person_and_the_cursor_not_on_them(tmp_path: Path) -> None:
    mesh, me, old, bot = mesh_with_restarts(tmp_path / "m.db")
    app = MeshApp(mesh, live=False, session_id=me, name="root")
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        roster = app.query_one(Roster)
        assert me in roster.keys
        assert not set(old) & set(roster.keys)  # earlier runs folded into the one row
        assert roster.selected_key != me
        assert roster.selected_key == bot
        roster.select_key(me)
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, AgentDetail)
        assert app.screen.earlier_sessions == 3
    mesh.close()


async def test_agent_detail_shows_where_it_runs_and_can_message_it(tmp_path: Path) -> None:
    mesh, me, _, bot = mesh_with_restarts(tmp_path / "m.db")
    app = MeshApp(mesh, live=False, session_id=me, name="root")
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        app.query_one(Roster).focus()
        app.query_one(Roster).select_key(bot)
        await pilot.press("i")
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, AgentDetail)
        svg = app.export_screenshot()
        text = html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")
        for expected in ("/src/shop", "shop", "sorts first", "pid", "host", "3 unread"):
            assert expected in text, expected
        assert "hello from an earlier run" in text  # its recent threads
        await pilot.press("n")
        await pilot.pause()
        assert "New message to aaa-bot" in str(app.query_one("#composer-target").render())
    mesh.close()


async def test_your_row_lists_the_threads_of_your_earlier_runs(tmp_path: Path) -> None:
    mesh, me, old, _ = mesh_with_restarts(tmp_path / "m.db")
    app = MeshApp(mesh, live=False, session_id=me, name="root")
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        roster = app.query_one(Roster)
        roster.focus()
        roster.select_key(me)
        await pilot.press("enter")  # your threads
        await settle(pilot)
        shown = app.query_one(ThreadList).keys
    roots = {
        str(r[0])
        for r in mesh.connection().execute(
            "SELECT message_id FROM agent_messages WHERE sender_session_id IN (?, ?, ?)", old
        )
    }
    assert roots and roots <= set(shown)
    mesh.close()
