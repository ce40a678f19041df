"""Noticing: few toasts, newest first, away from the composer; a log; local times; the
bell and the terminal title for a high or urgent message to the person."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from datetime import datetime, timedelta

from rich.console import Console
from textual.widgets import Static
from textual.widgets._toast import Toast, ToastRack
from tui_fixtures import World, settle

from mesh_core import Mesh, iso
from mesh_core.participant import PEEK_LIMIT
from mesh_tui.app import MeshApp
from mesh_tui.notices import NotificationLog, humanize_times, osc_notification
from mesh_tui.widgets.roster import Roster

SIZE = (120, 36)


def test_times_in_notices_are_local_and_relative() -> None:
    now = datetime.fromisoformat("2026-12-02T18:47:20+00:00")
    text = humanize_times("rate limit: try again until 2026-12-02T18:50:20.667Z", now)
    assert "2026-12-02T" not in text and "Z" not in text
    assert "(in 3m)" in text


def test_desktop_notification_cannot_be_ended_early_by_its_text() -> None:
    sequence = osc_notification("from evil", "a;b\x07\x1b]0;pwned\x07")
    assert sequence.count("\x07") == 2 and sequence.count("\x1b") == 2


async def test_at_most_three_toasts_newest_first_never_over_the_composer(world: World) -> None:
    app = MeshApp(world.mesh, live=False, session_id=world.me, name="alice")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        app.query_one(Roster).select_key(world.ids["api-server"])
        await pilot.press("n")
        for n in range(6):
            app.notify(f"notice {n}", markup=False, timeout=60)
            await pilot.pause()
        await pilot.pause()
        toasts = list(app.screen.query(Toast))
        assert len(toasts) == 3
        assert "notice 5" in str(toasts[0].render())  # newest first
        composer = app.query_one("#composer").region
        rack = app.screen.query_one(ToastRack)
        for toast in toasts:
            assert not toast.region.overlaps(composer), rack.styles.dock
        await pilot.press("escape", "ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, NotificationLog)
        logged = [n.text for n in app.notice_log]
        assert [f"notice {n}" for n in range(6)] == [t for t in logged if t.startswith("notice")]


async def test_urgent_message_rings_and_counts_in_the_title(world: World) -> None:
    other = Mesh(world.mesh.path, clock=world.clock)
    app = MeshApp(world.mesh, live=True, session_id=world.me, name="alice", interval=60)
    rings: list[int] = []
    app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        deadline = asyncio.get_running_loop().time() + 20
        while not app.unseen:  # the greeting from the world: urgent
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        await pilot.pause()
        assert rings and app.window_title == "(1) mesh-tui"
        before = len(rings)
        other.send(world.ids["test-runner"], "alice", "fyi", priority="normal")
        while sum(map(len, app.unseen.values())) < 2:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        await pilot.pause()
        assert len(rings) == before  # normal: no bell
        assert app.window_title == "(2) mesh-tui"
    other.close()


async def _three_long_toasts(app: MeshApp, pilot: object) -> None:
    for n in range(3):
        app.notify(f"notice {n}: " + "a long line of text " * 12, title="t", timeout=60)
        await pilot.pause()  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]


def _shown_toasts(app: MeshApp) -> list[Toast]:
    """Toasts actually on screen (a hidden rack or holder shows none)."""
    return [t for t in app.screen.query(Toast) if _visible(app, t)]


def _visible(app: MeshApp, widget: object) -> bool:
    try:
        app.screen.find_widget(widget)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - not in the compositor's map: not on screen
        return False
    return True


async def test_toasts_never_cover_the_composer_at_80x24(world: World) -> None:
    app = MeshApp(world.mesh, live=False, session_id=world.me, name="alice")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot)
        app.query_one(Roster).select_key(world.ids["api-server"])
        await _three_long_toasts(app, pilot)  # before the composer opens
        await pilot.press("n")
        await pilot.pause()
        await pilot.pause()
        composer = app.query_one("#composer").region
        assert composer.height
        shown = _shown_toasts(app)
        assert shown, "no toast on screen"
        for toast in shown:
            assert not toast.region.overlaps(composer), (toast.region, composer)


async def test_toasts_never_cover_the_terminal_too_small_notice(world: World) -> None:
    app = MeshApp(world.mesh, live=False, session_id=world.me, name="alice")
    async with app.run_test(size=(50, 12), notifications=True) as pilot:
        await settle(pilot)
        await _three_long_toasts(app, pilot)
        notice = app.query_one("#too-small")
        assert "Make the terminal larger" in str(notice.render())
        for toast in _shown_toasts(app):
            assert not toast.region.overlaps(notice.content_region), toast.region
        assert [n.text for n in app.notice_log if n.text.startswith("notice")]  # logged
        await pilot.resize_terminal(120, 36)
        await pilot.pause()
        assert _shown_toasts(app)  # back once there is room


async def test_a_notice_time_on_another_day_shows_its_date(world: World) -> None:
    """Local and relative, with the date when it is not today (toast and log alike)."""
    app = MeshApp(world.mesh, live=False, session_id=world.me, name="alice")
    now = world.clock.now()
    later = (now + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    today = now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        app.notify(f"waits until {later}, sent {today}", markup=False, timeout=60)
        await pilot.pause()
        await pilot.pause()
        shown = " ".join(str(t.render()) for t in _shown_toasts(app))
        day = (now + timedelta(days=3)).astimezone().strftime("%b %d")
        assert f"until {day} " in shown and "(in 3d)" in shown
        assert f"sent {now.astimezone().strftime('%H:%M:%S')} (0s ago)" in shown
        await pilot.press("ctrl+n")
        await pilot.pause()
        console = Console(file=io.StringIO(), width=120)
        console.print(app.screen.query_one(Static).content)
        assert f"{day} " in console.file.getvalue()  # type: ignore[attr-defined]


async def test_a_new_message_is_noticed_however_many_wait_unread(world: World) -> None:
    """The person left 600 messages unread: a new one from another process still gets
    its toast and counts in the title, and stays unread in the database until shown."""
    conn = sqlite3.connect(world.mesh.path)
    with conn:
        conn.executemany(
            "INSERT INTO agent_messages (sender_session_id, recipient_session_id, content, "
            "priority, created_at, read) VALUES (?, ?, ?, 'normal', ?, 0)",
            [
                (world.ids["test-runner"], world.me, f"backlog {i}", iso(world.clock.now()))
                for i in range(PEEK_LIMIT + 100)
            ],
        )
    other = Mesh(world.mesh.path, clock=world.clock)
    app = MeshApp(world.mesh, live=True, session_id=world.me, name="alice", interval=60)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        loop = asyncio.get_running_loop()
        sent = other.send(world.ids["web-frontend"], "alice", "one more, normal priority")
        deadline = loop.time() + 20
        while not any("one more" in n.text for n in app.notice_log):
            assert loop.time() < deadline, "the new message was never noticed"
            await asyncio.sleep(0.05)
        await pilot.pause()
        assert any("one more" in str(t.render()) for t in _shown_toasts(app))
        assert sent.message_id in app.unseen[sent.thread_id]
        (read,) = conn.execute(
            "SELECT read FROM agent_messages WHERE message_id = ?", (sent.message_id,)
        ).fetchone()
        assert read == 0
    conn.close()
    other.close()
