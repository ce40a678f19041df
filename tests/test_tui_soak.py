"""Soak: the live app under random keys and resizes while another process writes.

Runs SOAK_SECONDS (default 60; set MESH_TUI_SOAK_SECONDS for longer). Fails on any
exception in the app, and on a thread or message that reached the database but not the
screen once the writer has stopped."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path

from textual.widgets import Input
from tui_fixtures import build_world, settle

from mesh_core import Mesh, views
from mesh_tui.app import MeshApp
from mesh_tui.widgets.conversation import Conversation
from mesh_tui.widgets.threads import ThreadList

SOAK_SECONDS = float(os.environ.get("MESH_TUI_SOAK_SECONDS", "60"))
KEYS = (
    ["tab", "shift+tab", "j", "k", "up", "down", "enter", "escape", "pageup", "pagedown"] * 4
    + ["n", "r", "a", "u", "s", "g", "G", "question_mark", "slash", "ctrl+j", "backspace"]
    + list("abcxyz ")
)
SIZES = [(120, 36), (80, 24), (100, 30), (60, 16), (40, 12), (160, 48)]
WRITER = Path(__file__).with_name("soak_writer.py")


async def test_soak_random_keys_resizes_and_a_writer(tmp_path: Path) -> None:
    seed = int(os.environ.get("MESH_TUI_SOAK_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    world = build_world(tmp_path / "m.db")
    app = MeshApp(world.mesh, live=True, session_id=world.me, name="alice", interval=1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block; it runs apart
        [sys.executable, str(WRITER), str(world.mesh.path), str(SOAK_SECONDS), "alice", str(seed)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            loop = asyncio.get_running_loop()
            while writer.poll() is None:
                if rng.random() < 0.05:
                    await pilot.resize_terminal(*rng.choice(SIZES))
                key = rng.choice(KEYS)
                if app.screen is not app.screen_stack[0] and rng.random() < 0.5:
                    key = "escape"  # don't stay in a modal all run
                await pilot.press(key)
                if rng.random() < 0.1:
                    await asyncio.sleep(rng.uniform(0, 0.3))
                assert app.is_running, f"app stopped (seed {seed})"
                if loop.time() > 0 and app.return_code:
                    raise AssertionError(f"app exited {app.return_code} (seed {seed})")
            assert writer.wait() == 0
            # the writer has stopped: everything it wrote must reach the screen
            while app.screen is not app.screen_stack[0]:
                await pilot.press("escape")
            await pilot.resize_terminal(120, 36)
            app.query_one("#filter", Input).value = ""
            app.action_clear_filter()
            app.action_all_threads()
            await pilot.pause(1.0)
            app.request_refresh()
            await settle(pilot)
            await check_screen_matches_database(app, pilot, world.mesh.path, seed)
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()
        world.mesh.close()


async def check_screen_matches_database(app: MeshApp, pilot, db: Path, seed: int) -> None:  # type: ignore[no-untyped-def]
    with Mesh(db) as reader:
        newest = [t.thread_id for t in views.snapshot(reader, app.me).threads]
        threads = app.query_one(ThreadList)
        shown = [int(k) for k in threads._keys]
        assert shown == newest, f"thread list differs from the database (seed {seed})"
        for thread_id in newest[:3]:
            threads.focus()
            assert threads.select_key(str(thread_id))
            await settle(pilot)
            expected = tuple(m.message_id for m in views.thread_messages(reader, thread_id))
            conversation = app.query_one(Conversation)
            assert conversation.thread_id == thread_id
            assert conversation.shown_ids == expected, f"thread {thread_id} (seed {seed})"
