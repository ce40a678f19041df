"""Drafts belong to their conversation and survive esc, refreshes, q and a restart; a
send is one send."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Select, TextArea
from tui_fixtures import World, settle

from mesh_tui.app import MeshApp
from mesh_tui.screens.confirm import Confirm
from mesh_tui.state import Drafts
from mesh_tui.widgets.composer import Composer
from mesh_tui.widgets.roster import Roster
from mesh_tui.widgets.threads import ThreadList

SIZE = (120, 36)


def app_for(world: World, drafts_file: Path | None = None) -> MeshApp:
    return MeshApp(
        world.mesh,
        live=False,
        session_id=world.me,
        name="alice",
        drafts=Drafts(drafts_file, str(world.mesh.path)) if drafts_file else None,
    )


def contents(world: World, text: str) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in world.mesh.connection().execute(
            "SELECT recipient_session_id, priority FROM agent_messages WHERE content = ?",
            (text,),
        )
    ]


def label(app: MeshApp) -> str:
    return str(app.query_one("#composer-target").render())


async def test_each_conversation_keeps_its_own_draft(world: World) -> None:
    app = app_for(world)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        draft = app.query_one("#draft", TextArea)
        app.query_one(Roster).select_key(world.ids["test-runner"])
        await pilot.press("n", *"to the runner", "escape")
        threads = app.query_one(ThreadList)
        threads.focus()
        threads.select_key(str(world.agents_thread))
        await settle(pilot)
        await pilot.press("r")
        assert draft.text == ""  # not the runner's draft
        assert "Reply in thread" in label(app) and "web-frontend" in label(app)
        await pilot.press(*"for the thread", "escape")
        app.request_refresh()
        await settle(pilot)
        app.query_one(Roster).select_key(world.ids["test-runner"])
        await pilot.press("n")
        assert draft.text == "to the runner"
        assert "New message to test-runner" in label(app)
        await pilot.press("escape")
        threads.focus()
        await pilot.press("r")
        assert draft.text == "for the thread"


async def test_drafts_survive_a_restart_and_q_asks_first(world: World, tmp_path: Path) -> None:
    drafts_file = tmp_path / "state" / "tui-drafts.json"
    app = app_for(world, drafts_file)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.query_one(Roster).select_key(world.ids["api-server"])
        await pilot.press("n", *"unfinished")
        await pilot.press("tab")  # the priority picker: q must not quit from here either
        assert isinstance(app.focused, Select)
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, Confirm)
        await pilot.press("escape")  # close the picker's focus: leave the composer
        app.query_one(Roster).focus()
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)  # an unsent draft: asked first
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, Confirm)
        await pilot.press("q", "y")
        await pilot.pause()
    assert not app.is_running
    again = app_for(world, drafts_file)
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        again.query_one(Roster).select_key(world.ids["api-server"])
        await pilot.press("n")
        assert again.query_one("#draft", TextArea).text == "unfinished"


async def test_a_send_is_one_send_and_the_next_starts_fresh(world: World) -> None:
    app = app_for(world)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.query_one(Roster).select_key(world.ids["test-runner"])
        await pilot.press("n", *"run it once")
        app.query_one("#priority", Select).value = "high"
        composer = app.query_one(Composer)
        # key repeat: three sends asked before the first has landed
        composer.action_send()
        composer.action_send()
        await pilot.press("ctrl+j")
        await settle(pilot)
        assert composer.draft == ""
        assert composer.priority == "normal"  # back to normal after a send
        assert "Reply in thread" in label(app)  # the next send is a reply, and says so
    assert contents(world, "run it once") == [(world.ids["test-runner"], "high")]


async def test_a_refusal_clears_when_the_draft_changes(world: World) -> None:
    app = app_for(world)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.query_one(Roster).select_key(world.ids["api-server"])
        await pilot.press("n")
        area = app.query_one("#draft", TextArea)
        area.text = "x" * 10_300  # over the 10,240 limit
        area.move_cursor(area.document.end)
        await pilot.pause()
        await pilot.press("ctrl+j")
        await settle(pilot)
        composer = app.query_one(Composer)
        assert composer.has_class("-error")
        await pilot.pause()
        assert composer.has_class("-error")  # stays while the draft is the same
        await pilot.press("backspace")
        await pilot.pause()
        assert not composer.has_class("-error")
        assert composer.draft == "x" * 10_299  # the refused draft was kept
