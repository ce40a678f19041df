"""Noticing: few toasts, newest first, away from the composer; a log; local times; the
bell and the terminal title for a high or urgent message to the person."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from datetime import datetime, timedelta

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static
from textual.widgets._toast import Toast, ToastRack
from tui_fixtures import World, settle

from mesh_core import Mesh, iso
from mesh_core.participant import PEEK_LIMIT
from mesh_tui.app import MeshApp
from mesh_tui.messages import Arrived
from mesh_tui.notices import MAX_TOASTS, NotificationLog, humanize_times, osc_notification
from mesh_tui.widgets.roster import Roster
from mesh_tui.widgets.threads import ThreadList

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


async def _until(pilot: object, done: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not done():  # type: ignore[operator]
        assert loop.time() < deadline, what
        await asyncio.sleep(0.05)
    await pilot.pause()  # type: ignore[attr-defined]


async def _read_the_agents_thread(pilot: Pilot[None], app: MeshApp, world: World) -> None:
    """Read another thread than the person's (once the list shows it)."""
    threads = app.query_one(ThreadList)
    threads.focus()
    await _until(
        pilot,
        lambda: threads.select_key(str(world.agents_thread)),
        "the agents' thread is not listed",
    )


def _unread_to(world: World, conn: sqlite3.Connection) -> int:
    (count,) = conn.execute(
        "SELECT count(*) FROM agent_messages WHERE recipient_session_id = ? AND read = 0",
        (world.me,),
    ).fetchone()
    return int(count)


async def test_mail_waiting_at_start_is_one_summary_and_new_mail_still_toasts(
    world: World,
) -> None:
    """PEEK_LIMIT messages (3 urgent) wait unread when the person opens the app: one
    summary toast and log entry for all of them, one bell, the title counts them; a
    message that arrives afterwards has its own toast. Nothing is marked read."""
    conn = sqlite3.connect(world.mesh.path)
    with conn:
        conn.executemany(
            "INSERT INTO agent_messages (sender_session_id, recipient_session_id, content, "
            "priority, created_at, read) VALUES (?, ?, ?, ?, ?, 0)",
            [
                (
                    world.ids["test-runner"],
                    world.me,
                    f"backlog {i}",
                    "urgent" if i % 200 == 7 else "normal",
                    iso(world.clock.now()),
                )
                for i in range(PEEK_LIMIT)
            ],
        )
        # the newest thread (the one the app opens, marking read what it shows) is not hers
        conn.execute(
            "INSERT INTO agent_messages (sender_session_id, recipient_session_id, content, "
            "created_at, read) VALUES (?, ?, 'between agents', ?, 1)",
            (world.ids["api-server"], world.ids["web-frontend"], iso(world.clock.now())),
        )
    waiting = _unread_to(world, conn)  # and the world's urgent greeting
    other = Mesh(world.mesh.path, clock=world.clock)
    app = MeshApp(world.mesh, live=True, session_id=world.me, name="alice", interval=60)
    rings: list[int] = []
    app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await _until(pilot, lambda: app.unseen, "the waiting mail was never noticed")
        await settle(pilot)
        about_mail = [n for n in app.notice_log if "backlog" in n.text or "unread" in n.text]
        summary = (
            f"{waiting:,} unread messages — 4 urgent. u opens the next unread thread, "
            "ctrl+n shows the notifications."
        )
        assert [n.text for n in about_mail] == [summary]
        assert len(rings) == 1
        assert app.window_title == f"({PEEK_LIMIT}) mesh-tui"  # the newest PEEK_LIMIT
        assert f"{waiting:,} unread messages" in " ".join(
            str(t.render()) for t in _shown_toasts(app)
        )
        sent = other.send(world.ids["web-frontend"], "alice", "after the start")
        await _until(
            pilot,
            lambda: any("after the start" in n.text for n in app.notice_log),
            "a message after the start got no toast",
        )
        assert any("after the start" in str(t.render()) for t in _shown_toasts(app))
        assert sent.message_id in app.unseen[sent.thread_id]
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, NotificationLog)
        console = Console(file=io.StringIO(), width=200)
        console.print(app.screen.query_one(Static).content)
        lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
        newest = next(i for i, line in enumerate(lines) if "after the start" in line)
        first = next(i for i, line in enumerate(lines) if "unread messages" in line)
        assert newest < first  # newest first
        assert len(lines) < 10  # one line for all the waiting mail, not one each
        assert _unread_to(world, conn) == waiting + 1  # nothing marked read
    conn.close()
    other.close()


