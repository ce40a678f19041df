"""Snapshots of mesh-tui's main views: fixed clock, fixed data, no timers, no blinking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import TextArea
from tui_fixtures import World, build_world

from mesh_tui.app import MeshApp
from mesh_tui.widgets.roster import Roster
from mesh_tui.widgets.threads import ThreadList

WIDE = (120, 36)
NARROW = (80, 24)
TOO_LONG = "All tests pass on main. " * 430  # 10,320 bytes: over the 10,240 limit


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path / "agent-mesh.db")
    yield built
    built.mesh.close()


def make_app(world: World) -> MeshApp:
    return MeshApp(world.mesh, live=False, session_id=world.me, name="alice",
                   db_label="~/.agent-mesh/agent-mesh.db")


async def settle(pilot: Pilot[None]) -> None:
    """Let the read workers finish and their results render (a read may start another)."""
    for _ in range(4):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def open_person_thread(pilot: Pilot[None], world: World) -> None:
    await settle(pilot)
    threads = pilot.app.query_one(ThreadList)
    threads.focus()
    assert threads.select_key(str(world.person_thread))
    await settle(pilot)


def test_main_screen(snap_compare, world: World) -> None:
    assert snap_compare(make_app(world), terminal_size=WIDE, run_before=settle)


def test_thread_open(snap_compare, world: World) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await open_person_thread(pilot, world)

    assert snap_compare(make_app(world), terminal_size=WIDE, run_before=run_before)


def test_composer_refused_send(snap_compare, world: World) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        pilot.app.query_one(Roster).select_key(world.ids["api-server"])
        await pilot.press("n")
        pilot.app.query_one("#draft", TextArea).text = TOO_LONG
        await pilot.press("ctrl+j")
        await settle(pilot)

    assert snap_compare(make_app(world), terminal_size=WIDE, run_before=run_before)


def test_help_screen(snap_compare, world: World) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(world), terminal_size=WIDE, run_before=run_before)


def test_narrow_terminal(snap_compare, world: World) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await open_person_thread(pilot, world)

    assert snap_compare(make_app(world), terminal_size=NARROW, run_before=run_before)
