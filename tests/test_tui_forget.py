"""Forgetting a stopped session from its agent details: asks first, then the row leaves
the roster and the database; a refusal by the mesh is shown and changes nothing."""

from __future__ import annotations

from textual.pilot import Pilot
from tui_fixtures import World, screen_text, settle

from mesh_core import Mesh
from mesh_tui.app import MeshApp
from mesh_tui.screens.agent import AgentDetail
from mesh_tui.screens.confirm import Confirm
from mesh_tui.widgets.roster import Roster
from mesh_tui.widgets.threads import ThreadList

SIZE = (120, 36)


def sessions(world: World) -> set[str]:
    return {r[0] for r in world.mesh.connection().execute("SELECT session_id FROM agent_sessions")}


async def open_thread(pilot: Pilot[None], app: MeshApp, thread_id: int) -> str:
    """Open the thread from the thread list, as the person does; what the screen shows."""
    threads = app.query_one(ThreadList)
    threads.focus()
    assert threads.select_key(str(thread_id))
    await pilot.press("enter")
    await settle(pilot)
    return screen_text(app)


async def test_forget_a_stopped_session_after_a_yes(world: World) -> None:
    stopped = world.ids["old-prototype"]
    app = MeshApp(world.mesh, live=False, session_id=world.me, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        roster = app.query_one(Roster)
        roster.focus()
        assert roster.select_key(stopped)
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, AgentDetail)
        assert "f forget it" in screen_text(app)
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        assert "Forget the stopped session of old-prototype" in screen_text(app)
        await pilot.press("n")  # no: nothing happens
        await settle(pilot)
        assert stopped in sessions(world) and stopped in roster.keys
        await pilot.press("i", "f")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert stopped not in sessions(world)
        assert stopped not in roster.keys
        toasts = [str(n.message) for n in app._notifications]
        assert "Forgot the stopped session of old-prototype" in toasts


async def test_the_mesh_refusing_is_shown_and_changes_nothing(world: World) -> None:
    stopped = world.ids["old-prototype"]
    world.mesh.send(world.ids["api-server"], "old-prototype", "for your next run")
    app = MeshApp(world.mesh, live=False, session_id=world.me, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        roster = app.query_one(Roster)
        roster.focus()
        assert roster.select_key(stopped)
        await pilot.press("i", "f")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert stopped in sessions(world) and stopped in roster.keys
        (refusal,) = [
            str(n.message) for n in app._notifications if "Not forgotten" in str(n.message)
        ]
        assert "1 unread message waits for" in refusal
        # a live agent's details do not offer it at all
        assert roster.select_key(world.ids["api-server"])
        await pilot.press("i")
        await pilot.pause()
        assert "forget it" not in screen_text(app)
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, AgentDetail)  # no question asked
        assert world.ids["api-server"] in sessions(world)


async def test_a_forgotten_sessions_messages_keep_its_name(world: World) -> None:
    """After forgetting, the conversation and the thread list still name the sender
    (from the session's last known row), not its id."""
    retired = world.mesh.register("retired-bot", cwd="/home/alice/src/retired").session_id
    sent = world.mesh.send(retired, "api-server", "handing over the checkout work")
    world.mesh.mark_read(world.ids["api-server"], [sent.message_id])
    world.mesh.deregister(retired)
    app = MeshApp(world.mesh, live=False, session_id=world.me, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        roster = app.query_one(Roster)
        roster.focus()
        assert roster.select_key(retired)
        await pilot.press("i", "f")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert retired not in sessions(world)  # gone from the database
        text = await open_thread(pilot, app, sent.message_id)
        assert "handing over the checkout work" in text
        assert "retired-bot" in text and retired[:8] not in text
        assert app.snapshot is not None
        summary = next(t for t in app.snapshot.threads if t.thread_id == sent.message_id)
        assert summary.participants[0] == "retired-bot"


async def test_a_tui_started_after_the_forget_shows_no_session_id(world: World) -> None:
    """Another process forgot the session before this app started: its thread row,
    participants, conversation and the person's agent details name it, and its raw
    session id shows nowhere."""
    retired = world.mesh.register("retired-bot", cwd="/home/alice/src/retired").session_id
    sent = world.mesh.send(retired, "alice", "the checkout work is yours now")
    world.mesh.mark_read(world.me, [sent.message_id])
    world.mesh.deregister(retired)
    forgetter = Mesh(world.mesh.path, clock=world.clock)  # another process
    forgetter.forget_session(retired)
    forgetter.close()
    fresh = Mesh(world.mesh.path, clock=world.clock)  # the TUI's process: never saw the row
    app = MeshApp(fresh, live=False, session_id=world.me, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.snapshot is not None
        summary = next(t for t in app.snapshot.threads if t.thread_id == sent.message_id)
        assert summary.participants == ("retired-bot", "alice")
        assert retired[:8] not in screen_text(app)
        text = await open_thread(pilot, app, sent.message_id)
        assert "the checkout work is yours now" in text
        assert "retired-bot" in text and retired[:8] not in text
        roster = app.query_one(Roster)
        roster.focus()
        assert roster.select_key(world.me)
        await pilot.press("i")
        await settle(pilot)
        assert isinstance(app.screen, AgentDetail)
        assert retired[:8] not in screen_text(app)
    fresh.close()
