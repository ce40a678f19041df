"""The view state is reactive: setting it is enough for the panes to follow, and the
composer's target is a typed value."""

from __future__ import annotations

from tui_fixtures import World, settle

from mesh_tui.app import MeshApp
from mesh_tui.target import ReplyTo, SendTo
from mesh_tui.widgets.conversation import Conversation
from mesh_tui.widgets.roster import Roster
from mesh_tui.widgets.threads import ThreadList

SIZE = (120, 36)


async def test_setting_the_view_state_is_enough(world: World) -> None:
    app = MeshApp(world.mesh, live=False, session_id=world.me, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        roster = app.query_one(Roster)
        threads = app.query_one(ThreadList)
        stopped = world.ids["old-prototype"]
        assert stopped in roster.keys
        app.show_stopped = False
        assert stopped not in roster.keys  # no render call: the watcher did it
        app.show_stopped = True
        assert stopped in roster.keys

        app.filter_text = "payments"
        assert str(world.person_thread) in threads.keys
        assert str(world.agents_thread) not in threads.keys
        app.filter_text = ""
        assert str(world.agents_thread) in threads.keys

        everyone = list(threads.keys)
        app.scope = world.ids["test-runner"]
        await settle(pilot)  # the scope is read again in a worker
        assert set(threads.keys) < set(everyone)
        assert "test-runner" in str(threads.border_title)
        app.scope = None
        await settle(pilot)
        assert list(threads.keys) == everyone

        app.open_thread = world.person_thread
        await settle(pilot)
        assert app.query_one(Conversation).thread_id == world.person_thread


async def test_the_composer_target_is_typed(world: World) -> None:
    app = MeshApp(world.mesh, live=False, session_id=world.me, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.query_one(Roster).select_key(world.ids["api-server"])
        await pilot.press("n")
        assert app._target == SendTo(world.ids["api-server"])
        await pilot.press(*"hello", "ctrl+j")
        await settle(pilot)
        # the next send is a reply in the thread the message started
        assert isinstance(app._target, ReplyTo)
        assert world.mesh.get(app._target.message_id).content == "hello"