async def test_mail_handed_over_from_an_earlier_session_is_noticed_once(world: World) -> None:
    """The person's other terminal (an older session of alice, still running) holds two
    unread messages; it quits once this app has seen newer mail, so they move here with
    older ids than the newest it saw: each toasts once, counts unseen and in the title."""
    other = Mesh(world.mesh.path, clock=world.clock)
    earlier = other.register("alice", kind="human", cwd="/home/alice").session_id
    left = [
        other.send(world.ids["api-server"], earlier, f"for the other terminal {i}") for i in (1, 2)
    ]
    app = MeshApp(world.mesh, live=True, session_id=world.me, name="alice", interval=60)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await _until(pilot, lambda: app.unseen, "the greeting was never noticed")
        await settle(pilot)
        await _read_the_agents_thread(pilot, app, world)
        await settle(pilot)
        newer = other.send(world.ids["web-frontend"], world.me, "newer than those two")
        await _until(
            pilot,
            lambda: newer.message_id in app.unseen.get(newer.thread_id, ()),
            "the newer message was never noticed",
        )
        title_before = app.window_title
        other.deregister(earlier)  # its unread mail moves to alice's live session
        await _until(
            pilot,
            lambda: all(m.message_id in app.unseen.get(m.thread_id, ()) for m in left),
            "the handed-over mail was never noticed",
        )
        for _ in range(3):  # more looks: noticed once only
            assert app.participant is not None
            app.participant.poll_now()
            await asyncio.sleep(0.2)
        await settle(pilot)
        toasted = [n.text for n in app.notice_log if "for the other terminal" in n.text]
        assert sorted(toasted) == [
            "api-server: for the other terminal 1",
            "api-server: for the other terminal 2",
        ]
        assert any("other terminal" in str(t.render()) for t in _shown_toasts(app))
        assert title_before == "(2) mesh-tui" and app.window_title == "(4) mesh-tui"
        rows = world.mesh.connection().execute(
            "SELECT recipient_session_id, read FROM agent_messages WHERE message_id IN (?, ?)",
            [m.message_id for m in left],
        )
        assert [tuple(r) for r in rows] == [(world.me, 0), (world.me, 0)]
    other.close()


async def test_many_handed_over_messages_are_one_summary(world: World) -> None:
    """More moved messages than toasts on screen: one toast says how many, each still
    counts unseen."""
    other = Mesh(world.mesh.path, clock=world.clock)
    moved = [
        other.send(world.ids["test-runner"], world.me, f"moved {i}", new_thread=True)
        for i in range(MAX_TOASTS + 2)
    ]
    moved.append(other.send(world.ids["api-server"], world.me, "moved, high", priority="high"))
    app = MeshApp(world.mesh, live=False, session_id=world.me, name="alice")
    rings: list[int] = []
    app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await _read_the_agents_thread(pilot, app, world)
        await settle(pilot)
        app.post_message(Arrived("moved", moved))
        await settle(pilot)
        logged = [n.text for n in app.notice_log]
        assert not [t for t in logged if "moved" in t]
        summary = (
            f"{len(moved)} unread messages handed over from an earlier session — 1 high. "
            "u opens the next unread thread, ctrl+n shows the notifications."
        )
        assert [t for t in logged if "handed over" in t] == [summary]
        assert len(rings) == 1
        assert all(m.message_id in app.unseen.get(m.thread_id, ()) for m in moved)
    other.close()
