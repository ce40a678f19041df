"""mesh-tui driven by its keys (App.run_test + Pilot), checked against the database."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from textual.widgets import Select, TextArea
from tui_fixtures import World, screen_text, settle, use_utc

from mesh_core import FixedClock, Mesh
from mesh_core.models import Status
from mesh_tui.app import MeshApp
from mesh_tui.widgets.composer import Composer
from mesh_tui.widgets.conversation import Conversation
from mesh_tui.widgets.roster import Roster
from mesh_tui.widgets.threads import ThreadList

SIZE = (120, 36)


def quiet_app(world: World) -> MeshApp:
    """No participant thread, no timers: reads on start and after its own actions."""
    return MeshApp(world.mesh, live=False, session_id=world.me, name="alice")


def rows(mesh: Mesh, sql: str, *params: object) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in mesh.connection().execute(sql, params).fetchall()]


async def test_new_message_lands_with_recipient_thread_and_priority(world: World) -> None:
    app = quiet_app(world)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.query_one(Roster).select_key(world.ids["api-server"])
        await pilot.press("n")
        await pilot.press(*"Outage over yet?")
        await pilot.press("tab")  # to the priority picker
        assert app.focused is app.query_one("#priority", Select)
        await pilot.press("enter", "down", "down", "enter")  # normal -> high -> urgent
        assert app.query_one(Composer).priority == "urgent"
        await pilot.press("ctrl+j")
        await settle(pilot)
        assert app.query_one("#draft", TextArea).text == ""  # a send that landed clears it
    sent = rows(
        world.mesh,
        "SELECT recipient_session_id, original_message_id, priority, read "
        "FROM agent_messages WHERE sender_session_id = ? AND content = ?",
        world.me,
        "Outage over yet?",
    )
    # within 10 minutes of the last exchange: it joins alice's thread with api-server
    assert sent == [(world.ids["api-server"], world.person_thread, "urgent", 0)]


async def test_reply_in_selected_thread(world: World) -> None:
    app = quiet_app(world)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        threads = app.query_one(ThreadList)
        threads.focus()
        assert threads.select_key(str(world.agents_thread))  # api-server <-> web-frontend
        await settle(pilot)
        assert app.query_one(Conversation).thread_id == world.agents_thread
        await pilot.press("r")
        await pilot.press(*"Please ship it.", "alt+enter")
        await settle(pilot)
    ((recipient, thread),) = rows(
        world.mesh,
        "SELECT recipient_session_id, original_message_id FROM agent_messages "
        "WHERE sender_session_id = ? AND content = 'Please ship it.'",
        world.me,
    )
    assert thread == world.agents_thread
    # the last message of that thread was web-frontend's: the reply goes to it
    assert recipient == world.ids["web-frontend"]


async def test_draft_survives_refresh_and_refusal(world: World) -> None:
    app = quiet_app(world)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.query_one(Roster).select_key(world.me)  # writing to yourself is refused
        await pilot.press("n")
        await pilot.press(*"line one", "enter", *"line two")
        draft = app.query_one("#draft", TextArea)
        before = draft.text
        assert before == "line one\nline two"
        app.request_refresh()
        await settle(pilot)
        assert draft.text == before
        await pilot.press("ctrl+j")
        await settle(pilot)
        assert draft.text == before
        error = str(app.query_one("#composer-error").render())
        assert "yourself" in error
        await pilot.press("escape")  # leave: the draft stays for later
        assert not app.query_one(Composer).has_class("-open")
        app.query_one(Roster).select_key(world.ids["api-server"])
        await pilot.press("n")
        assert draft.text == ""  # another conversation, its own draft
        await pilot.press("escape")
        app.query_one(Roster).select_key(world.me)
        await pilot.press("n")
        assert draft.text == before
    assert rows(world.mesh, "SELECT count(*) FROM agent_messages WHERE content = ?", before) == [
        (0,)
    ]


async def test_watching_marks_nothing_read_and_takes_only_own_messages(world: World) -> None:
    """Live: the participant hands on alice's mail; browsing reads nobody else's."""
    unread_before = dict(
        rows(
            world.mesh,
            "SELECT recipient_session_id, count(*) FROM agent_messages WHERE read = 0 GROUP BY 1",
        )
    )
    assert unread_before[world.me] == 1
    app = MeshApp(world.mesh, live=True, session_id=world.me, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        deadline = asyncio.get_running_loop().time() + 20
        while world.person_thread not in app.unseen:
            assert asyncio.get_running_loop().time() < deadline, "message never delivered"
            await asyncio.sleep(0.05)
            await pilot.pause()
        await settle(pilot)
        threads = app.query_one(ThreadList)
        threads.focus()
        for _ in range(5):  # open every thread in the list
            await pilot.press("j")
            await settle(pilot)
    unread_after = dict(
        rows(
            world.mesh,
            "SELECT recipient_session_id, count(*) FROM agent_messages WHERE read = 0 GROUP BY 1",
        )
    )
    expected = {sid: n for sid, n in unread_before.items() if sid != world.me}
    assert {sid: n for sid, n in unread_after.items() if sid != world.me} == expected
    # q / exit marks the person's session stopped
    ((status,),) = rows(
        world.mesh, "SELECT status FROM agent_sessions WHERE session_id = ?", app.me
    )
    assert status == "stopped"


async def test_delivered_message_is_unread_until_its_thread_opens(world: World) -> None:
    app = MeshApp(world.mesh, live=True, session_id=world.me, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        deadline = asyncio.get_running_loop().time() + 20
        while world.person_thread not in app.unseen:
            assert asyncio.get_running_loop().time() < deadline, "message never delivered"
            await asyncio.sleep(0.05)
            await pilot.pause()
        threads = app.query_one(ThreadList)
        threads.focus()
        threads.select_key(str(world.person_thread))
        await settle(pilot)
        assert world.person_thread not in app.unseen
        # The rule above the first unseen message (the roster's "unread" header is not it).
        assert re.search(r"─{3,} unread for you ─{3,}", screen_text(app))


async def test_a_message_is_read_only_once_its_thread_was_on_screen(world: World) -> None:
    """The participant hands the urgent message on (a toast, the title) but leaves it
    unread in the database until its thread has been shown in the conversation."""
    (urgent,) = [
        m.message_id
        for m in world.mesh.thread(world.person_thread)
        if m.recipient_session_id == world.me
    ]

    def is_read() -> bool:
        ((read,),) = rows(
            world.mesh, "SELECT read FROM agent_messages WHERE message_id = ?", urgent
        )
        return bool(read)

    app = MeshApp(world.mesh, live=True, session_id=world.me, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        deadline = asyncio.get_running_loop().time() + 20
        while world.person_thread not in app.unseen:
            assert asyncio.get_running_loop().time() < deadline, "message never delivered"
            await asyncio.sleep(0.05)
            await pilot.pause()
        await settle(pilot)
        assert app.open_thread != world.person_thread
        assert app.query_one(Conversation).thread_id != world.person_thread
        assert "I will tell you when it is" not in screen_text(app)
        assert not is_read()  # delivered to the app, never on screen: unread
        # one new message in its row: delivered and unread are the same message
        (row,) = [line for line in screen_text(app).splitlines() if "alice ↔ api-server" in line]
        assert re.search(r"alice ↔ api-server\s+2 · \S+\s+1\b", row), row
        threads = app.query_one(ThreadList)
        threads.focus()
        threads.select_key(str(world.person_thread))
        await settle(pilot)
        assert "I will tell you when it is" in screen_text(app)
        assert is_read()


async def test_untrusted_names_and_bodies_show_literally(tmp_path: Path) -> None:
    use_utc()
    mesh = Mesh(tmp_path / "m.db", clock=FixedClock("2026-11-23T14:00:00.000Z"))
    me = mesh.register("alice", kind="human").session_id
    evil = mesh.register("[bold]x[/]", description="[/] and \x1b[2J too").session_id
    mesh.send(evil, "alice", "body [/] [red]boom[/red] \x1b[2J end", new_thread=True)
    app = MeshApp(mesh, live=False, session_id=me, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.query_one(ThreadList).focus()
        await settle(pilot)
        text = screen_text(app)
    mesh.close()
    assert "[bold]x[/]" in text  # the name, not a bold x
    assert "[/] and ␛[2J too" in text  # description: markup literal, ESC made visible
    assert "body [/] [red]boom[/red] ␛[2J end" in text
    assert "\x1b" not in text


async def test_send_warnings_naming_a_hostile_recipient_show_literally(world: World) -> None:
    """A stopped recipient's name (written by another client) comes back inside the send
    warning; the toast must not hand its escape sequence to the terminal."""
    mesh = world.mesh
    ghost = mesh.register("ghost").session_id
    mesh.deregister(ghost)
    mesh.connection().execute(  # another client, not bound by our name rules
        "UPDATE agent_sessions SET agent_name = ? WHERE session_id = ?",
        ("gh\x1b]0;pwned\x07ost", ghost),
    )
    app = quiet_app(world)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.query_one(Roster).select_key(ghost)
        await pilot.press("n", *"are you there?", "ctrl+j")
        await settle(pilot)
        toasts = [str(note.message) for note in app._notifications]
    [warning] = [t for t in toasts if "is stopped" in t]
    assert warning.startswith("gh␛]0;pwned␇ost is stopped")
    assert not any("\x1b" in t or "\x07" in t for t in toasts)


async def test_empty_mesh_says_how_to_connect_an_agent(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path / "m.db")
    app = MeshApp(mesh, live=False, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert app.query_one("#roster-pane").has_class("-empty")
    assert "mesh install claude" in text and "mesh mcp" in text and "--demo" in text
    mesh.close()


async def test_quit_key_marks_person_stopped(world: World) -> None:
    app = quiet_app(world)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert world.mesh.agent(world.me).status is Status.STOPPED


async def test_filter_toggle_and_palette_actions(world: World) -> None:
    app = quiet_app(world)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        roster = app.query_one(Roster)
        assert roster.row_count == 6
        await pilot.press("slash", *"test")
        await pilot.pause()
        assert roster.row_count == 1 and roster.selected_key == world.ids["test-runner"]
        await pilot.press("escape")
        await pilot.pause()
        assert roster.row_count == 6
        await pilot.press("s")  # hide stopped agents
        await pilot.pause()
        assert roster.row_count == 5
        app.action_jump_to_agent(world.ids["old-prototype"])  # palette: jump shows it again
        await pilot.pause()
        assert roster.selected_key == world.ids["old-prototype"]
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Next thread with unread" in titles
        assert "Refresh every 2 s" in titles
        assert "Jump to agent api-server" in titles
        app.action_next_unread()
        await settle(pilot)
        assert app.query_one(ThreadList).selected_key == str(world.person_thread)
        app.set_interval_seconds(2)
        assert app.interval == 2


async def test_help_lists_every_binding(world: World) -> None:
    app = quiet_app(world)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        text = screen_text(app)
    for description in (
        "Quit",
        "New message",
        "Reply",
        "Filter",
        "Next pane",
        "Command palette",
        "Send",
        "Leave (keeps draft)",
        "Show/hide stopped agents",
    ):
        assert description in text, description


async def test_live_change_shows_without_waiting_for_the_timer(world: World) -> None:
    """Another connection commits: data_version wakes the app, long before its 60 s timer."""
    other = Mesh(world.mesh.path, clock=world.clock)  # another connection, as another process
    app = MeshApp(world.mesh, live=True, session_id=world.me, name="alice", interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        sent = other.send(
            world.ids["test-runner"], "data-pipeline", "Suite green again.", new_thread=True
        )
        deadline = asyncio.get_running_loop().time() + 20
        while not app.snapshot or all(t.thread_id != sent.message_id for t in app.snapshot.threads):
            assert asyncio.get_running_loop().time() < deadline, "change never shown"
            await asyncio.sleep(0.05)
        await settle(pilot)
        assert str(sent.message_id) in app.query_one(ThreadList).rows
    other.close()


async def test_offscreen_rows_catch_up_when_scrolled_into_view(world: World) -> None:
    """A refresh updates only the rows on screen; the others when they come into view."""
    extra = [
        world.mesh.register(f"zz-agent-{n:02d}", description="filler").session_id for n in range(40)
    ]
    app = quiet_app(world)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        roster = app.query_one(Roster)
        world.mesh.send(world.ids["api-server"], extra[-1], "Are you there?")
        app.request_refresh()
        await settle(pilot)
        assert roster.select_key(extra[-1])  # scrolls the last row into view
        await settle(pilot)
        assert roster.get_cell(extra[-1], "unread").plain == "1"
